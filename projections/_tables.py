"""The read model kept in tables beside the log, written once for every database.

It lives in tables of its own (``rm_*``) with the position it reflects, so opening a
large store answers queries at once instead of replaying. Every change is one
transaction that folds a chunk of events and moves the checkpoint, so processes sharing
the database can all catch it up: whoever locks the checkpoint first does the work and
the others find it done.

The algorithms (folding a chunk, the queries, history sampling, snapshots) are here;
a ``Dialect`` supplies only its SQL and how it runs a function in a transaction. The
functions run synchronously against an ``Executor``: on SQLite on the connection's own
thread (one round trip per operation), on PostgreSQL on a worker thread whose every
statement is sent from the event loop, inside the operation's transaction. Folds are
synchronous and may need a state not in memory yet (a sweep's run, a run's sweep); the
loaders query through the same executor, inside the chunk's transaction.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Protocol, TypeVar

import msgspec

from eventstore import EventStore, IncompatibleSchema, RecordedEvent

from ._copies import RunCopy, copy_digest, decode_copy, fold_chunk
from ._fold import Fold, HistoryRow, RunKey
from ._lifeline import Lines, RunLine, decode_line, encode_line, line_digest
from ._readmodel import Snapshot, fold_log, sample_steps
from ._state import RunState, RunStatus, SweepState, SweepStatus

__all__ = ["SCHEMA_VERSION", "Dialect", "Executor", "TableReadModel"]

_T = TypeVar("_T")
SCHEMA_VERSION = 2  # 2: rm_lines (each run's line, see _lifeline) and rm_copies (_copies)
_CACHE_LIMIT = 20_000  # run states kept between chunks; beyond it they are reloaded
_PAGE = 5000
_LOWEST, _HIGHEST = -(1 << 62), 1 << 62

_encode = msgspec.msgpack.Encoder().encode
_decode_run = msgspec.msgpack.Decoder(RunState).decode
_decode_sweep = msgspec.msgpack.Decoder(SweepState).decode


class Executor(Protocol):
    """Runs statements of one transaction; SQL uses ``?`` for parameters."""

    def rows(self, sql: str, args: Sequence[object] = ()) -> Sequence[Sequence[Any]]:
        """The rows a query returns."""
        ...

    def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        """Run a statement."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run a statement once per row of parameters (none for no rows)."""
        ...


class Dialect(ABC):
    """One database's SQL for the read model, and how to run a transaction on it."""

    schema: tuple[str, ...]
    """Statements that create the tables, safe to run again."""
    schema_lock: str | None = None
    """A statement that serialises creating the tables, if the write lock does not."""
    lock_checkpoint: str
    """Reads the checkpoint and locks it until the transaction ends."""
    upsert_run: str
    """Stores a run's state: (project, run_id, status, sweep_id, created_us, state)."""
    upsert_sweep: str
    """Stores a sweep's state: (sweep_id, project, status, created_us, state)."""
    upsert_line: str
    """Stores a run's line (``_lifeline.RunLine``): (project, run_id, state)."""
    upsert_copy: str
    """Stores a copy of a run's state (``_copies.RunCopy``): (project, run_id, position,
    state)."""
    clear: tuple[str, ...]
    """Statements that empty the tables (after ``lock_checkpoint``)."""
    seek_steps: str | None = None
    """One statement for a history sample's index seeks, if the database has one:
    parameters (target steps as an array, project, run id, last step), rows (step,
    position) in target order. Without it each seek is its own query (SQLite: a call
    on the connection's thread; over a network a round trip each would add up)."""
    where: str
    """The read model as error messages name it."""

    @abstractmethod
    def schema_version(self, ex: Executor) -> int | None:
        """The read model's schema version, None if its tables are not there."""

    @abstractmethod
    def insert_history(self, ex: Executor, rows: list[HistoryRow]) -> None:
        """Store history rows; a later row for the same step replaces an earlier one."""

    @abstractmethod
    async def read(self, fn: Callable[[Executor], _T], consistent: bool = False) -> _T:
        """``fn(executor)``; ``consistent``: in one read transaction (one position)."""

    @abstractmethod
    async def write(self, fn: Callable[[Executor], _T]) -> _T:
        """``fn(executor)`` in one write transaction, committed if it returns."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close what the dialect opened (not the store's connections)."""


