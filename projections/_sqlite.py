"""The read model persisted in the store's own SQLite file.

It lives beside the log in tables of its own (``rm_*``) with the position it reflects,
so opening a large store answers queries at once instead of replaying. Every change is
one transaction that folds a chunk of events and moves the checkpoint, so processes
sharing the file can all catch it up: whoever takes the lock first does the work and
the others find it done.
"""

from __future__ import annotations

import hashlib
import sqlite3
from array import array
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from eventstore import EventStore, IncompatibleSchema, RecordedEvent, SQLiteRunner

from ._fold import HistoryRow, Model, RunKey
from ._readmodel import Snapshot, fold_log, sample_steps
from ._state import RunState, RunStatus, SweepState, SweepStatus

__all__ = ["SQLiteReadModel"]

_T = TypeVar("_T")
SCHEMA_VERSION = 1
_CACHE_LIMIT = 20_000  # run states kept between chunks; beyond it they are reloaded
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rm_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS rm_runs (
        project    TEXT NOT NULL,
        run_id     TEXT NOT NULL,
        status     TEXT NOT NULL,
        sweep_id   TEXT,
        created_us INTEGER NOT NULL,
        state      BLOB NOT NULL,
        PRIMARY KEY (project, run_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_runs_by_status ON rm_runs (project, status)",
    "CREATE INDEX IF NOT EXISTS rm_runs_by_sweep ON rm_runs (sweep_id)",
    """CREATE TABLE IF NOT EXISTS rm_sweeps (
        sweep_id   TEXT PRIMARY KEY,
        project    TEXT NOT NULL,
        status     TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        state      BLOB NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rm_history (
        project  TEXT NOT NULL,
        run_id   TEXT NOT NULL,
        step     INTEGER NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (project, run_id, step)
    ) WITHOUT ROWID""",
)
_HISTORY_CHUNK = 128
_INSERT_HISTORY = {
    size: "INSERT OR REPLACE INTO rm_history (project, run_id, step, position) VALUES "
    + ",".join(["(?,?,?,?)"] * size)
    for size in (128, 64, 32, 16, 8, 4, 2, 1)
}

_encode = msgspec.msgpack.Encoder().encode
_decode_run = msgspec.msgpack.Decoder(RunState).decode
_decode_sweep = msgspec.msgpack.Decoder(SweepState).decode


class SQLiteReadModel:
    """Run and sweep state, and history positions, kept in the store's SQLite file."""

    def __init__(self, path: Path, lock_timeout: float = 60.0) -> None:
        self._path = path
        self._where = f"the read model in {path}"
        self._lock_timeout = lock_timeout
        self._runner: SQLiteRunner | None = None
        self._model: Model | None = None  # states as of _model_position, kept between chunks
        self._model_position = -1

    async def open(self) -> SQLiteReadModel:
        self._runner = await SQLiteRunner.open(self._path, self._where, self._lock_timeout)
        try:
            await self._run(self._init)
        except BaseException:
            await self.aclose()
            raise
        return self

    def _begin(self, db: sqlite3.Connection) -> None:
        assert self._runner is not None, "the read model is closed"
        self._runner.begin(db)

    def _init(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {max(1, min(int(self._lock_timeout * 1000), 50))}")
        db.execute("PRAGMA synchronous = NORMAL")
        try:  # the common case, an existing read model, needs no write lock
            row = db.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is not None and row[0] == SCHEMA_VERSION:
            return
        self._begin(db)
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO rm_meta VALUES ('schema', ?), ('checkpoint', 0)", (SCHEMA_VERSION,)
                )
            elif row[0] > SCHEMA_VERSION:
                raise IncompatibleSchema(
                    f"{self._where} was written by a newer runlog (read model version {row[0]}); "
                    "upgrade runlog to open it"
                )
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        assert self._runner is not None, "the read model is closed"
        return await self._runner.run(fn, *args)

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.aclose()

    # --- writing -----------------------------------------------------------------------

    async def checkpoint(self) -> int:
        return await self._run(_checkpoint)

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        return await self._run(self._apply, list(records))

    def _apply(self, db: sqlite3.Connection, records: list[RecordedEvent]) -> int:
        self._begin(db)
        try:
            checkpoint = _checkpoint(db)
            todo = [r for r in records if r.position > checkpoint]
            if not todo or todo[0].position != checkpoint + 1:
                return checkpoint  # another process folded these already
            model = self._model
            if model is None or self._model_position != checkpoint:
                model = Model(lambda key: _load_run(db, key), lambda sid: _load_sweep(db, sid))
            self._model = None  # until this commits, the cache holds uncommitted states
            model.apply_all(todo)
            runs, sweeps, history = model.take_changes()
            db.executemany(
                "INSERT OR REPLACE INTO rm_runs VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.project, r.run_id, r.status.value, r.sweep_id, r.created_us, _encode(r))
                    for r in runs
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO rm_sweeps VALUES (?, ?, ?, ?, ?)",
                [(s.sweep_id, s.project, s.status.value, s.created_us, _encode(s)) for s in sweeps],
            )
            _insert_history(db, history)
            position = todo[-1].position
            db.execute("UPDATE rm_meta SET value = ? WHERE key = 'checkpoint'", (position,))
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        if len(model.runs) <= _CACHE_LIMIT:
            self._model, self._model_position = model, position
        return position

    async def catch_up(self, store: EventStore, chunk: int) -> int:
        return await fold_log(self, store, chunk)

    async def reset(self) -> None:
        await self._run(self._reset)

    def _reset(self, db: sqlite3.Connection) -> None:
        self._model = None
        self._begin(db)
        try:
            for table in ("rm_runs", "rm_sweeps", "rm_history"):
                db.execute(f"DELETE FROM {table}")
            db.execute("UPDATE rm_meta SET value = 0 WHERE key = 'checkpoint'")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    # --- reading -----------------------------------------------------------------------

    async def run(self, key: RunKey) -> RunState | None:
        return await self._run(_load_run, key)

    async def runs(self, project: str | None, status: RunStatus | None) -> list[RunState]:
        clauses, args = _filters(project, status)
        return await self._run(
            _fetch_runs,
            f"SELECT state FROM rm_runs{clauses} ORDER BY created_us, project, run_id",
            args,
        )

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]:
        return await self._run(
            _fetch_runs, "SELECT state FROM rm_runs WHERE sweep_id = ?", (sweep_id,)
        )

    async def sweep(self, sweep_id: str) -> SweepState | None:
        return await self._run(_load_sweep, sweep_id)

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]:
        clauses, args = _filters(project, status)
        return await self._run(
            _fetch_sweeps,
            f"SELECT state FROM rm_sweeps{clauses} ORDER BY created_us, sweep_id",
            args,
        )

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        return await self._run(_history, key, start, stop, points)

    async def snapshot(self) -> Snapshot:
        return await self._run(_snapshot)


