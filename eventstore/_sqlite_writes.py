"""The SQLite backend's writes: append, import and files, each one call on the writer's
thread. ``BEGIN IMMEDIATE`` serialises writers across processes, the head is read under
that lock (which keeps positions gap-free and the hash chain linear), the rows go in as
multi-row ``INSERT`` statements, and ``COMMIT`` ends it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from itertools import chain, repeat
from pathlib import Path

from ._batch import AppendPlan, retried_append
from ._codec import EventCodec
from ._errors import CorruptStore, InvalidArgument
from ._events import Event
from ._files import BLOB_CHUNK, BLOB_PREFIX, new_digest
from ._import import plan_import
from ._inline import InlineProjection, fold_head, imported_streams
from ._sqlite_reads import SQLiteReads, stored_ids
from ._sqlite_runner import begin_immediate, write_transaction
from ._types import AppendResult, ImportResult, RecordedEvent, StoredEvent

__all__ = ["SQLiteQueries"]

# Rows per INSERT: up to 1024, as many as the SQLite build's limit on bound parameters
# allows (999 before SQLite 3.32, so 128 rows there). Remainders use power-of-two sizes
# so statements stay cached. Big statements matter beyond SQLite's own per-statement
# cost: the thread that runs them gives up Python's GIL for each one and, when a training
# thread is busy, may wait a whole switch interval (5 ms) to get it back (issue 16).
_CHUNK = 1024
_COLUMNS = 7
_INSERT = {
    size: "INSERT INTO events (position, stream_id, version, event_id, recorded_at, data, hash) VALUES "
    + ",".join(["(?,?,?,?,?,?,?)"] * size)
    for size in (1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
}
_STATE = (
    "SELECT s.stream_id, s.version, h.position, h.recorded_at, h.hash FROM (SELECT 1) "
    "LEFT JOIN streams s ON s.name = ? "
    "LEFT JOIN (SELECT position, recorded_at, hash FROM events ORDER BY position DESC LIMIT 1) h"
)
_NEW_STREAM = (
    "INSERT INTO streams (name, version, first_position, last_position) VALUES (?, ?, ?, ?)"
)
_MOVE_STREAM = "UPDATE streams SET version = ?, last_position = ? WHERE stream_id = ?"
_HEAD = "SELECT version, state FROM stream_heads WHERE stream_id = ?"
_PUT_HEAD = "INSERT OR REPLACE INTO stream_heads (stream_id, version, state) VALUES (?, ?, ?)"


class SQLiteQueries(SQLiteReads):
    """Every query of one SQLite store, reads and writes."""

    def __init__(
        self, codec: EventCodec, where: str, lock_timeout: float, clock: Callable[[], float]
    ) -> None:
        super().__init__(codec, where)
        self._lock_timeout = lock_timeout
        self._clock = clock
        self.inline: InlineProjection | None = None
        """The projection whose heads appends keep current, if the store has one."""

    def append(
        self,
        db: sqlite3.Connection,
        stream: str,
        ids: list[bytes],
        datas: list[bytes],
        expected: int | str,
        objects: list[Event] | None = None,
    ) -> AppendResult:
        """One append, committed or not at all."""
        begin_immediate(db, self._lock_timeout)
        try:
            # One statement for the stream's state and the log's head, read under the lock.
            state = db.execute(_STATE, (stream,)).fetchone()
            plan = AppendPlan(stream, expected, state, ids, datas, self._clock)
            if plan.refused:
                return plan.refuse(expected, ids, datas, stored_ids(db, ids))
            if not plan.count:
                return AppendResult(stream, (), plan.current)
            stream_id = plan.stream_id
            if stream_id is None:
                cursor = db.execute(_NEW_STREAM, (stream, plan.version, plan.first, plan.last))
                assert cursor.lastrowid is not None
                stream_id = cursor.lastrowid
            else:
                db.execute(_MOVE_STREAM, (plan.version, plan.last, stream_id))
            _insert(db, _rows(plan, stream_id, ids, datas), plan.count)
            inline = self.inline
            if inline is not None and objects is not None:
                self._fold_into_head(db, inline, stream_id, stream, plan.records(objects))
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            # Only a stored event id can collide here (positions and versions are
            # decided under the write lock): this is a retry of an earlier append.
            db.execute("ROLLBACK")
            return self._retried(db, stream, ids, datas)
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        return plan.result()

    def _fold_into_head(
        self,
        db: sqlite3.Connection,
        inline: InlineProjection,
        stream_id: int,
        stream: str,
        events: list[RecordedEvent],
    ) -> None:
        """Fold ``events``, the stream's newest, into its head (catching the stored head
        up first if appends without the projection left it behind)."""
        before = events[0].version - 1
        row = db.execute(_HEAD, (stream_id,)).fetchone()
        version, state = (row[0], row[1]) if row is not None else (-1, None)
        if version > before:
            version, state = -1, None  # a head from the future is damage: recompute it
        try:
            missing = self.stream_records(db, stream_id, stream, version + 1, before)
            state = fold_head(inline, stream, state, missing + events if missing else events)
        except Exception:
            # A head is derived data: one that cannot be folded (a stored event that no
            # longer decodes) must not stop the log from taking appends. Without a row,
            # readers fold the stream themselves and report the damage.
            db.execute("DELETE FROM stream_heads WHERE stream_id = ?", (stream_id,))
            return
        db.execute(_PUT_HEAD, (stream_id, events[-1].version, state))

    def _retried(
        self, db: sqlite3.Connection, stream: str, ids: list[bytes], datas: list[bytes]
    ) -> AppendResult:
        db.execute("BEGIN")
        try:
            stored = retried_append(stream, ids, datas, stored_ids(db, ids))
        finally:
            db.execute("ROLLBACK")
        if stored is None:
            raise CorruptStore(
                f"{self._where}: the streams table disagrees with the events table about "
                f"{stream!r}; restore the file from a backup"
            )
        return stored

    def adopt(self, db: sqlite3.Connection, inline: InlineProjection) -> None:
        """Make ``inline`` the projection appends keep; heads another fold wrote are dropped."""
        found = db.execute("SELECT value FROM meta WHERE key = 'inline'").fetchone()
        if found is None or found[0] != inline.name:
            write_transaction(db, self._lock_timeout, _adopt, inline.name)
        self.inline = inline

    def put_heads(
        self, db: sqlite3.Connection, inline: InlineProjection, heads: list[tuple[str, int, bytes]]
    ) -> None:
        """Store recomputed heads, each with what was appended since folded in (one
        transaction)."""
        write_transaction(db, self._lock_timeout, self._put_heads, inline, heads)

    def _put_heads(
        self, db: sqlite3.Connection, inline: InlineProjection, heads: list[tuple[str, int, bytes]]
    ) -> None:
        for stream, version, state in heads:
            found = db.execute(
                "SELECT stream_id, version FROM streams WHERE name = ?", (stream,)
            ).fetchone()
            if found is None:
                continue
            stream_id, current = found
            missing = self.stream_records(db, stream_id, stream, version + 1, current)
            db.execute(_PUT_HEAD, (stream_id, current, fold_head(inline, stream, state, missing)))

    def import_rows(self, db: sqlite3.Connection, rows: list[StoredEvent]) -> ImportResult:
        """One import of checked events, committed or not at all."""
        return write_transaction(db, self._lock_timeout, self._import, rows)

    def _import(self, db: sqlite3.Connection, rows: list[StoredEvent]) -> ImportResult:
        known = stored_ids(db, [stored.event_id_bytes for stored in rows])
        head = db.execute(
            "SELECT position, recorded_at, hash FROM events ORDER BY position DESC LIMIT 1"
        ).fetchone()
        ids: dict[str, int] = {}
        versions: dict[str, int] = {}
        for name in {stored.stream for stored in rows}:
            row = db.execute(
                "SELECT stream_id, version FROM streams WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                ids[name], versions[name] = row
        plan = plan_import(rows, known, versions, head)
        for name, (version, first, last) in plan.new_streams.items():
            cursor = db.execute(_NEW_STREAM, (name, version, first, last))
            assert cursor.lastrowid is not None
            ids[name] = cursor.lastrowid
        db.executemany(
            _MOVE_STREAM,
            [(version, last, ids[name]) for name, (version, last) in plan.moved_streams.items()],
        )
        db.executemany(_INSERT[1], plan.records(ids))
        if self.inline is not None:
            for name, events in imported_streams(self.inline, plan.rows, self._codec).items():
                if events is None:
                    db.execute("DELETE FROM stream_heads WHERE stream_id = ?", (ids[name],))
                else:
                    self._fold_into_head(db, self.inline, ids[name], name, events)
        return plan.result()

    def put_file(self, db: sqlite3.Connection, source: Path, digest: str, size: int) -> None:
        """Store ``source`` under ``digest`` unless it is stored already (one transaction)."""
        if db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone():
            return
        write_transaction(db, self._lock_timeout, _put_file, source, digest, size)


def _adopt(db: sqlite3.Connection, name: str) -> None:
    found = db.execute("SELECT value FROM meta WHERE key = 'inline'").fetchone()
    if found is None or found[0] != name:
        db.execute("DELETE FROM stream_heads")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('inline', ?)", (name,))


def _put_file(db: sqlite3.Connection, source: Path, digest: str, size: int) -> None:
    if db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone() is not None:
        return  # another writer stored it while this one waited for the lock
    hasher = new_digest()
    seq = 0
    with source.open("rb") as file:
        while chunk := file.read(BLOB_CHUNK):
            hasher.update(chunk)
            db.execute("INSERT INTO blob_chunks VALUES (?, ?, ?)", (digest, seq, chunk))
            seq += 1
    if BLOB_PREFIX + hasher.hexdigest() != digest:
        raise InvalidArgument(f"{source} changed while it was being saved; save it again")
    db.execute("INSERT INTO blobs VALUES (?, ?, ?)", (digest, size, seq))


def _rows(plan: AppendPlan, stream_id: int, ids: list[bytes], datas: list[bytes]) -> list[object]:
    # The INSERT's parameters, flat, built in C (this is the append hot path).
    first, version, count = plan.first, plan.current + 1, plan.count
    return list(
        chain.from_iterable(
            zip(
                range(first, first + count),
                repeat(stream_id),
                range(version, version + count),
                ids,
                repeat(plan.now),
                datas,
                plan.hashes,
            )
        )
    )


def _chunk(db: sqlite3.Connection) -> int:
    """The most rows one INSERT of ``db`` may carry, a power of two up to ``_CHUNK``."""
    rows = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _COLUMNS
    return min(_CHUNK, 1 << (rows.bit_length() - 1))


def _insert(db: sqlite3.Connection, rows: list[object], count: int) -> None:
    chunk = _chunk(db)
    start = 0
    while count:
        size = chunk if count >= chunk else 1 << (count.bit_length() - 1)
        end = start + size * _COLUMNS
        db.execute(_INSERT[size], rows[start:end])
        start = end
        count -= size
