"""Answers for audits: what the log says about runs and sweeps, now or at a past point.

Everything here reads; nothing appends. A store that does not exist is an error, not
a new empty store, so a mistyped path never looks like an empty history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from eventstore import (
    EventStore,
    InvalidArgument,
    RecordedEvent,
    StepLogged,
    parse_stream,
    read_streams,
    run_stream,
    sweep_stream,
)
from projections import Fold, Projector, RunLine, RunState, SweepState, open_projector

from .._errors import RunNotFound, SweepNotFound
from .._library._stores import StoreArg, existing_store

__all__ = [
    "Incarnation",
    "Replayed",
    "RunReport",
    "TimelineEntry",
    "existing_store",
    "find_run",
    "incarnations_of",
    "list_runs",
    "list_sweeps",
    "replay",
    "show_run",
    "show_sweep",
    "timeline",
]

# Fields every event changes; the timeline shows what else it changed.
_ALWAYS_CHANGING = frozenset({"updated_us", "last_position", "last_event_us"})


class Incarnation(msgspec.Struct, frozen=True):
    """One process's life as the run's writer, from its ``RunInitialized`` to its end."""

    number: int
    position: int
    """Position of the ``RunInitialized`` that opened it."""
    started_us: int
    resumed: bool
    starting_step: int
    host: str
    pid: int
    ended: str | None = None
    """How it ended (``exit 0``, ``exit 143``, ``killed: ...``, ``expired`` when the
    watchdog gave up on it and nothing later was recorded), None while it lives or if a
    later incarnation took over without an exit being recorded."""
    ended_position: int | None = None


class RunReport(msgspec.Struct, frozen=True):
    """A run's state with its incarnations, as ``runlog show`` prints it."""

    state: RunState
    incarnations: list[Incarnation]
    position: int
    """The log position the report reflects."""


class TimelineEntry(msgspec.Struct, frozen=True):
    """One event of a run's history and what it changed in the run's state."""

    position: int
    recorded_at_us: int
    stream: str
    version: int
    type: str
    incarnation: int | None
    changes: dict[str, list[Any]]
    """``field: [before, after]`` for every field of the run's state the event changed
    (dict fields per key, as ``summary.loss``); empty when the fold ignored the event."""


class Replayed(msgspec.Struct, frozen=True):
    """The state of runs and sweeps at a past point, computed by replaying the log."""

    position: int
    recorded_at_us: int | None
    runs: list[RunState]
    sweeps: list[SweepState]


def split_run(name: str) -> tuple[str | None, str]:
    """``PROJECT/RUN_ID`` or a bare ``RUN_ID`` as (project or None, run id)."""
    project, slash, run_id = name.rpartition("/")
    if not run_id or (slash and not project):
        raise InvalidArgument(f"name a run as PROJECT/RUN_ID or RUN_ID, not {name!r}")
    return (project if slash else None), run_id


async def find_run(projector: Projector, name: str) -> RunState:
    """The run ``name`` (``PROJECT/RUN_ID``, or a ``RUN_ID`` unique across projects).

    Raises:
        RunNotFound: no such run, or a bare id that several projects use.
    """
    project, run_id = split_run(name)
    if project is not None:
        state = await projector.run(project, run_id)
        if state is None:
            raise RunNotFound(
                f"the log has no run {project}/{run_id}; `runlog runs` lists the runs it has"
            )
        return state
    matches = [state for state in await projector.runs() if state.run_id == run_id]
    if not matches:
        raise RunNotFound(f"the log has no run {run_id!r}; `runlog runs` lists the runs it has")
    if len(matches) > 1:
        projects = ", ".join(sorted(state.project for state in matches))
        raise RunNotFound(
            f"run id {run_id!r} is used in several projects ({projects}); name it as PROJECT/RUN_ID"
        )
    return matches[0]


async def list_runs(
    *,
    project: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    store: StoreArg = None,
) -> list[RunState]:
    """Runs, optionally of one project and in one status, oldest first; at most ``limit``."""
    async with existing_store(store) as opened, open_projector(opened) as projector:
        return await projector.runs(project, status, limit=limit)


async def list_sweeps(
    *, project: str | None = None, status: str | None = None, store: StoreArg = None
) -> list[SweepState]:
    """Sweeps, optionally of one project and in one status, oldest first."""
    async with existing_store(store) as opened, open_projector(opened) as projector:
        return await projector.sweeps(project, status)


