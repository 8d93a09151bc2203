"""The read model in the store's own PostgreSQL database: PostgreSQL's SQL for ``_tables``.

Processes on any number of machines share it: each change is one transaction that locks
the checkpoint row (``FOR UPDATE``), folds a chunk after it and moves it. Text columns
use the "C" collation so that ordering matches Python's (and the in-memory model's)
whatever the database's locale. It borrows the store's connections (its
``ConnectionRunner``), so it retries lost connections as the store does.

The shared algorithms are synchronous; here they run on a worker thread, and each
statement is sent from the event loop on the operation's connection, inside its
transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from eventstore import ConnectionRunner

from ._fold import HistoryRow
from ._tables import Dialect, Executor, TableReadModel

__all__ = ["PostgresReadModel"]

_T = TypeVar("_T")
_LOCK = 0x524C4F47_00000003  # serialises creating these tables ("RLOG" + 3)
_MARK = re.compile(r"\?")


@lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """``?`` parameters as PostgreSQL's ``$1, $2, ...`` (no statement here has a ``?``
    inside a string)."""
    count = iter(range(1, 1 << 16))
    return _MARK.sub(lambda _: f"${next(count)}", sql)


class _Connection:
    """An ``Executor`` on an asyncpg connection, used from a worker thread."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        rows: list[Any] = anyio.from_thread.run(self._fetch, _numbered(sql), args)
        return rows

    async def _fetch(self, sql: str, args: Sequence[object]) -> list[Any]:
        return list(await self.conn.fetch(sql, *args))

    def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        anyio.from_thread.run(self._execute, _numbered(sql), args)

    async def _execute(self, sql: str, args: Sequence[object]) -> None:
        await self.conn.execute(sql, *args)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            anyio.from_thread.run(self.conn.executemany, _numbered(sql), rows)


