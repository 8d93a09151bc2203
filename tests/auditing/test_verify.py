"""`runlog verify`: a sound log passes; each kind of tampering is named at its position."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import anyio
import msgspec
import pytest

import api
from api._audit._verify import verify
from eventstore import StepLogged, open_store

from .conftest import Story, runlog

WORKERS = [pytest.param(0, id="here"), pytest.param(3, id="3-processes")]


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with runlog's append-only triggers removed: a tamperer."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER events_are_append_only_on_update")
    db.execute("DROP TRIGGER events_are_append_only_on_delete")
    return db


def step_position(path: Path, step: int) -> tuple[int, bytes]:
    """The position and stored payload of run p/alpha's ``StepLogged`` of ``step``."""

    async def find() -> tuple[int, bytes]:
        async with open_store(path, create=False) as store:
            records = [r async for r in store.read_stream("run:p/alpha")]
            [record] = [
                r for r in records if isinstance(r.event, StepLogged) and r.event.step == step
            ]
            [stored] = [
                s async for s in store.read_stored(record.position, to_position=record.position)
            ]
            return record.position, stored.data

    return anyio.run(find)


def check(path: Path, workers: int) -> api._audit._verify.VerifyReport:  # type: ignore[name-defined]
    return anyio.run(lambda: verify(store=path, workers=workers, parallel_from=1))


@pytest.mark.parametrize("workers", WORKERS)
def test_a_sound_store_verifies(story: Story, workers: int) -> None:
    report = check(story.path, workers)
    assert report.ok
    assert report.log.events == report.head > 0
    assert report.projection is not None
    assert report.projection.ok
    assert report.projection.position == report.head


