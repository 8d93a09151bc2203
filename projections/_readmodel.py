"""Read models: where folded state is kept between queries, with the position it reflects.

A read model applies a chunk of events and records the new checkpoint atomically, so
whatever it holds is always exactly the fold of the log up to its checkpoint.
``MemoryReadModel`` keeps everything in a ``Model``; the SQLite one persists it in the
store's own database file (``_sqlite.py``).
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Protocol, TypeVar

import anyio
import msgspec

from eventstore import EventStore, RecordedEvent

from ._copies import RunCopy, copy_digest, decode_copy, fold_chunk
from ._fold import Fold, HistoryRow, RunKey
from ._lifeline import Lines, RunLine, line_digest
from ._state import RunState, RunStatus, SweepState, SweepStatus

__all__ = [
    "MemoryReadModel",
    "ReadModel",
    "Snapshot",
    "fold_log",
    "history_digest",
    "sample_steps",
]

_S = TypeVar("_S", RunState, SweepState)
_encode = msgspec.msgpack.Encoder().encode


class Snapshot(msgspec.Struct, frozen=True):
    """A read model's whole content at one position, with each run's history as a digest.

    This is what an audit compares with a replay; it crosses process boundaries as
    msgpack, so it is small: runs and sweeps, and per run only (rows, digest).
    """

    position: int
    runs: list[RunState]
    """Ordered by project and run id."""
    sweeps: list[SweepState]
    """Ordered by sweep id."""
    history: list[tuple[str, str, int, bytes]]
    """(project, run id, rows, ``history_digest``) for each run with history, in order."""
    history_rows: int
    """All history rows, including any of runs the read model does not hold."""
    lines: list[tuple[str, str, bytes]] = []
    """(project, run id, ``line_digest``) of each run's line (``_lifeline.RunLine``), in order."""
    copies: list[tuple[str, str, int, bytes]] = []
    """(project, run id, position, ``copy_digest``) of each copy of a run's state
    (``_copies.RunCopy``), in that order."""


def history_digest(pairs: array[int]) -> bytes:
    """The digest of a run's history: ``pairs`` is step, position, step, position, ...
    in step order, as machine integers."""
    return hashlib.blake2b(pairs.tobytes(), digest_size=16).digest()


def _copy(state: _S) -> _S:
    """A deep copy: a query must not hand out the model's own mutable state."""
    return msgspec.msgpack.decode(_encode(state), type=type(state))


class ReadModel(Protocol):
    """What the projector needs from a place that keeps folded state."""

    async def checkpoint(self) -> int:
        """The position of the last event folded in."""
        ...

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        """Fold the records after the checkpoint in; return the new checkpoint."""
        ...

    async def reset(self) -> None:
        """Forget everything: checkpoint 0."""
        ...

    async def catch_up(self, store: EventStore, chunk: int) -> int:
        """Fold in what ``store`` holds after the checkpoint, ``chunk`` events per
        ``apply``; return the position now reflected."""
        ...

    async def run(self, key: RunKey) -> RunState | None: ...

    async def runs(
        self, project: str | None, status: RunStatus | None, limit: int | None = None
    ) -> list[RunState]: ...

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]: ...

    async def sweep(self, sweep_id: str) -> SweepState | None: ...

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]: ...

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        """(step, position) rows of a run's history in ``[start, stop)``, or a sample."""
        ...

    async def snapshot(self) -> Snapshot:
        """Everything the read model holds, as of one position (one read transaction)."""
        ...

    async def aclose(self) -> None: ...


async def fold_log(read_model: ReadModel, store: EventStore, chunk: int) -> int:
    """``catch_up`` of a read model that folds the log itself, a chunk per ``apply``.

    The next chunk is read while this one is applied (the read model's fold runs on
    its own connection or in memory, the read on the store's), so a rebuild's reading
    and folding overlap where the machine has a core to spare.
    """
    head = await store.head()
    position = await read_model.checkpoint()
    if position >= head:
        return position
    records = await _read_chunk(store, position + 1, min(head, position + chunk))
    while True:
        end = records[-1].position if records else position
        if end >= head:
            return await read_model.apply(records)
        following: list[list[RecordedEvent]] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_read_into, following, store, end + 1, min(head, end + chunk))
            position = await read_model.apply(records)
        if position == end:
            records = following[0]
        elif position < head:  # another process folded further: read from there
            records = await _read_chunk(store, position + 1, min(head, position + chunk))
        else:
            return position


async def _read_chunk(store: EventStore, first: int, last: int) -> list[RecordedEvent]:
    """The events ``first..last``, read a page at a time."""
    records: list[RecordedEvent] = []
    async for page in store.read_all_pages(
        first, to_position=last, size=min(5000, last - first + 1)
    ):
        records += page
    return records


async def _read_into(
    out: list[list[RecordedEvent]], store: EventStore, first: int, last: int
) -> None:
    out.append(await _read_chunk(store, first, last))


_EMPTY: array[int] = array("q")
_run_of_row = itemgetter(0, 1)
_step_of_row = itemgetter(2)
_position_of_row = itemgetter(3)


def sample_steps(steps: Sequence[int], points: int) -> list[int]:
    """At most ``points`` indexes into sorted ``steps``, evenly spread over the step range,
    always including the first and the last."""
    if points <= 0 or not steps:
        return []
    if len(steps) <= points:
        return list(range(len(steps)))
    if points == 1:
        return [len(steps) - 1]
    first, last = steps[0], steps[-1]
    chosen: list[int] = []
    for i in range(points):
        target = first + (last - first) * i // (points - 1)
        index = bisect.bisect_left(steps, target)
        if not chosen or index > chosen[-1]:
            chosen.append(index)
    return chosen


