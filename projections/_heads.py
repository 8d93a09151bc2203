"""Run heads: each run's state folded from its own stream, kept by the store inline.

``init`` must decide create-or-resume, and from which step, the moment it is called,
however far the shared read model lags behind the log (after a crash it may be a
million events behind). So the store keeps, for every run stream, the run's state as
of the stream's last event, written in the same transaction as each append (see
``eventstore``'s inline projections): a resume decision reads one indexed row.

The head is the same fold as the read model's (``Fold``), given only the run's own
stream: everything the run's events say (incarnation, last step, status, summary,
config, files, metric definitions, rewinds) is there. What other streams add to the
read model's ``RunState`` is not: the sweep's parameters and claims, and counts kept
on the sweep. A run that started in a sweep names it in ``sweep_id`` as its first
``RunInitialized`` said (the read model names it only once the sweep exists).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from operator import attrgetter, is_

import msgspec

from eventstore import EventStore, InvalidArgument, RecordedEvent, RunInitialized, StepLogged

from ._fold import Fold
from ._fold_state import _target
from ._state import RunState

__all__ = ["HeadsCheck", "RunHeads", "check_heads", "run_heads"]

_encode = msgspec.msgpack.Encoder().encode
_event = attrgetter("event")
_incarnation = attrgetter("event.incarnation")
_decode = msgspec.msgpack.Decoder(RunState).decode


class RunHeads:
    """The inline projection of run streams: ``RunState`` as msgpack (empty bytes
    while the stream holds nothing the fold accepts, e.g. steps before any init)."""

    name = "runlog.run-heads/1"
    """Change it whenever the fold's result for the same events changes: stores then
    drop the heads the old fold wrote and recompute them."""

    def applies_to(self, stream: str) -> bool:
        """Run streams (``run:{project}/{run_id}``)."""
        target = _target(stream)
        return target is not None and target[0]

    def fold(self, stream: str, state: bytes | None, events: Sequence[RecordedEvent]) -> bytes:
        """The run's state after ``events``, given its state before them."""
        target = _target(stream)
        if target is None or not target[0]:
            raise ValueError(f"{stream!r} is not a run stream")
        key = target[1]
        fold = Fold()
        before = self.decode(state)
        if before is not None:
            fold.runs[key] = before
        only_steps = _only_steps(events)
        if not (only_steps and _one_incarnation(events) and fold._steps(events, 0, len(events))):
            fold.apply_all(events)
        run = fold.runs.get(key)
        if run is None:
            return b""
        if run.sweep_id is None and run.started and not only_steps:
            run.sweep_id = next(
                (
                    e.event.sweep_id
                    for e in events
                    if type(e.event) is RunInitialized and e.event.sweep_id is not None
                ),
                None,
            )
        return _encode(run)

    @staticmethod
    def decode(state: bytes | None) -> RunState | None:
        """The ``RunState`` a head holds, None for none."""
        return _decode(state) if state else None


def _only_steps(events: Sequence[RecordedEvent]) -> bool:
    """Whether ``events`` are all ``StepLogged`` (checked in C: this is the hot path)."""
    return bool(events) and all(map(is_, map(type, map(_event, events)), repeat(StepLogged)))


def _one_incarnation(events: Sequence[RecordedEvent]) -> bool:
    """Whether ``StepLogged`` events are all of one incarnation: what almost every
    append of a training run is, folded in one pass (``Fold._steps``)."""
    return len(set(map(_incarnation, events))) == 1


def run_heads() -> RunHeads:
    """The inline projection that keeps run heads (pass it as ``open_store(inline=...)``)."""
    return RunHeads()


class HeadsCheck(msgspec.Struct, frozen=True):
    """Stored run heads compared with a fold of the log (``check_heads``)."""

    position: int
    """The log position the check read up to."""
    heads: int
    """Heads stored."""
    behind: int
    """Heads that reflect an earlier version of their stream than its last (appended
    without the projection); they are caught up when read, so this is not damage."""
    differences: list[str]
    """One line per head whose state is not the fold of its stream up to its version."""

    @property
    def ok(self) -> bool:
        """Every stored head equals the fold of its stream."""
        return not self.differences


async def check_heads(
    store: EventStore, *, progress: Callable[[int], None] | None = None
) -> HeadsCheck:
    """Compare every stored run head with the fold of its stream, from position 0.

    Each head is compared at the version it reflects, so heads left behind by appends
    made without the projection are counted (``behind``), not reported as different.
    ``progress`` is called with the number of events read after each page.

    Raises:
        InvalidArgument: the store keeps no heads (an ``http(s)://`` store).
    """
    read = getattr(store, "stored_heads", None)
    if read is None:
        raise InvalidArgument(f"{store.url} keeps no run heads to check")
    stored = {head.stream: head for head in await read()}
    end = await store.head()  # read after the heads: no stored head is beyond it
    heads = RunHeads()
    states: dict[str, bytes] = {}
    last: dict[str, int] = {}
    differences: list[str] = []
    async for page in store.read_all_pages(1, to_position=end, size=10_000):
        by_stream: dict[str, list[RecordedEvent]] = {}
        for record in page:
            if record.stream in by_stream:
                by_stream[record.stream].append(record)
            elif heads.applies_to(record.stream):
                by_stream[record.stream] = [record]
        for stream, events in by_stream.items():
            state = states.get(stream)
            last[stream] = events[-1].version
            target = stored.get(stream)
            if target is not None and events[0].version <= target.version <= events[-1].version:
                cut = target.version - events[0].version + 1
                state = heads.fold(stream, state, events[:cut])
                if heads.decode(state) != heads.decode(target.state):
                    differences.append(
                        f"{stream}: the stored head at version {target.version} is not the "
                        "fold of the stream"
                    )
                events = events[cut:]
            if events:
                state = heads.fold(stream, state, events)
            if state is not None:
                states[stream] = state
        if progress is not None:
            progress(len(page))
    behind = 0
    for stream, target in stored.items():
        if stream not in last:
            differences.append(f"{stream}: a head is stored for a stream with no run events")
        elif target.version < last[stream]:
            behind += 1
    return HeadsCheck(end, len(stored), behind, differences)
