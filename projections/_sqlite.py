"""The read model in the store's own SQLite file: SQLite's SQL for ``_tables``.

It has a connection of its own to the file (``SQLiteRunner``); each operation runs on
that connection's thread as one call, so a chunk's fold is one round trip.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from eventstore import SQLiteRunner

from ._fold import HistoryRow
from ._tables import Dialect, Executor, TableReadModel

__all__ = ["SQLiteReadModel"]

_T = TypeVar("_T")
_HISTORY_CHUNK = 128
_INSERT_HISTORY = {
    size: "INSERT OR REPLACE INTO rm_history (project, run_id, step, position) VALUES "
    + ",".join(["(?,?,?,?)"] * size)
    for size in (128, 64, 32, 16, 8, 4, 2, 1)
}


class _Connection:
    """An ``Executor`` on a ``sqlite3`` connection (its own thread's)."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        return self.db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        self.db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self.db.executemany(sql, rows)


class SQLiteDialect(Dialect):
    """The read model's tables in a SQLite file."""

    schema = (
        "CREATE TABLE IF NOT EXISTS rm_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) "
        "WITHOUT ROWID",
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
        # Pages of the runs list, oldest first, of all projects or of one.
        "CREATE INDEX IF NOT EXISTS rm_runs_by_time ON rm_runs (created_us, project, run_id)",
        "CREATE INDEX IF NOT EXISTS rm_runs_by_project_time ON rm_runs "
        "(project, created_us, run_id)",
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
        """CREATE TABLE IF NOT EXISTS rm_lines (
            project TEXT NOT NULL,
            run_id  TEXT NOT NULL,
            state   BLOB NOT NULL,
            PRIMARY KEY (project, run_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS rm_copies (
            project  TEXT NOT NULL,
            run_id   TEXT NOT NULL,
            position INTEGER NOT NULL,
            state    BLOB NOT NULL,
            PRIMARY KEY (project, run_id, position)
        ) WITHOUT ROWID""",
    )
    # BEGIN IMMEDIATE already holds the file's write lock.
    lock_checkpoint = "SELECT value FROM rm_meta WHERE key = 'checkpoint'"
    upsert_run = "INSERT OR REPLACE INTO rm_runs VALUES (?, ?, ?, ?, ?, ?)"
    upsert_sweep = "INSERT OR REPLACE INTO rm_sweeps VALUES (?, ?, ?, ?, ?)"
    upsert_line = "INSERT OR REPLACE INTO rm_lines VALUES (?, ?, ?)"
    upsert_copy = "INSERT OR REPLACE INTO rm_copies VALUES (?, ?, ?, ?)"
    clear = (
        "DELETE FROM rm_runs",
        "DELETE FROM rm_sweeps",
        "DELETE FROM rm_history",
        "DELETE FROM rm_lines",
        "DELETE FROM rm_copies",
    )

    def __init__(self, runner: SQLiteRunner, lock_timeout: float) -> None:
        self._runner = runner
        self._lock_timeout = lock_timeout
        self.where = runner.where

    def prepare(self, db: sqlite3.Connection) -> None:
        """The connection's settings (before anything else runs on it)."""
        db.execute(f"PRAGMA busy_timeout = {max(1, min(int(self._lock_timeout * 1000), 50))}")
        db.execute("PRAGMA synchronous = NORMAL")

    def schema_version(self, ex: Executor) -> int | None:
        try:
            rows = ex.rows("SELECT value FROM rm_meta WHERE key = 'schema'")
        except sqlite3.OperationalError:  # no such table
            return None
        return int(rows[0][0]) if rows else None

    def insert_history(self, ex: Executor, rows: list[HistoryRow]) -> None:
        # Multi-row statements of power-of-two sizes: a rebuild inserts a row per step.
        flat = [value for row in rows for value in row]
        start, count = 0, len(rows)
        while count:
            size = _HISTORY_CHUNK if count >= _HISTORY_CHUNK else 1 << (count.bit_length() - 1)
            end = start + size * 4
            ex.execute(_INSERT_HISTORY[size], flat[start:end])
            start, count = end, count - size

    async def read(self, fn: Callable[[Executor], _T], consistent: bool = False) -> _T:
        return await self._runner.run(_reading, fn, consistent)

    async def write(self, fn: Callable[[Executor], _T]) -> _T:
        return await self._runner.transaction(lambda db: fn(_Connection(db)))

    async def aclose(self) -> None:
        await self._runner.aclose()


def _reading(db: sqlite3.Connection, fn: Callable[[Executor], _T], consistent: bool) -> _T:
    if not consistent:
        return fn(_Connection(db))
    db.execute("BEGIN")  # one read transaction: one position
    try:
        return fn(_Connection(db))
    finally:
        db.execute("COMMIT")


class SQLiteReadModel(TableReadModel):
    """Run and sweep state, and history positions, kept in the store's SQLite file."""

    @classmethod
    async def open_at(cls, path: Path, lock_timeout: float = 60.0) -> SQLiteReadModel:
        """Open (creating its tables if needed) the read model in the file at ``path``."""
        runner = await SQLiteRunner.open(path, f"the read model in {path}", lock_timeout)
        dialect = SQLiteDialect(runner, lock_timeout)
        try:
            await runner.run(dialect.prepare)
        except BaseException:
            await runner.aclose()
            raise
        model = cls(dialect)
        await model.open()
        return model