class PostgresDialect(Dialect):
    """The read model's tables in a PostgreSQL database."""

    schema = (
        "CREATE TABLE IF NOT EXISTS rm_meta (key text PRIMARY KEY, value bigint NOT NULL)",
        """CREATE TABLE IF NOT EXISTS rm_runs (
            project    text COLLATE "C" NOT NULL,
            run_id     text COLLATE "C" NOT NULL,
            status     text NOT NULL,
            sweep_id   text COLLATE "C",
            created_us bigint NOT NULL,
            state      bytea NOT NULL,
            PRIMARY KEY (project, run_id)
        )""",
        "CREATE INDEX IF NOT EXISTS rm_runs_by_status ON rm_runs (project, status)",
        "CREATE INDEX IF NOT EXISTS rm_runs_by_sweep ON rm_runs (sweep_id)",
        # Pages of the runs list, oldest first, of all projects or of one.
        "CREATE INDEX IF NOT EXISTS rm_runs_by_time ON rm_runs (created_us, project, run_id)",
        "CREATE INDEX IF NOT EXISTS rm_runs_by_project_time ON rm_runs "
        "(project, created_us, run_id)",
        """CREATE TABLE IF NOT EXISTS rm_sweeps (
            sweep_id   text COLLATE "C" PRIMARY KEY,
            project    text COLLATE "C" NOT NULL,
            status     text NOT NULL,
            created_us bigint NOT NULL,
            state      bytea NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS rm_history (
            project  text COLLATE "C" NOT NULL,
            run_id   text COLLATE "C" NOT NULL,
            step     bigint NOT NULL,
            position bigint NOT NULL,
            PRIMARY KEY (project, run_id, step)
        )""",
        """CREATE TABLE IF NOT EXISTS rm_lines (
            project text COLLATE "C" NOT NULL,
            run_id  text COLLATE "C" NOT NULL,
            state   bytea NOT NULL,
            PRIMARY KEY (project, run_id)
        )""",
        """CREATE TABLE IF NOT EXISTS rm_copies (
            project  text COLLATE "C" NOT NULL,
            run_id   text COLLATE "C" NOT NULL,
            position bigint NOT NULL,
            state    bytea NOT NULL,
            PRIMARY KEY (project, run_id, position)
        )""",
    )
    schema_lock = f"SELECT pg_advisory_xact_lock({_LOCK})"
    lock_checkpoint = "SELECT value FROM rm_meta WHERE key = 'checkpoint' FOR UPDATE"
    # A history sample's seeks in one statement: one round trip instead of one per point.
    seek_steps = (
        "SELECT h.step, h.position FROM unnest(?::bigint[]) WITH ORDINALITY AS t(target, n) "
        "CROSS JOIN LATERAL (SELECT step, position FROM rm_history "
        "WHERE project = ? AND run_id = ? AND step >= t.target AND step <= ? "
        "ORDER BY step LIMIT 1) AS h ORDER BY t.n"
    )
    upsert_run = (
        "INSERT INTO rm_runs VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (project, run_id) DO UPDATE SET status = excluded.status, "
        "sweep_id = excluded.sweep_id, created_us = excluded.created_us, state = excluded.state"
    )
    upsert_sweep = (
        "INSERT INTO rm_sweeps VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (sweep_id) DO UPDATE SET project = excluded.project, "
        "status = excluded.status, created_us = excluded.created_us, state = excluded.state"
    )
    upsert_line = (
        "INSERT INTO rm_lines VALUES (?, ?, ?) "
        "ON CONFLICT (project, run_id) DO UPDATE SET state = excluded.state"
    )
    upsert_copy = (
        "INSERT INTO rm_copies VALUES (?, ?, ?, ?) "
        "ON CONFLICT (project, run_id, position) DO UPDATE SET state = excluded.state"
    )
    clear = ("TRUNCATE rm_runs, rm_sweeps, rm_history, rm_lines, rm_copies",)

    def __init__(self, runner: ConnectionRunner) -> None:
        self._runner = runner
        self.where = f"the read model in {runner.where}"

    def schema_version(self, ex: Executor) -> int | None:
        # pg_tables, not to_regclass(): see eventstore's schema_version.
        exists = ex.rows(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'rm_meta')"
        )
        if not exists[0][0]:
            return None
        rows = ex.rows("SELECT value FROM rm_meta WHERE key = 'schema'")
        return int(rows[0][0]) if rows else None

    def insert_history(self, ex: Executor, rows: list[HistoryRow]) -> None:
        # One statement of arrays; later rows for the same step replace earlier ones, as
        # in the fold (one statement must not touch a row twice).
        latest = {(p, r, s): position for p, r, s, position in rows}
        ex.execute(
            "INSERT INTO rm_history (project, run_id, step, position) "
            "SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[]) "
            "ON CONFLICT (project, run_id, step) DO UPDATE SET position = excluded.position",
            (
                [k[0] for k in latest],
                [k[1] for k in latest],
                [k[2] for k in latest],
                list(latest.values()),
            ),
        )

    async def read(self, fn: Callable[[Executor], _T], consistent: bool = False) -> _T:
        async def run(conn: Any) -> _T:
            if not consistent:
                return await anyio.to_thread.run_sync(fn, _Connection(conn))
            # One repeatable-read transaction: every query sees the same position.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await anyio.to_thread.run_sync(fn, _Connection(conn))

        return await self._runner.run(run)

    async def write(self, fn: Callable[[Executor], _T]) -> _T:
        async def run(conn: Any) -> _T:
            async with conn.transaction():
                return await anyio.to_thread.run_sync(fn, _Connection(conn))

        return await self._runner.run(run)

    async def aclose(self) -> None:
        return None  # the connections are the store's


class PostgresReadModel(TableReadModel):
    """Run and sweep state, and history positions, kept in the store's PostgreSQL database."""

    @classmethod
    async def open_on(cls, runner: ConnectionRunner) -> PostgresReadModel:
        """Open (creating its tables if needed) the read model on the store's connections."""
        model = cls(PostgresDialect(runner))
        await model.open()
        return model