def _upsert_rows(steps: array[int], positions: array[int], rows: list[HistoryRow]) -> None:
    for _, _, step, position in rows:
        index = bisect.bisect_left(steps, step)
        if index < len(steps) and steps[index] == step:
            positions[index] = position
        else:
            steps.insert(index, step)
            positions.insert(index, position)


class MemoryReadModel:
    """A read model that lives in memory (for in-memory stores, rebuilds and checks)."""

    def __init__(self) -> None:
        self.model = Fold()
        self.lines = Lines()
        self.copies: dict[RunKey, list[tuple[int, bytes]]] = {}
        # Machine integers, not lists of ints: a replay of a long log holds a row per
        # step, and an int in a list costs 36 bytes where 8 do.
        self._steps: dict[RunKey, array[int]] = {}
        self._positions: dict[RunKey, array[int]] = {}

    async def checkpoint(self) -> int:
        return self.model.position

    def apply_now(self, records: Sequence[RecordedEvent]) -> int:
        """``apply`` without the await, for callers that fold synchronously."""
        model = self.model
        skip = 0
        while skip < len(records) and records[skip].position <= model.position:
            skip += 1
        todo = records[skip:] if skip else records
        copies, owners = fold_chunk(model, todo)
        for project, run_id, position, state in copies:
            self.copies.setdefault((project, run_id), []).append((position, state))
        self.lines.apply_all(todo, lambda record: owners.get(record.position))
        self.lines.take_changes()  # kept in memory: nothing to write
        _, _, history = model.take_changes()
        # Rows come in stretches of one run; extending per stretch keeps this in C.
        for (project, run_id), rows in groupby(history, _run_of_row):
            key = (project, run_id)
            stretch = list(rows)
            steps = self._steps.get(key)
            if steps is None:
                steps = self._steps[key] = array("q")
                self._positions[key] = array("q")
            if key in model.rewound:
                # After a rewind a step comes again: one row per step, the latest (as
                # the SQL read models' upsert keeps it).
                _upsert_rows(steps, self._positions[key], stretch)
                continue
            steps.extend(map(_step_of_row, stretch))
            self._positions[key].extend(map(_position_of_row, stretch))
        return model.position

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        return self.apply_now(records)

    async def catch_up(self, store: EventStore, chunk: int) -> int:
        return await fold_log(self, store, chunk)

    async def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    async def run(self, key: RunKey) -> RunState | None:
        state = self.model.runs.get(key)
        return _copy(state) if state is not None else None

    async def run_line(self, key: RunKey) -> RunLine | None:
        """The run's line: its incarnations, marks and explained events."""
        line = self.lines.lines.get(key)
        return msgspec.msgpack.decode(_encode(line), type=RunLine) if line is not None else None

    async def run_copy(self, key: RunKey, position: int) -> RunCopy | None:
        """The last copy of a run's state taken at or before ``position``."""
        copies = self.copies.get(key, [])
        index = bisect.bisect_right(copies, position, key=itemgetter(0)) - 1
        return decode_copy(copies[index][1]) if index >= 0 else None

    async def runs(
        self, project: str | None, status: RunStatus | None, limit: int | None = None
    ) -> list[RunState]:
        return sorted(
            (
                _copy(state)
                for state in self.model.runs.values()
                if (project is None or state.project == project)
                and (status is None or state.status is status)
            ),
            key=lambda state: (state.created_us, state.project, state.run_id),
        )[:limit]

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]:
        return [_copy(s) for s in self.model.runs.values() if s.sweep_id == sweep_id]

    async def sweep(self, sweep_id: str) -> SweepState | None:
        state = self.model.sweeps.get(sweep_id)
        return _copy(state) if state is not None else None

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]:
        return sorted(
            (
                _copy(state)
                for state in self.model.sweeps.values()
                if (project is None or state.project == project)
                and (status is None or state.status is status)
            ),
            key=lambda state: (state.created_us, state.sweep_id),
        )

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        steps = self._steps.get(key, _EMPTY)
        positions = self._positions.get(key, _EMPTY)
        low = bisect.bisect_left(steps, start) if start is not None else 0
        high = bisect.bisect_left(steps, stop) if stop is not None else len(steps)
        window = steps[low:high]
        indexes = sample_steps(window, points) if points is not None else range(len(window))
        return [(steps[low + i], positions[low + i]) for i in indexes]

    async def snapshot(self) -> Snapshot:
        return self.snapshot_now()

    def snapshot_now(self) -> Snapshot:
        """``snapshot`` without the await (the states are not copied)."""
        history = []
        for key in sorted(self._steps):
            steps, positions = self._steps[key], self._positions[key]
            pairs = array("q", bytes(16 * len(steps)))
            pairs[0::2] = steps
            pairs[1::2] = positions
            history.append((key[0], key[1], len(steps), history_digest(pairs)))
        return Snapshot(
            position=self.model.position,
            runs=[self.model.runs[key] for key in sorted(self.model.runs)],
            sweeps=[self.model.sweeps[sweep_id] for sweep_id in sorted(self.model.sweeps)],
            history=history,
            history_rows=sum(len(steps) for steps in self._steps.values()),
            lines=[
                (k[0], k[1], line_digest(self.lines.lines[k])) for k in sorted(self.lines.lines)
            ],
            copies=[
                (key[0], key[1], position, copy_digest(state))
                for key in sorted(self.copies)
                for position, state in self.copies[key]
            ],
        )

    async def aclose(self) -> None:
        return None
