"""Read models: where folded state is kept between queries, with the position it reflects.

A read model applies a chunk of events and records the new checkpoint atomically, so
whatever it holds is always exactly the fold of the log up to its checkpoint.
``MemoryReadModel`` keeps everything in a ``Model``; the SQLite one persists it in the
store's own database file (``_sqlite.py``).
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, TypeVar

import msgspec

from eventstore import RecordedEvent

from ._fold import HistoryRow, Model, RunKey
from ._state import RunState, RunStatus, SweepState, SweepStatus

__all__ = ["MemoryReadModel", "ReadModel", "sample_steps"]

_S = TypeVar("_S", RunState, SweepState)
_encode = msgspec.msgpack.Encoder().encode


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

    async def run(self, key: RunKey) -> RunState | None: ...

    async def runs(self, project: str | None, status: RunStatus | None) -> list[RunState]: ...

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]: ...

    async def sweep(self, sweep_id: str) -> SweepState | None: ...

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]: ...

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        """(step, position) rows of a run's history in ``[start, stop)``, or a sample."""
        ...

    def all_runs(self) -> AsyncIterator[RunState]: ...

    def all_sweeps(self) -> AsyncIterator[SweepState]: ...

    def all_history(self) -> AsyncIterator[HistoryRow]:
        """Every history row, ordered by project, run id and step."""
        ...

    async def aclose(self) -> None: ...


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


class MemoryReadModel:
    """A read model that lives in memory (for in-memory stores, rebuilds and checks)."""

    def __init__(self) -> None:
        self.model = Model()
        self._steps: dict[RunKey, list[int]] = {}
        self._positions: dict[RunKey, list[int]] = {}

    async def checkpoint(self) -> int:
        return self.model.position

    def apply_now(self, records: Sequence[RecordedEvent]) -> int:
        """``apply`` without the await, for callers that fold synchronously."""
        model = self.model
        for record in records:
            if record.position > model.position:
                model.apply(record)
        _, _, history = model.take_changes()
        for project, run_id, step, position in history:
            key = (project, run_id)
            self._steps.setdefault(key, []).append(step)
            self._positions.setdefault(key, []).append(position)
        return model.position

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        return self.apply_now(records)

    async def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    async def run(self, key: RunKey) -> RunState | None:
        state = self.model.runs.get(key)
        return _copy(state) if state is not None else None

    async def runs(self, project: str | None, status: RunStatus | None) -> list[RunState]:
        return sorted(
            (
                _copy(state)
                for state in self.model.runs.values()
                if (project is None or state.project == project)
                and (status is None or state.status is status)
            ),
            key=lambda state: (state.created_us, state.project, state.run_id),
        )

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
        steps = self._steps.get(key, [])
        positions = self._positions.get(key, [])
        low = bisect.bisect_left(steps, start) if start is not None else 0
        high = bisect.bisect_left(steps, stop) if stop is not None else len(steps)
        window = steps[low:high]
        indexes = sample_steps(window, points) if points is not None else range(len(window))
        return [(steps[low + i], positions[low + i]) for i in indexes]

    async def all_runs(self) -> AsyncIterator[RunState]:
        for key in sorted(self.model.runs):
            yield self.model.runs[key]

    async def all_sweeps(self) -> AsyncIterator[SweepState]:
        for sweep_id in sorted(self.model.sweeps):
            yield self.model.sweeps[sweep_id]

    async def all_history(self) -> AsyncIterator[HistoryRow]:
        for key in sorted(self._steps):
            for step, position in zip(self._steps[key], self._positions[key], strict=True):
                yield (key[0], key[1], step, position)

    async def aclose(self) -> None:
        return None