async def show_sweep(sweep_id: str, *, store: StoreArg = None) -> SweepState:
    """A sweep's current state: status, counts, queue, claims.

    Raises:
        SweepNotFound: the log has no such sweep.
    """
    async with existing_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
    if sweep is None:
        raise SweepNotFound(f"the log has no sweep {sweep_id!r}; `runlog sweeps` lists them")
    return sweep


async def show_run(name: str, *, store: StoreArg = None) -> RunReport:
    """A run's state, last step, summary, notes, files and incarnations.

    Everything comes from the read model's rows (the run's state and its line), never
    from reading the run's stream, so a run of millions of steps answers as fast as a
    short one.

    Raises:
        RunNotFound: the log has no such run.
    """
    async with existing_store(store) as opened, open_projector(opened) as projector:
        state = await find_run(projector, name)
        line = await projector.run_line(state.project, state.run_id)
        return RunReport(state, incarnations_of(line), projector.position)


def incarnations_of(line: RunLine | None) -> list[Incarnation]:
    """The incarnations of a run's line, as ``runlog show`` lists them."""
    if line is None:
        return []
    return [
        Incarnation(
            number=band.incarnation,
            position=band.position,
            started_us=band.started_us,
            resumed=band.resumed,
            starting_step=band.starting_step,
            host=band.host,
            pid=band.pid,
            ended=band.end,
            ended_position=band.end_position,
        )
        for band in line.line.bands
    ]