class TableReadModel:
    """Run and sweep state, and history positions, in tables beside the log."""

    def __init__(self, dialect: Dialect) -> None:
        self._db = dialect
        self._model: Fold | None = None  # states as of _model_position, kept between chunks
        self._lines: Lines | None = None  # the runs' lines, as of the same position
        self._model_position = -1
        self._ex: Executor | None = None  # the executor of the chunk being folded

    async def open(self) -> TableReadModel:
        """Create the tables if they are missing (the common case takes no lock)."""
        try:
            if await self._db.read(self._db.schema_version) != SCHEMA_VERSION:
                await self._db.write(self._create)
        except BaseException:
            await self._db.aclose()
            raise
        return self

    def _create(self, ex: Executor) -> None:
        if self._db.schema_lock is not None:
            ex.execute(self._db.schema_lock)
        for statement in self._db.schema:
            ex.execute(statement)
        version = self._db.schema_version(ex)
        if version is None:
            ex.execute(
                "INSERT INTO rm_meta VALUES ('schema', ?), ('checkpoint', 0)", (SCHEMA_VERSION,)
            )
        elif version < SCHEMA_VERSION:
            # An older runlog's read model lacks tables this one answers from: it is
            # emptied and folded again from position 0 on the next catch-up (the log
            # itself is untouched), so every table reflects the same position.
            for statement in self._db.clear:
                ex.execute(statement)
            ex.execute("UPDATE rm_meta SET value = 0 WHERE key = 'checkpoint'")
            ex.execute("UPDATE rm_meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise IncompatibleSchema(
                f"{self._db.where} was written by a newer runlog (read model version "
                f"{version}); upgrade runlog to open it"
            )

    async def aclose(self) -> None:
        """Forget the cached states and close the dialect's own connection."""
        self._model = None
        await self._db.aclose()

    # --- writing -----------------------------------------------------------------------

    async def checkpoint(self) -> int:
        """The position of the last event folded in."""
        return await self._db.read(_checkpoint)

    async def catch_up(self, store: EventStore, chunk: int) -> int:
        """Fold in what ``store`` holds after the checkpoint."""
        return await fold_log(self, store, chunk)

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        """Fold the records after the checkpoint in, in one transaction."""
        todo = list(records)
        folded, position = await self._db.write(lambda ex: self._fold(ex, todo))
        if folded is not None and len(folded[0].runs) <= _CACHE_LIMIT:
            self._model, self._model_position = folded[0], position
            self._lines = folded[1] if len(folded[1].lines) <= _CACHE_LIMIT else None
        return position

    def _fold(
        self, ex: Executor, records: list[RecordedEvent]
    ) -> tuple[tuple[Fold, Lines] | None, int]:
        checkpoint = int(ex.rows(self._db.lock_checkpoint)[0][0])
        todo = [r for r in records if r.position > checkpoint]
        if not todo or todo[0].position != checkpoint + 1:
            return None, checkpoint  # another process folded these already
        model, lines = self._model, self._lines
        if model is None or self._model_position != checkpoint:
            model = Fold(self._load_run, self._load_sweep)
            lines = None
        if lines is None:
            lines = Lines(self._load_line)
        self._model, self._lines = None, None  # until this commits, they are uncommitted
        self._ex = ex  # the loaders of a cached model query the current chunk's
        try:
            copies, owners = fold_chunk(model, todo)
            lines.apply_all(todo, lambda record: owners.get(record.position))
        finally:
            self._ex = None
        runs, sweeps, history = model.take_changes()
        ex.executemany(
            self._db.upsert_run,
            [
                (r.project, r.run_id, r.status.value, r.sweep_id, r.created_us, _encode(r))
                for r in runs
            ],
        )
        ex.executemany(
            self._db.upsert_sweep,
            [(s.sweep_id, s.project, s.status.value, s.created_us, _encode(s)) for s in sweeps],
        )
        if history:
            self._db.insert_history(ex, history)
        ex.executemany(self._db.upsert_copy, copies)
        ex.executemany(
            self._db.upsert_line,
            [(key[0], key[1], encode_line(line)) for key, line in lines.take_changes()],
        )
        position = todo[-1].position
        ex.execute("UPDATE rm_meta SET value = ? WHERE key = 'checkpoint'", (position,))
        return (model, lines), position

    def _load_run(self, key: RunKey) -> RunState | None:
        assert self._ex is not None
        return _load_run(self._ex, key)

    def _load_sweep(self, sweep_id: str) -> SweepState | None:
        assert self._ex is not None
        return _load_sweep(self._ex, sweep_id)

    def _load_line(self, key: RunKey) -> RunLine | None:
        assert self._ex is not None
        return _load_line(self._ex, key)

    async def reset(self) -> None:
        """Forget everything: checkpoint 0."""
        self._model, self._lines = None, None
        await self._db.write(self._clear)

    def _clear(self, ex: Executor) -> None:
        # Lock the checkpoint first, as apply does, so a concurrent apply cannot write
        # states folded before the reset on top of it.
        ex.rows(self._db.lock_checkpoint)
        for statement in self._db.clear:
            ex.execute(statement)
        ex.execute("UPDATE rm_meta SET value = 0 WHERE key = 'checkpoint'")

    # --- reading -----------------------------------------------------------------------

    async def run(self, key: RunKey) -> RunState | None:
        """The stored state of a run."""
        return await self._db.read(lambda ex: _load_run(ex, key))

    async def run_line(self, key: RunKey) -> RunLine | None:
        """The stored line of a run: its incarnations, marks and explained events."""
        return await self._db.read(lambda ex: _load_line(ex, key))

    async def run_copy(self, key: RunKey, position: int) -> RunCopy | None:
        """The last copy of a run's state taken at or before ``position``."""
        return await self._db.read(lambda ex: _load_copy(ex, key, position))

    async def runs(
        self, project: str | None, status: RunStatus | None, limit: int | None = None
    ) -> list[RunState]:
        """Runs, optionally of one project and in one status, oldest first, at most
        ``limit`` (read in index order: a page costs the same however many runs)."""
        clauses, args = _filters(project, status)
        sql = f"SELECT state FROM rm_runs{clauses} ORDER BY created_us, project, run_id"
        if limit is not None:
            sql, args = f"{sql} LIMIT ?", (*args, limit)
        return await self._db.read(lambda ex: _states(ex, sql, args, _decode_run))

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]:
        """The runs of one sweep."""
        sql = "SELECT state FROM rm_runs WHERE sweep_id = ?"
        return await self._db.read(lambda ex: _states(ex, sql, (sweep_id,), _decode_run))

    async def sweep(self, sweep_id: str) -> SweepState | None:
        """The stored state of a sweep."""
        return await self._db.read(lambda ex: _load_sweep(ex, sweep_id))

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]:
        """Sweeps, optionally of one project and in one status, oldest first."""
        clauses, args = _filters(project, status)
        sql = f"SELECT state FROM rm_sweeps{clauses} ORDER BY created_us, sweep_id"
        return await self._db.read(lambda ex: _states(ex, sql, args, _decode_sweep))

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        """(step, position) rows of a run's history in ``[start, stop)``, or a sample."""
        seek = self._db.seek_steps
        return await self._db.read(lambda ex: _history(ex, key, start, stop, points, seek))

    async def snapshot(self) -> Snapshot:
        """Everything the read model holds, as of one position."""
        return await self._db.read(_snapshot, consistent=True)


