"""The append path's helpers (issue 16): faster, and still exactly what they replaced."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid

from eventstore import GENESIS_HASH, StepLogged, _codec, default_codec
from eventstore._chain import chain_batch, chain_hash
from eventstore._codec import event_id_bytes
from eventstore._sqlite_writes import _chunk, _insert

_TABLE = """CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id INTEGER, version
    INTEGER, event_id BLOB, recorded_at INTEGER, data BLOB, hash BLOB)"""


def test_chain_batch_is_chain_hash_applied_event_by_event() -> None:
    datas = [default_codec.encode(StepLogged(incarnation=1, step=s, metrics={})) for s in range(50)]
    ids = event_id_bytes(50)
    hashes = chain_batch(b"\x07" * 32, "run:p/ä", 41, 9, 1_700_000_000_123_456, ids, datas)
    previous = b"\x07" * 32
    for i, (event_id, data) in enumerate(zip(ids, datas, strict=True)):
        previous = chain_hash(
            previous, 41 + i, 9 + i, 1_700_000_000_123_456, event_id, "run:p/ä".encode(), data
        )
        assert hashes[i] == previous


def test_chain_batch_of_nothing_is_empty() -> None:
    assert chain_batch(GENESIS_HASH, "run:p/a", 1, 0, 0, [], []) == []


def test_an_insert_carries_at_most_what_the_sqlite_build_allows() -> None:
    db = sqlite3.connect(":memory:")
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # SQLite before 3.32
    assert _chunk(db) == 128
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    assert _chunk(db) == 1024


def test_rows_beyond_one_statement_all_go_in_under_a_low_parameter_limit() -> None:
    db = sqlite3.connect(":memory:")
    db.execute(_TABLE)
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    count = 1000
    rows: list[object] = []
    for position in range(1, count + 1):
        rows += [position, 1, position - 1, bytes(16), 0, b"x", bytes(32)]
    _insert(db, rows, count)
    positions = [p for (p,) in db.execute("SELECT position FROM events ORDER BY position")]
    assert positions == list(range(1, count + 1))


def test_a_call_of_ids_is_strictly_increasing_uuid7() -> None:
    ids = event_id_bytes(100_000)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for event_id in (ids[0], ids[-1]):
        assert uuid.UUID(bytes=event_id).version == 7
        assert uuid.UUID(bytes=event_id).variant == uuid.RFC_4122


def test_ids_of_later_calls_sort_after_earlier_ones_at_a_later_millisecond() -> None:
    first = event_id_bytes(10)
    time.sleep(0.002)
    assert event_id_bytes(10)[0] > first[-1]


def test_ids_of_calls_in_the_same_millisecond_still_increase() -> None:
    calls = [event_id_bytes(3) for _ in range(200)]
    ids = [event_id for call in calls for event_id in call]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_continue_its_parents_ids() -> None:
    # The parent's last id is set far in the future, so a child that kept it would
    # hand out exactly the id the parent hands out next.
    future = ((1 << 48) - 2) << 80 | 0x7 << 76 | 0b10 << 62
    saved = _codec._last_id[0]
    _codec._last_id[0] = future
    try:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its first id and leave at once
            os.write(writer, event_id_bytes(1)[0])
            os._exit(0)
        os.close(writer)
        child = os.read(reader, 16)
        os.waitpid(pid, 0)
        os.close(reader)
        assert event_id_bytes(1)[0] == (future + 1).to_bytes(16, "big")
    finally:
        _codec._last_id[0] = saved
    assert int.from_bytes(child, "big") < future  # the child started from the clock