_PAGE = 5000


def _checkpoint(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM rm_meta WHERE key = 'checkpoint'").fetchone()[0])


def _load_run(db: sqlite3.Connection, key: RunKey) -> RunState | None:
    row = db.execute("SELECT state FROM rm_runs WHERE project = ? AND run_id = ?", key).fetchone()
    return _decode_run(row[0]) if row else None


def _load_sweep(db: sqlite3.Connection, sweep_id: str) -> SweepState | None:
    row = db.execute("SELECT state FROM rm_sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone()
    return _decode_sweep(row[0]) if row else None


def _fetch_runs(db: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[RunState]:
    return [_decode_run(row[0]) for row in db.execute(sql, args)]


def _fetch_sweeps(db: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[SweepState]:
    return [_decode_sweep(row[0]) for row in db.execute(sql, args)]


def _filters(project: str | None, status: str | None) -> tuple[str, tuple[object, ...]]:
    clauses, args = [], []
    if project is not None:
        clauses.append("project = ?")
        args.append(project)
    if status is not None:
        clauses.append("status = ?")
        args.append(str(status))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _insert_history(db: sqlite3.Connection, rows: list[HistoryRow]) -> None:
    flat = [value for row in rows for value in row]
    start, count = 0, len(rows)
    while count:
        size = _HISTORY_CHUNK if count >= _HISTORY_CHUNK else 1 << (count.bit_length() - 1)
        end = start + size * 4
        db.execute(_INSERT_HISTORY[size], flat[start:end])
        start, count = end, count - size


def _history(
    db: sqlite3.Connection, key: RunKey, start: int | None, stop: int | None, points: int | None
) -> list[tuple[int, int]]:
    low = start if start is not None else -(1 << 62)
    high = stop if stop is not None else 1 << 62
    where = "project = ? AND run_id = ? AND step >= ? AND step < ?"
    args = (*key, low, high)
    if points is None:
        return [
            (step, position)
            for step, position in db.execute(
                f"SELECT step, position FROM rm_history WHERE {where} ORDER BY step", args
            )
        ]
    if points <= 0:
        return []
    # At most points + 1 rows are looked at to decide whether to sample at all, so the
    # cost does not grow with the run's length.
    few = db.execute(
        f"SELECT step, position FROM rm_history WHERE {where} ORDER BY step LIMIT ?",
        (*args, points + 1),
    ).fetchall()
    if len(few) <= points:
        return [(step, position) for step, position in few]
    first = few[0][0]
    last = db.execute(f"SELECT max(step) FROM rm_history WHERE {where}", args).fetchone()[0]
    # Seek to evenly spaced target steps on the (project, run_id, step) key: a few
    # hundred index look-ups, however long the history.
    out: list[tuple[int, int]] = []
    for index in sample_steps(range(first, last + 1), points):
        target = first + index
        row = db.execute(
            "SELECT step, position FROM rm_history WHERE project = ? AND run_id = ? "
            "AND step >= ? AND step <= ? ORDER BY step LIMIT 1",
            (*key, target, last),
        ).fetchone()
        if row is not None and (not out or row[0] > out[-1][0]):
            out.append((row[0], row[1]))
    return out


def _snapshot(db: sqlite3.Connection) -> Snapshot:
    db.execute("BEGIN")  # one read transaction: one position
    try:
        position = _checkpoint(db)
        runs = [
            _decode_run(row[0])
            for row in db.execute("SELECT state FROM rm_runs ORDER BY project, run_id")
        ]
        sweeps = [
            _decode_sweep(row[0])
            for row in db.execute("SELECT state FROM rm_sweeps ORDER BY sweep_id")
        ]
        history = []
        for state in runs:
            key = (state.project, state.run_id)
            hasher = hashlib.blake2b(digest_size=16)
            count, after = 0, -(1 << 62)
            while True:  # a page at a time: one run may have millions of steps
                rows = db.execute(
                    "SELECT step, position FROM rm_history WHERE project = ? AND run_id = ? "
                    "AND step > ? ORDER BY step LIMIT ?",
                    (*key, after, _PAGE),
                ).fetchall()
                if rows:
                    hasher.update(array("q", chain.from_iterable(rows)).tobytes())
                    count += len(rows)
                    after = rows[-1][0]
                if len(rows) < _PAGE:
                    break
            if count:
                history.append((key[0], key[1], count, hasher.digest()))
        rows_in_all = int(db.execute("SELECT count(*) FROM rm_history").fetchone()[0])
    finally:
        db.execute("COMMIT")
    return Snapshot(position, runs, sweeps, history, rows_in_all)