def _checkpoint(ex: Executor) -> int:
    return int(ex.rows("SELECT value FROM rm_meta WHERE key = 'checkpoint'")[0][0])


def _load_run(ex: Executor, key: RunKey) -> RunState | None:
    rows = ex.rows("SELECT state FROM rm_runs WHERE project = ? AND run_id = ?", key)
    return _decode_run(rows[0][0]) if rows else None


def _load_line(ex: Executor, key: RunKey) -> RunLine | None:
    rows = ex.rows("SELECT state FROM rm_lines WHERE project = ? AND run_id = ?", key)
    return decode_line(rows[0][0]) if rows else None


def _load_copy(ex: Executor, key: RunKey, position: int) -> RunCopy | None:
    rows = ex.rows(
        "SELECT state FROM rm_copies WHERE project = ? AND run_id = ? AND position <= ? "
        "ORDER BY position DESC LIMIT 1",
        (*key, position),
    )
    return decode_copy(rows[0][0]) if rows else None


def _load_sweep(ex: Executor, sweep_id: str) -> SweepState | None:
    rows = ex.rows("SELECT state FROM rm_sweeps WHERE sweep_id = ?", (sweep_id,))
    return _decode_sweep(rows[0][0]) if rows else None


def _states(
    ex: Executor, sql: str, args: Sequence[object], decode: Callable[[bytes], _T]
) -> list[_T]:
    return [decode(row[0]) for row in ex.rows(sql, args)]


