"""The read model kept in the store's own PostgreSQL database.

Like the SQLite one, it lives beside the log in tables of its own (``rm_*``) with the
position it reflects, so opening a large store answers queries at once. Processes on
any number of machines share it: each change is one transaction that locks the
checkpoint row, folds a chunk of events after it and moves it. Whoever locks the row
first does the work; the others then find the checkpoint already past their chunk and
write nothing. Text columns use the "C" collation so that ordering matches Python's
(and the in-memory model's) whatever the database's locale.

Folds are synchronous and may need a state that is not in memory yet (a sweep's run,
a run's sweep), so a chunk is folded on a worker thread whose loaders query the
database back on the event loop, inside the chunk's transaction.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from itertools import chain
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import msgspec

from eventstore import ConnectionRunner, EventStore, IncompatibleSchema, RecordedEvent

from ._fold import HistoryRow, Model, RunKey
from ._readmodel import Snapshot, fold_log, sample_steps
from ._state import RunState, RunStatus, SweepState, SweepStatus

__all__ = ["PostgresReadModel"]

Connection = Any  # an asyncpg connection: only the store's runner hands them out

SCHEMA_VERSION = 1
_LOCK = 0x524C4F47_00000003  # serialises creating these tables ("RLOG" + 3)
_CACHE_LIMIT = 20_000  # run states kept between chunks; beyond it they are reloaded
_PAGE = 5000
_SCHEMA = (
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
)

_encode = msgspec.msgpack.Encoder().encode
_decode_run = msgspec.msgpack.Decoder(RunState).decode
_decode_sweep = msgspec.msgpack.Decoder(SweepState).decode


class PostgresReadModel:
    """Run and sweep state, and history positions, kept in the store's PostgreSQL database.

    It borrows the store's connections, so it retries lost connections as the store does.
    """

    def __init__(self, runner: ConnectionRunner) -> None:
        self._store = runner
        self._model: Model | None = None  # states as of _model_position, kept between chunks
        self._model_position = -1
        self._fold_conn: Connection | None = None  # the connection of the chunk being folded

    async def open(self) -> PostgresReadModel:
        await self._store.run(self._init)
        return self

    async def _init(self, conn: Connection) -> None:
        version = await _schema_version(conn)
        if version == SCHEMA_VERSION:
            return  # the common case takes no lock
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            for statement in _SCHEMA:
                await conn.execute(statement)
            version = await _schema_version(conn)
            if version is None:
                await conn.execute(
                    "INSERT INTO rm_meta VALUES ('schema', $1), ('checkpoint', 0)", SCHEMA_VERSION
                )
            elif version > SCHEMA_VERSION:
                raise IncompatibleSchema(
                    f"the read model in {self._store.where} was written by a newer runlog "
                    f"(read model version {version}); upgrade runlog to open it"
                )

    def _load_run_now(self, key: RunKey) -> RunState | None:
        assert self._fold_conn is not None
        return anyio.from_thread.run(_load_run, self._fold_conn, key)

    def _load_sweep_now(self, sweep_id: str) -> SweepState | None:
        assert self._fold_conn is not None
        return anyio.from_thread.run(_load_sweep, self._fold_conn, sweep_id)

    async def aclose(self) -> None:
        self._model = None  # the connections are the store's

    # --- writing -----------------------------------------------------------------------

    async def checkpoint(self) -> int:
        return await self._store.run(_checkpoint)

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        return await self._store.run(self._apply, list(records))

    async def _apply(self, conn: Connection, records: list[RecordedEvent]) -> int:
        async with conn.transaction():
            checkpoint = int(
                await conn.fetchval("SELECT value FROM rm_meta WHERE key = 'checkpoint' FOR UPDATE")
            )
            todo = [r for r in records if r.position > checkpoint]
            if not todo or todo[0].position != checkpoint + 1:
                return checkpoint  # another process folded these already
            model = self._model
            if model is None or self._model_position != checkpoint:
                model = Model(self._load_run_now, self._load_sweep_now)
            self._model = None  # until this commits, the cache holds uncommitted states
            self._fold_conn = conn  # the loaders of a cached model query the current chunk's
            try:
                changes = await anyio.to_thread.run_sync(_fold, model, todo)
            finally:
                self._fold_conn = None
            runs, sweeps, history = changes
            if runs:
                await conn.executemany(
                    "INSERT INTO rm_runs VALUES ($1, $2, $3, $4, $5, $6) "
                    "ON CONFLICT (project, run_id) DO UPDATE SET status = excluded.status, "
                    "sweep_id = excluded.sweep_id, created_us = excluded.created_us, "
                    "state = excluded.state",
                    [
                        (r.project, r.run_id, r.status.value, r.sweep_id, r.created_us, _encode(r))
                        for r in runs
                    ],
                )
            if sweeps:
                await conn.executemany(
                    "INSERT INTO rm_sweeps VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (sweep_id) DO UPDATE SET project = excluded.project, "
                    "status = excluded.status, created_us = excluded.created_us, "
                    "state = excluded.state",
                    [
                        (s.sweep_id, s.project, s.status.value, s.created_us, _encode(s))
                        for s in sweeps
                    ],
                )
            if history:
                # Later rows for the same step replace earlier ones, as in the fold.
                latest = {(p, r, s): position for p, r, s, position in history}
                await conn.execute(
                    "INSERT INTO rm_history (project, run_id, step, position) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) "
                    "ON CONFLICT (project, run_id, step) DO UPDATE SET position = excluded.position",
                    [k[0] for k in latest],
                    [k[1] for k in latest],
                    [k[2] for k in latest],
                    list(latest.values()),
                )
            position = todo[-1].position
            await conn.execute("UPDATE rm_meta SET value = $1 WHERE key = 'checkpoint'", position)
        if len(model.runs) <= _CACHE_LIMIT:
            self._model, self._model_position = model, position
        return position

    async def catch_up(self, store: EventStore, chunk: int) -> int:
        return await fold_log(self, store, chunk)

    async def reset(self) -> None:
        self._model = None
        await self._store.run(_reset)

    # --- reading -----------------------------------------------------------------------

    async def run(self, key: RunKey) -> RunState | None:
        return await self._store.run(_load_run, key)

    async def runs(self, project: str | None, status: RunStatus | None) -> list[RunState]:
        clauses, args = _filters(project, status)
        return await self._store.run(
            _fetch_runs,
            f"SELECT state FROM rm_runs{clauses} ORDER BY created_us, project, run_id",
            args,
        )

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]:
        return await self._store.run(
            _fetch_runs, "SELECT state FROM rm_runs WHERE sweep_id = $1", (sweep_id,)
        )

    async def sweep(self, sweep_id: str) -> SweepState | None:
        return await self._store.run(_load_sweep, sweep_id)

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]:
        clauses, args = _filters(project, status)
        return await self._store.run(
            _fetch_sweeps,
            f"SELECT state FROM rm_sweeps{clauses} ORDER BY created_us, sweep_id",
            args,
        )

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        return await self._store.run(_history, key, start, stop, points)

    async def snapshot(self) -> Snapshot:
        return await self._store.run(_snapshot)


def _fold(
    model: Model, records: list[RecordedEvent]
) -> tuple[list[RunState], list[SweepState], list[HistoryRow]]:
    model.apply_all(records)
    return model.take_changes()


async def _schema_version(conn: Connection) -> int | None:
    # pg_tables, not to_regclass(): see eventstore._postgres_schema.schema_version.
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
        "WHERE schemaname = current_schema() AND tablename = 'rm_meta')"
    ):
        return None
    value = await conn.fetchval("SELECT value FROM rm_meta WHERE key = 'schema'")
    return int(value) if value is not None else None


async def _checkpoint(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT value FROM rm_meta WHERE key = 'checkpoint'"))


async def _reset(conn: Connection) -> None:
    async with conn.transaction():
        # Lock the checkpoint first, as apply does, so a concurrent apply cannot
        # write states folded before the reset on top of it.
        await conn.execute("SELECT value FROM rm_meta WHERE key = 'checkpoint' FOR UPDATE")
        await conn.execute("TRUNCATE rm_runs, rm_sweeps, rm_history")
        await conn.execute("UPDATE rm_meta SET value = 0 WHERE key = 'checkpoint'")


async def _load_run(conn: Connection, key: RunKey) -> RunState | None:
    data = await conn.fetchval(
        "SELECT state FROM rm_runs WHERE project = $1 AND run_id = $2", key[0], key[1]
    )
    return _decode_run(data) if data is not None else None


async def _load_sweep(conn: Connection, sweep_id: str) -> SweepState | None:
    data = await conn.fetchval("SELECT state FROM rm_sweeps WHERE sweep_id = $1", sweep_id)
    return _decode_sweep(data) if data is not None else None


async def _fetch_runs(conn: Connection, sql: str, args: tuple[Any, ...]) -> list[RunState]:
    return [_decode_run(row[0]) for row in await conn.fetch(sql, *args)]


async def _fetch_sweeps(conn: Connection, sql: str, args: tuple[Any, ...]) -> list[SweepState]:
    return [_decode_sweep(row[0]) for row in await conn.fetch(sql, *args)]


def _filters(project: str | None, status: str | None) -> tuple[str, tuple[object, ...]]:
    clauses: list[str] = []
    args: list[object] = []
    if project is not None:
        args.append(project)
        clauses.append(f"project = ${len(args)}")
    if status is not None:
        args.append(str(status))
        clauses.append(f"status = ${len(args)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


async def _history(
    conn: Connection, key: RunKey, start: int | None, stop: int | None, points: int | None
) -> list[tuple[int, int]]:
    low = start if start is not None else -(1 << 62)
    high = stop if stop is not None else 1 << 62
    where = "project = $1 AND run_id = $2 AND step >= $3 AND step < $4"
    args = (*key, low, high)
    if points is None:
        return [
            (step, position)
            for step, position in await conn.fetch(
                f"SELECT step, position FROM rm_history WHERE {where} ORDER BY step", *args
            )
        ]
    if points <= 0:
        return []
    # At most points + 1 rows decide whether to sample at all, so the cost does not
    # grow with the run's length.
    few = await conn.fetch(
        f"SELECT step, position FROM rm_history WHERE {where} ORDER BY step LIMIT $5",
        *args,
        points + 1,
    )
    if len(few) <= points:
        return [(step, position) for step, position in few]
    first = few[0][0]
    last = await conn.fetchval(f"SELECT max(step) FROM rm_history WHERE {where}", *args)
    # Seek to evenly spaced target steps on the (project, run_id, step) key.
    out: list[tuple[int, int]] = []
    for index in sample_steps(range(first, last + 1), points):
        target = first + index
        row = await conn.fetchrow(
            "SELECT step, position FROM rm_history WHERE project = $1 AND run_id = $2 "
            "AND step >= $3 AND step <= $4 ORDER BY step LIMIT 1",
            *key,
            target,
            last,
        )
        if row is not None and (not out or row[0] > out[-1][0]):
            out.append((row[0], row[1]))
    return out


async def _snapshot(conn: Connection) -> Snapshot:
    # One repeatable-read transaction: every query sees the same position.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await _checkpoint(conn)
        runs = await _fetch_runs(conn, "SELECT state FROM rm_runs ORDER BY project, run_id", ())
        sweeps = await _fetch_sweeps(conn, "SELECT state FROM rm_sweeps ORDER BY sweep_id", ())
        history = []
        for state in runs:
            hasher = hashlib.blake2b(digest_size=16)
            count, after = 0, -(1 << 62)
            while True:  # a page at a time: one run may have millions of steps
                rows = await conn.fetch(
                    "SELECT step, position FROM rm_history WHERE project = $1 AND run_id = $2 "
                    "AND step > $3 ORDER BY step LIMIT $4",
                    state.project,
                    state.run_id,
                    after,
                    _PAGE,
                )
                if rows:
                    hasher.update(array("q", chain.from_iterable(rows)).tobytes())
                    count += len(rows)
                    after = rows[-1][0]
                if len(rows) < _PAGE:
                    break
            if count:
                history.append((state.project, state.run_id, count, hasher.digest()))
        rows_in_all = int(await conn.fetchval("SELECT count(*) FROM rm_history"))
    return Snapshot(position, runs, sweeps, history, rows_in_all)