async def timeline(
    name: str,
    *,
    store: StoreArg = None,
    since: int = 0,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AsyncIterator[TimelineEntry]:
    """Every event of a run, in position order, with what it changed in the run's state.

    The run's own stream and the events of its sweep that name it are folded from
    position 0 exactly as the projections fold them; entries before position ``since``
    are folded but not yielded. Events are read a page at a time and never held all
    at once. ``progress(done, total)`` is called as events are read; ``total`` (the
    events of those streams) comes from the store's index, before reading any.

    Raises:
        RunNotFound: the log has no such run.
    """
    async with existing_store(store) as opened, open_projector(opened) as projector:
        state = await find_run(projector, name)
        key = (state.project, state.run_id)
        streams = [run_stream(state.project, state.run_id)]
        if state.sweep_id is not None:
            streams.append(sweep_stream(state.sweep_id))
        total = 0
        if progress is not None:
            for stream in streams:
                info = await opened.stream_info(stream)
                total += info.version + 1 if info is not None else 0
            progress(0, total)
        model = Fold()
        shown = 0
        read = 0
        async for record in read_streams(opened, streams):
            read += 1
            if progress is not None and read % 5000 == 0:
                progress(read, total)
            event = record.event
            if not _concerns(record, state.run_id):
                model.apply(record)
                continue
            before = model.runs.get(key)
            if isinstance(event, StepLogged) and before is not None:
                changes = _step_changes(model, record, before)
            else:
                blank = RunState(project=state.project, run_id=state.run_id)
                snapshot = msgspec.to_builtins(before if before is not None else blank)
                model.apply(record)
                after = model.runs.get(key)
                changes = _diff(snapshot, msgspec.to_builtins(after if after else blank))
            if not changes and not _names_run(record, state.run_id):
                continue  # a sweep-wide event that did nothing to this run
            if record.position < since:
                continue
            yield TimelineEntry(
                position=record.position,
                recorded_at_us=record.recorded_at_us,
                stream=record.stream,
                version=record.version,
                type=record.type,
                incarnation=getattr(event, "incarnation", None),
                changes=changes,
            )
            shown += 1
            if limit is not None and shown >= limit:
                return


async def replay(
    *,
    store: StoreArg = None,
    until: int | None = None,
    as_of_us: int | None = None,
    target: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Replayed:
    """The state of every run and sweep (or of ``target``) as of a past point.

    ``until`` is a log position, ``as_of_us`` a time in microseconds since the epoch
    (the last event recorded at or before it); neither means the head. The state is
    computed by folding the log from position 0, never read from the read model.
    ``target`` is a sweep id or a run (``PROJECT/RUN_ID`` or a unique ``RUN_ID``).
    ``progress(done, total)`` is called as events are folded.

    Raises:
        RunNotFound, SweepNotFound: ``target`` names nothing in the log.
    """
    if until is not None and as_of_us is not None:
        raise InvalidArgument("give --until or --as-of, not both")
    if until is not None and until < 0:
        raise InvalidArgument(f"--until takes a position >= 0, not {until}")
    async with existing_store(store) as opened:
        head = await opened.head()
        if as_of_us is not None:
            position = await opened.position_at(as_of_us)
        else:
            position = head if until is None else min(until, head)
        async with open_projector(opened) as projector:
            streams = await _target_streams(opened, projector, target) if target else None
            model = Fold()
            if streams is None:
                done = 0
                async for page in opened.read_all_pages(1, to_position=position, size=5000):
                    model.apply_all(page)
                    done += len(page)
                    if progress is not None:
                        progress(done, position)
            else:
                async for record in read_streams(opened, streams, until=position):
                    model.apply(record)
                if progress is not None:
                    progress(position, position)
    runs = [model.runs[k] for k in sorted(model.runs) if model.runs[k].started]
    sweeps = [model.sweeps[k] for k in sorted(model.sweeps)]
    if target is not None:
        runs = [r for r in runs if _is_target_run(r, target)]
        sweeps = [s for s in sweeps if s.sweep_id == target]
    return Replayed(position=position, recorded_at_us=as_of_us, runs=runs, sweeps=sweeps)


async def _target_streams(store: EventStore, projector: Projector, target: str) -> list[str]:
    if "/" not in target:
        sweep = await projector.sweep(target)
        if sweep is not None:
            members = await projector.runs()
            return [sweep_stream(target)] + [
                run_stream(r.project, r.run_id) for r in members if r.sweep_id == target
            ]
    try:
        state = await find_run(projector, target)
    except RunNotFound:
        if "/" in target:
            raise
        raise RunNotFound(
            f"the log has no run or sweep {target!r}; `runlog runs` and `runlog sweeps` list them"
        ) from None
    streams = [run_stream(state.project, state.run_id)]
    if state.sweep_id is not None:
        streams.append(sweep_stream(state.sweep_id))
    return streams


def _is_target_run(state: RunState, target: str) -> bool:
    project, run_id = split_run(target)
    return state.run_id == run_id and project in (None, state.project)


def _concerns(record: RecordedEvent, run_id: str) -> bool:
    target = parse_stream(record.stream)
    if target is not None and target[0] == "run":
        return True
    mentioned = getattr(record.event, "run_id", None)
    return mentioned is None or mentioned == run_id


def _names_run(record: RecordedEvent, run_id: str) -> bool:
    target = parse_stream(record.stream)
    return (target is not None and target[0] == "run") or getattr(
        record.event, "run_id", None
    ) == run_id


def _step_changes(model: Fold, record: RecordedEvent, before: RunState) -> dict[str, list[Any]]:
    """A ``StepLogged``'s changes, without copying the whole state (runs log millions)."""
    event = record.event
    assert isinstance(event, StepLogged)
    old = {
        "last_step": before.last_step,
        "next_step": before.next_step,
        "steps": before.steps,
        "dropped_steps": before.dropped_steps,
        "fenced_events": before.fenced_events,
        "status": before.status,
    }
    old_summary = {name: before.summary.get(name) for name in event.metrics}
    model.apply(record)
    changes: dict[str, list[Any]] = {}
    for name, value in old.items():
        new = getattr(before, name)  # the fold changes the state in place
        if new != value:
            changes[name] = [value, new]
    for name, value in old_summary.items():
        new = before.summary.get(name)
        if new != value:
            changes[f"summary.{name}"] = [value, new]
    return changes


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    changes: dict[str, list[Any]] = {}
    for name in after.keys() | before.keys():
        if name in _ALWAYS_CHANGING:
            continue
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(old.keys() | new.keys()):
                if old.get(key) != new.get(key):
                    changes[f"{name}.{key}"] = [old.get(key), new.get(key)]
        else:
            changes[name] = [old, new]
    return dict(sorted(changes.items()))


def parse_time(text: str) -> int:
    """An ISO 8601 time (``2026-11-22T12:00:00Z``; no zone means local time) or
    ``@SECONDS`` since the epoch, as microseconds since the epoch."""
    from datetime import datetime

    text = text.strip()
    try:
        if text.startswith("@"):
            return int(float(text[1:]) * 1_000_000)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"cannot read the time {text!r}; use ISO 8601 like 2026-11-22T12:00:00Z, or "
            "@SECONDS since the epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time without a zone is the user's local time
    return int(moment.timestamp() * 1_000_000)