def _filters(project: str | None, status: str | None) -> tuple[str, tuple[object, ...]]:
    clauses, args = [], []
    if project is not None:
        clauses.append("project = ?")
        args.append(project)
    if status is not None:
        clauses.append("status = ?")
        args.append(str(status))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _history(
    ex: Executor,
    key: RunKey,
    start: int | None,
    stop: int | None,
    points: int | None,
    seek_steps: str | None = None,
) -> list[tuple[int, int]]:
    low = start if start is not None else _LOWEST
    high = stop if stop is not None else _HIGHEST
    where = "project = ? AND run_id = ? AND step >= ? AND step < ?"
    args = (*key, low, high)
    select = f"SELECT step, position FROM rm_history WHERE {where} ORDER BY step"
    if points is None:
        return [(step, position) for step, position in ex.rows(select, args)]
    if points <= 0:
        return []
    # At most points + 1 rows are looked at to decide whether to sample at all, so the
    # cost does not grow with the run's length.
    few = ex.rows(f"{select} LIMIT ?", (*args, points + 1))
    if len(few) <= points:
        return [(step, position) for step, position in few]
    first = few[0][0]
    last = ex.rows(f"SELECT max(step) FROM rm_history WHERE {where}", args)[0][0]
    # Seek to evenly spaced target steps on the (project, run_id, step) key: a few
    # hundred index look-ups, however long the history.
    targets = [first + index for index in sample_steps(range(first, last + 1), points)]
    if seek_steps is not None:
        found_rows: list[Sequence[Any]] = list(ex.rows(seek_steps, (targets, *key, last)))
    else:
        found_rows = []
        for target in targets:
            found_rows += ex.rows(
                "SELECT step, position FROM rm_history WHERE project = ? AND run_id = ? "
                "AND step >= ? AND step <= ? ORDER BY step LIMIT 1",
                (*key, target, last),
            )
    out: list[tuple[int, int]] = []
    for step, position in found_rows:
        if not out or step > out[-1][0]:  # two targets can find the same logged step
            out.append((step, position))
    return out


def _snapshot(ex: Executor) -> Snapshot:
    position = _checkpoint(ex)
    runs = _states(ex, "SELECT state FROM rm_runs ORDER BY project, run_id", (), _decode_run)
    sweeps = _states(ex, "SELECT state FROM rm_sweeps ORDER BY sweep_id", (), _decode_sweep)
    history = []
    for state in runs:
        hasher = hashlib.blake2b(digest_size=16)
        count, after = 0, _LOWEST
        while True:  # a page at a time: one run may have millions of steps
            rows = ex.rows(
                "SELECT step, position FROM rm_history WHERE project = ? AND run_id = ? "
                "AND step > ? ORDER BY step LIMIT ?",
                (state.project, state.run_id, after, _PAGE),
            )
            if rows:
                hasher.update(array("q", chain.from_iterable(rows)).tobytes())
                count += len(rows)
                after = rows[-1][0]
            if len(rows) < _PAGE:
                break
        if count:
            history.append((state.project, state.run_id, count, hasher.digest()))
    rows_in_all = int(ex.rows("SELECT count(*) FROM rm_history")[0][0])
    lines = [
        (project, run_id, line_digest(decode_line(state)))
        for project, run_id, state in ex.rows(
            "SELECT project, run_id, state FROM rm_lines ORDER BY project, run_id"
        )
    ]
    copies = [
        (project, run_id, at, copy_digest(state))
        for project, run_id, at, state in ex.rows(
            "SELECT project, run_id, position, state FROM rm_copies "
            "ORDER BY project, run_id, position"
        )
    ]
    return Snapshot(position, runs, sweeps, history, rows_in_all, lines, copies)