def test_verify_prints_ok_and_exits_0(story: Story) -> None:
    result = runlog("verify", "--store", story.path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("ok")
    assert "equal to the replay" in result.stdout


@pytest.mark.parametrize("workers", WORKERS)
def test_one_changed_byte_in_the_database_file_is_caught_at_its_position(
    story: Story, workers: int
) -> None:
    position, data = step_position(story.path, 3)
    content = story.path.read_bytes()
    assert content.count(data) == 1, "the payload must be findable in the file to edit it"
    offset = content.index(data) + len(data) - 1  # the last byte of the float 0.25
    story.path.write_bytes(
        content[:offset] + bytes([content[offset] ^ 0x01]) + content[offset + 1 :]
    )
    report = check(story.path, workers)
    assert not report.ok
    fault = report.log.first_fault
    assert fault is not None
    assert (fault.position, fault.kind) == (position, "hash")


def test_a_changed_byte_exits_1_naming_the_position(story: Story) -> None:
    position, data = step_position(story.path, 3)
    content = story.path.read_bytes()
    offset = content.index(data) + len(data) - 1
    story.path.write_bytes(
        content[:offset] + bytes([content[offset] ^ 0x01]) + content[offset + 1 :]
    )
    result = runlog("verify", "--store", story.path)
    assert result.returncode == 1
    assert f"position {position}: hash:" in result.stdout
    assert f"FAILED at position {position}" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = runlog("verify", "--json", "--store", story.path)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["log"]["faults"][0]["position"] == position


@pytest.mark.parametrize("workers", WORKERS)
def test_a_deleted_event_is_caught_at_its_position(story: Story, workers: int) -> None:
    position, _ = step_position(story.path, 5)
    with raw(story.path) as db:
        db.execute("DELETE FROM events WHERE position = ?", (position,))
    report = check(story.path, workers)
    fault = report.log.first_fault
    assert fault is not None
    assert (fault.position, fault.kind) == (position, "missing")


@pytest.mark.parametrize("workers", WORKERS)
def test_a_reordered_pair_is_caught_at_the_first_of_the_two(story: Story, workers: int) -> None:
    first, _ = step_position(story.path, 6)
    second = first + 1
    columns = "stream_id, version, event_id, recorded_at, data, hash"
    with raw(story.path) as db:
        a = db.execute(f"SELECT {columns} FROM events WHERE position = ?", (first,)).fetchone()
        b = db.execute(f"SELECT {columns} FROM events WHERE position = ?", (second,)).fetchone()
        assign = "stream_id = ?, version = ?, event_id = ?, recorded_at = ?, data = ?, hash = ?"
        parked = (a[0], -1, uuid.uuid4().bytes, *a[3:])
        db.execute(f"UPDATE events SET {assign} WHERE position = ?", (*parked, first))
        db.execute(f"UPDATE events SET {assign} WHERE position = ?", (*a, second))
        db.execute(f"UPDATE events SET {assign} WHERE position = ?", (*b, first))
    report = check(story.path, workers)
    fault = report.log.first_fault
    assert fault is not None
    assert (fault.position, fault.kind) == (first, "hash")
    assert any(f.kind == "version" for f in report.log.faults)


def test_a_read_model_that_differs_from_the_replay_fails(story: Story) -> None:
    with sqlite3.connect(story.path) as db:
        db.execute("DELETE FROM rm_history WHERE run_id = 'alpha' AND step = 3")
    result = runlog("verify", "--store", story.path)
    assert result.returncode == 1
    assert "history of run p/alpha differs from the replay" in result.stdout
    assert "log: " in result.stdout  # the log itself is sound


async def long_log(path: Path, steps: int) -> None:
    async with api.init(project="p", id="long", store=path) as run:
        for step in range(steps):
            await run.log({"loss": float(step), "note": "x" * 200})


@pytest.mark.parametrize("workers", WORKERS)
def test_a_truncated_file_is_caught_at_the_first_position_it_lost(
    tmp_path: Path, workers: int
) -> None:
    path = tmp_path / "long.db"
    anyio.run(long_log, path, 3000)
    with sqlite3.connect(path) as db:  # the rows for the oracle, before the damage
        expected = db.execute("SELECT max(position) FROM events").fetchone()[0]
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(int(size * 0.7) // 4096 * 4096)
    # The oracle: plain sqlite3 refuses the file, so read a copy with the lost pages
    # zero-filled, one event at a time: the first position it cannot return.
    padded = tmp_path / "padded.db"
    padded.write_bytes(path.read_bytes().ljust(size, b"\0"))
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(path).execute("SELECT count(*) FROM events").fetchone()
    lost = None
    db = sqlite3.connect(padded)
    for position in range(1, expected + 1):
        try:
            row = db.execute(
                "SELECT data, hash FROM events WHERE position = ?", (position,)
            ).fetchone()
        except sqlite3.DatabaseError:
            lost = position
            break
        if row is None:
            lost = position
            break
    db.close()
    assert lost is not None, "the truncation must cut into the events"
    report = check(path, workers)
    assert not report.ok
    fault = report.log.first_fault
    assert fault is not None
    assert fault.position == lost
    assert fault.kind in ("unreadable", "missing")


def test_a_truncated_file_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    anyio.run(long_log, path, 3000)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2 // 4096 * 4096)
    result = runlog("verify", "--store", path)
    assert result.returncode in (1, 4)
    assert "Traceback" not in result.stderr
    assert "position" in result.stdout + result.stderr


def forge(path: Path, position: int, data: bytes) -> None:
    """Replace the payload at ``position`` and recompute every hash from there on, as a
    forger who knows the chain's rule would: the chain holds, the payload is garbage."""
    from eventstore import chain_hash

    with raw(path) as db:
        db.execute("UPDATE events SET data = ? WHERE position = ?", (data, position))
        previous = db.execute(
            "SELECT hash FROM events WHERE position = ?", (position - 1,)
        ).fetchone()[0]
        rows = db.execute(
            "SELECT e.position, e.version, e.recorded_at, e.event_id, s.name, e.data "
            "FROM events e JOIN streams s USING (stream_id) WHERE e.position >= ? "
            "ORDER BY e.position",
            (position,),
        ).fetchall()
        for at, version, recorded_at, event_id, name, payload in rows:
            previous = chain_hash(
                previous, at, version, recorded_at, event_id, name.encode(), payload
            )
            db.execute("UPDATE events SET hash = ? WHERE position = ?", (previous, at))


@pytest.mark.parametrize("workers", WORKERS)
def test_a_payload_that_does_not_decode_is_caught_even_with_a_forged_chain(
    story: Story, workers: int
) -> None:
    position, _ = step_position(story.path, 4)
    forge(story.path, position, b"\xc1 not msgpack")
    report = check(story.path, workers)
    assert not report.ok
    fault = report.log.first_fault
    assert fault is not None
    assert (fault.position, fault.kind) == (position, "decode")


def test_an_undecodable_event_the_read_model_never_folded_is_caught(story: Story) -> None:
    with sqlite3.connect(story.path) as db:
        head = db.execute("SELECT max(position) FROM events").fetchone()[0]
        folded = db.execute("SELECT value FROM rm_meta WHERE key = 'checkpoint'").fetchone()[0]
    assert folded < head, "the story must leave its last events unfolded"
    forge(story.path, head, b"\xc1")
    result = runlog("verify", "--store", story.path)
    assert result.returncode == 1
    assert f"position {head}: decode:" in result.stdout


def test_verify_is_sound_while_a_training_process_keeps_logging(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "live.db"
    anyio.run(long_log, path, 200)
    trainer = Path(__file__).resolve().parents[1] / "_trainer.py"
    child = subprocess.Popen(
        [sys.executable, str(trainer), "flushing", str(path), "live"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        flushed = 0
        while flushed < 3:  # it is writing
            line = child.stdout.readline()
            assert line, "the trainer ended early"
            flushed += line.startswith("flushed")
        for workers in (0, 2):
            report = check(path, workers)
            assert report.ok, (report.log.faults, report.projection, report.replay_error)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_a_run_head_that_differs_from_its_runs_events_fails_and_rebuild_heads_repairs_it(
    story: Story,
) -> None:
    with sqlite3.connect(story.path) as db:
        (state,) = db.execute(
            "SELECT h.state FROM stream_heads h JOIN streams s USING (stream_id) "
            "WHERE s.name = 'run:p/alpha'"
        ).fetchone()
        head = msgspec.msgpack.decode(state)
        head["last_step"] = 3  # valid, plausible and wrong
        db.execute(
            "UPDATE stream_heads SET state = ? WHERE stream_id = "
            "(SELECT stream_id FROM streams WHERE name = 'run:p/alpha')",
            (msgspec.msgpack.encode(head),),
        )
    result = runlog("verify", "--store", story.path)
    assert result.returncode == 1
    assert "run:p/alpha: the stored head at version" in result.stdout
    assert "runlog rebuild-heads" in result.stderr
    repaired = runlog("rebuild-heads", "--store", story.path)
    assert repaired.returncode == 0, repaired.stderr
    assert "run heads recomputed from the log" in repaired.stdout
    again = runlog("verify", "--store", story.path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "each the fold of its run's events" in again.stdout


@pytest.mark.parametrize("workers", WORKERS)
def test_verify_compares_every_run_head(story: Story, workers: int) -> None:
    report = check(story.path, workers)
    assert report.heads is not None
    assert report.heads.ok
    assert report.heads.heads == 2  # alpha and the sweep's run
