"""A run's state at a past position, for the run page's slider, without refolding the
run from its start at every move.

The answer is what ``Projector.run_as_of`` gives: the fold of the run's stream and its
sweep's stream up to the position. The fold is pure, so it can stop anywhere and go on
later from a copy of its states: each fold here leaves copies behind (every
``_EVERY`` events, and where it stopped), and the next request starts from the nearest
copy at or before its position. Moving the slider back and forth then folds only the
events between two copies, however long the run.

The read model keeps copies of its own (``projections._copies``: one every 20,000
events of a run's stream, taken as it folds the log), so even the first answer about a
run folds at most that many events: a fold starts from the later of the nearest
in-memory copy and the nearest stored one.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict

import anyio
import msgspec

from eventstore import EventStore, read_streams, run_stream, sweep_stream
from projections import Fold, Projector, RunCopy, RunKey, RunState, SweepState

__all__ = ["TimeTravel"]

_EVERY = 50_000  # events folded between two copies
_KEEP_COPIES = 64  # per run; the oldest beyond it are dropped (but never the first)
_KEEP_RUNS = 8


class _Copy(msgspec.Struct, frozen=True):
    """The fold's states after the event at ``position``, and where each stream goes on."""

    position: int
    runs: list[RunState]
    sweeps: list[SweepState]
    versions: dict[str, int]
    """stream -> the version of the next event to read."""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Copy).decode


class TimeTravel:
    """Past states of runs, from copies of earlier folds."""

    def __init__(self, store: EventStore, projector: Projector | None = None) -> None:
        self._store = store
        self._projector = projector
        self._copies: OrderedDict[tuple[str, ...], list[tuple[int, bytes]]] = OrderedDict()
        self._locks: dict[tuple[str, ...], anyio.Lock] = {}

    async def run_as_of(self, key: RunKey, sweep_id: str | None, position: int) -> RunState | None:
        """The state of run ``key`` (of sweep ``sweep_id``, if any) right after ``position``."""
        streams = [run_stream(key[0], key[1])] + ([sweep_stream(sweep_id)] if sweep_id else [])
        cache_key = tuple(streams)
        lock = self._locks.setdefault(cache_key, anyio.Lock())
        try:
            async with lock:
                return await self._fold(key, streams, position)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(cache_key, None)

    async def _fold(self, key: RunKey, streams: list[str], position: int) -> RunState | None:
        cache_key = tuple(streams)
        copies = self._copies.pop(cache_key, [])
        self._copies[cache_key] = copies  # the most recently used last
        while len(self._copies) > _KEEP_RUNS:
            self._copies.popitem(last=False)
        start = bisect.bisect_right(copies, position, key=lambda item: item[0]) - 1
        stored = (
            await self._projector.run_copy(key[0], key[1], position)
            if self._projector is not None
            else None
        )
        loader: _Loader | None = None
        after = 0
        if stored is not None and (start < 0 or copies[start][0] < stored.position):
            loader = _Loader(_from_stored(stored, streams))
            model = Fold(loader.run, loader.sweep)
            model.position = after = stored.position
            versions = dict(loader.copy.versions)
        elif start >= 0:
            loader = _Loader(_decode(copies[start][1]))
            model = Fold(loader.run, loader.sweep)
            # Skipping by position too: a copy made from a stored one read its sweep's
            # stream from the start, so that stream's version may lag behind the copy.
            model.position = after = loader.copy.position
            versions = dict(loader.copy.versions)
        else:
            model, versions = Fold(), dict.fromkeys(streams, 0)
        folded = 0
        async for record in read_streams(self._store, versions, after=after, until=position):
            model.apply(record)
            versions[record.stream] = record.version + 1
            folded += 1
            if folded % _EVERY == 0:
                model.take_changes()  # the fold's own bookkeeping, not needed here
                _keep(copies, _copy_of(model, loader, record.position, versions))
        model.take_changes()
        if loader is None or folded:
            _keep(copies, _copy_of(model, loader, position, versions))
        found = model.runs.get(key)
        if found is None and loader is not None:
            found = loader.run(key)  # untouched since the copy: the fold never loaded it
        return found


def _from_stored(stored: RunCopy, streams: list[str]) -> _Copy:
    # The stored copy knows where the run's stream goes on; its sweep's stream is read
    # from its start, skipping what the copy already holds (by position).
    versions = dict.fromkeys(streams, 0)
    versions[streams[0]] = stored.version
    sweeps = [stored.sweep] if stored.sweep is not None else []
    return _Copy(stored.position, [stored.run], sweeps, versions)


def _copy_of(model: Fold, loader: _Loader | None, position: int, versions: dict[str, int]) -> _Copy:
    runs = [model.runs[k] for k in sorted(model.runs)]
    sweeps = [model.sweeps[s] for s in sorted(model.sweeps)]
    if loader is not None:
        # States the copy held and this fold never touched are still the same.
        runs += [r for r in loader.copy.runs if (r.project, r.run_id) not in model.runs]
        sweeps += [s for s in loader.copy.sweeps if s.sweep_id not in model.sweeps]
    return _Copy(position, runs, sweeps, dict(versions))


class _Loader:
    """Hands a restored model a fresh copy of each state it asks for."""

    def __init__(self, copy: _Copy) -> None:
        self.copy = copy
        self._runs = {(r.project, r.run_id): _encode(r) for r in copy.runs}
        self._sweeps = {s.sweep_id: _encode(s) for s in copy.sweeps}

    def run(self, key: RunKey) -> RunState | None:
        raw = self._runs.get(key)
        return None if raw is None else msgspec.msgpack.decode(raw, type=RunState)

    def sweep(self, sweep_id: str) -> SweepState | None:
        raw = self._sweeps.get(sweep_id)
        return None if raw is None else msgspec.msgpack.decode(raw, type=SweepState)


def _keep(copies: list[tuple[int, bytes]], copy: _Copy) -> None:
    index = bisect.bisect_left(copies, copy.position, key=lambda item: item[0])
    if index < len(copies) and copies[index][0] == copy.position:
        return
    copies.insert(index, (copy.position, _encode(copy)))
    if len(copies) > _KEEP_COPIES:
        del copies[1]  # the first stays: it is where every backward move starts
