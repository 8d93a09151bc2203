"""A run's life as the read model keeps it: its incarnations (bands over wall time and
steps), the marks that explain them (preemption, exits, expiries, revivals, fencing,
sweep claims and requeues) and the positions of the events ``explain`` describes.

``runlog show`` (incarnations), the dashboard's timeline and ``runlog explain`` all
answer from one stored ``RunLine`` per run instead of reading the run's stream: the
line is folded here from events, in log order, by the same code on every path (the
read model's chunks, a rebuild, a replay that ``verify`` compares with, and the
fallback ``line_from_log`` for read models that keep no lines). The fold is pure: it
reads nothing but the events and the line it continues, so folding a log in one go or
chunk by chunk gives the same line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from eventstore import (
    ClaimLapsed,
    EventStore,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    NotesEdited,
    PreemptMarked,
    RecordedEvent,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunKilled,
    RunRevived,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    read_streams,
    run_stream,
    sweep_stream,
)

from ._fold_state import RunKey

__all__ = [
    "Band",
    "Lifeline",
    "Lines",
    "Mark",
    "RunLine",
    "line_digest",
    "line_from_log",
]


class Mark(msgspec.Struct, kw_only=True):
    """One event worth showing on the timeline."""

    kind: str
    """init, resume, preempt, exit, killed, expired, revived, fenced, scheduled, claimed,
    requeued, lapsed, file, notes."""
    position: int
    recorded_at_us: int
    incarnation: int | None
    step: int | None
    """The last step logged before it (None before the first step, and for sweep events)."""
    label: str


class Band(msgspec.Struct, kw_only=True):
    """One incarnation: a process's time as the run's writer."""

    incarnation: int
    position: int
    started_us: int
    ended_us: int
    """Its last event's time (its exit, or the last thing it wrote)."""
    first_step: int | None = None
    last_step: int | None = None
    steps: int = 0
    resumed: bool = False
    starting_step: int = 0
    host: str = ""
    pid: int = 0
    end: str | None = None
    """exit 0, exit 143, killed: reason, expired; None while it lives. An exit or a kill
    after an expiry replaces ``expired``: it is how the incarnation really ended."""
    end_position: int | None = None


class Lifeline(msgspec.Struct, kw_only=True):
    """The timeline of one run, as of ``position``."""

    project: str
    run_id: str
    bands: list[Band] = []
    marks: list[Mark] = []
    fenced: int = 0
    """Events an older incarnation wrote after a newer one took over (ignored by the fold)."""
    first_us: int = 0
    last_us: int = 0
    position: int = 0
    version: int = -1
    """The run stream's version folded so far."""
    sweep_id: str | None = None
    sweep_position: int = 0
    """The last sweep event about the run."""


class RunLine(msgspec.Struct, kw_only=True):
    """What the read model keeps per run: its ``Lifeline`` and what its fold goes on from."""

    line: Lifeline
    step: int | None = None
    """The highest step logged by a writer that was not fenced (None before any)."""
    current: int = 0
    """The newest incarnation started."""
    events: list[int] = []
    """Positions of the run's events ``explain`` describes (starts, preempt marks, exits,
    expiries, revivals, kills, stop requests, and its sweep's claims and lapses), in
    log order: ``explain`` reads just these from the log."""


# What explain describes; every other event of a run is on its line only as a count
# (steps) or a mark (files, notes, fenced writes, scheduling).
_EXPLAINED_RUN = (
    RunInitialized,
    PreemptMarked,
    RunExited,
    HeartbeatExpired,
    RunRevived,
    RunKilled,
    RunStopRequested,
)
_EXPLAINED_SWEEP = (RunClaimed, ClaimLapsed, RunKilled)

_KINDS: dict[type, str] = {
    PreemptMarked: "preempt",
    RunExited: "exit",
    HeartbeatExpired: "expired",
    RunRevived: "revived",
    RunKilled: "killed",
    FileSaved: "file",
    NotesEdited: "notes",
}

_encode = msgspec.msgpack.Encoder().encode
decode_line = msgspec.msgpack.Decoder(RunLine).decode


def encode_line(line: RunLine) -> bytes:
    """The stored form of a line (msgpack)."""
    return _encode(line)


def line_digest(line: RunLine) -> bytes:
    """A digest of a line, for comparing a read model with a replay."""
    return hashlib.blake2b(_encode(line), digest_size=16).digest()


def _label(event: Any) -> str:
    if isinstance(event, RunInitialized):
        return (
            f"incarnation {event.incarnation} started"
            + (f", resumed at step {event.starting_step}" if event.resumed else "")
            + (f" on {event.host} pid {event.pid}" if event.host else "")
        )
    if isinstance(event, PreemptMarked):
        return f"incarnation {event.incarnation} marked preempting"
    if isinstance(event, RunExited):
        return f"incarnation {event.incarnation} exited with code {event.exit_code}" + (
            " (interrupted)" if event.interrupted else ""
        )
    if isinstance(event, HeartbeatExpired):
        return (
            f"incarnation {event.incarnation} silent for {event.timeout_s:g} s: expired "
            f"(last seen at #{event.last_position})"
        )
    if isinstance(event, RunRevived):
        return f"incarnation {event.incarnation} wrote again: revived"
    if isinstance(event, RunKilled):
        return f"killed: {event.reason}"
    if isinstance(event, FileSaved):
        return f"saved {event.name} ({event.size} bytes)"
    if isinstance(event, NotesEdited):
        return "notes edited"
    return type(event).__name__


def _mark(
    run: RunLine, kind: str, record: RecordedEvent, incarnation: int | None, label: str, step: bool
) -> None:
    run.line.marks.append(
        Mark(
            kind=kind,
            position=record.position,
            recorded_at_us=record.recorded_at_us,
            incarnation=incarnation,
            step=run.step if step else None,
            label=label,
        )
    )


def _band(run: RunLine, incarnation: int | None) -> Band | None:
    for band in reversed(run.line.bands):
        if incarnation is None or band.incarnation == incarnation:
            return band
    return None


def fold_run_event(run: RunLine, record: RecordedEvent) -> None:
    """Fold one event of the run's own stream into its line."""
    line, event = run.line, record.event
    line.version = record.version
    if record.position > line.position:
        line.position = record.position
    if type(event) is StepLogged and event.incarnation == run.current:
        live = line.bands[-1] if line.bands else None
        if live is not None and live.incarnation == run.current and live.end is None:
            # The hot path: a long run is almost all steps of its live incarnation.
            live.ended_us = record.recorded_at_us
            line.first_us = line.first_us or record.recorded_at_us
            if record.recorded_at_us > line.last_us:
                line.last_us = record.recorded_at_us
            step = event.step
            if run.step is None or step > run.step:
                run.step = step
            live.steps += 1
            if live.first_step is None:
                live.first_step = step
            live.last_step = run.step
            return
    line.first_us = line.first_us or record.recorded_at_us
    line.last_us = max(line.last_us, record.recorded_at_us)
    if isinstance(event, _EXPLAINED_RUN):
        run.events.append(record.position)
    incarnation = getattr(event, "incarnation", None)
    if isinstance(event, RunInitialized):
        line.sweep_id = line.sweep_id or event.sweep_id
        run.current = max(run.current, event.incarnation)
        line.bands.append(
            Band(
                incarnation=event.incarnation,
                position=record.position,
                started_us=record.recorded_at_us,
                ended_us=record.recorded_at_us,
                resumed=event.resumed,
                starting_step=event.starting_step,
                host=event.host,
                pid=event.pid,
            )
        )
        kind = "resume" if event.resumed else "init"
        _mark(run, kind, record, event.incarnation, _label(event), True)
        return
    if isinstance(incarnation, int) and incarnation < run.current:
        line.fenced += 1
        # One mark per fenced stretch, not one per step a stale writer logged.
        last = line.marks[-1] if line.marks else None
        if not (last and last.kind == "fenced" and last.incarnation == incarnation):
            _mark(
                run,
                "fenced",
                record,
                incarnation,
                f"incarnation {incarnation} wrote after incarnation {run.current} "
                "took over: fenced, ignored",
                True,
            )
        return
    band = _band(run, incarnation if isinstance(incarnation, int) else None)
    if band is not None and band.end is None:
        band.ended_us = record.recorded_at_us
    if isinstance(event, StepLogged):
        if run.step is None or event.step > run.step:
            run.step = event.step
        if band is not None:
            band.steps += 1
            band.first_step = event.step if band.first_step is None else band.first_step
            band.last_step = run.step
        return
    if isinstance(event, Heartbeat):
        return
    found = _KINDS.get(type(event))
    if found is None:
        return
    kind = found
    _mark(run, kind, record, incarnation, _label(event), True)
    if band is None:
        return
    if kind in ("exit", "killed") and band.end in (None, "expired"):
        if band.end == "expired":
            band.ended_us = record.recorded_at_us
        band.end = (
            f"exit {event.exit_code}"
            if isinstance(event, RunExited)
            else f"killed: {getattr(event, 'reason', '')}"
        )
        band.end_position = record.position
    elif kind == "expired" and band.end is None:
        band.end, band.end_position = "expired", record.position
    elif kind == "revived" and band.end == "expired":
        band.end, band.end_position = None, None


def _steps(run: RunLine, batch: Sequence[RecordedEvent], start: int, count: int) -> int:
    """Fold the stretch of ``StepLogged`` from ``batch[start]`` that the live incarnation
    wrote, all at once (as ``fold_run_event`` on each would); the index after it."""
    first = batch[start]
    event = first.event
    assert isinstance(event, StepLogged)
    line = run.line
    live = line.bands[-1] if line.bands else None
    if (
        event.incarnation != run.current
        or live is None
        or live.incarnation != run.current
        or live.end is not None
    ):
        fold_run_event(run, first)
        return start + 1
    stream, incarnation = first.stream, event.incarnation
    end = start + 1
    top = event.step
    while end < count:
        following = batch[end]
        step_event = following.event
        if (
            following.stream != stream
            or type(step_event) is not StepLogged
            or step_event.incarnation != incarnation
        ):
            break
        if step_event.step > top:
            top = step_event.step
        end += 1
    last = batch[end - 1]
    line.version = last.version
    if last.position > line.position:
        line.position = last.position
    # recorded_at never decreases along positions: the stretch's last is its latest.
    live.ended_us = last.recorded_at_us
    line.first_us = line.first_us or first.recorded_at_us
    if last.recorded_at_us > line.last_us:
        line.last_us = last.recorded_at_us
    if run.step is None or top > run.step:
        run.step = top
    live.steps += end - start
    if live.first_step is None:
        live.first_step = event.step
    live.last_step = run.step
    return end


def fold_sweep_event(run: RunLine, record: RecordedEvent) -> None:
    """Fold one event of the run's sweep that names the run into its line."""
    event = record.event
    run.line.sweep_position = record.position
    if isinstance(event, _EXPLAINED_SWEEP):
        run.events.append(record.position)
    if isinstance(event, RunScheduled):
        label = f"scheduled by sweep {run.line.sweep_id} with {event.params}"
        _mark(run, "scheduled", record, None, label, False)
    elif isinstance(event, RunClaimed):
        kind = "requeued" if event.requeue else "claimed"
        what = "claimed again from the queue" if event.requeue else "claimed"
        _mark(run, kind, record, None, f"{what} by agent {event.agent_id}", False)
    elif isinstance(event, ClaimLapsed):
        _mark(run, "lapsed", record, None, "claim lapsed: offered again", False)
    elif isinstance(event, RunKilled):
        _mark(run, "killed", record, event.incarnation, _label(event), False)


class Lines:
    """Runs' lines, folded from events in log order; the read models keep them.

    Args:
        load: returns the stored line of a run not yet in memory (or None).
    """

    def __init__(self, load: Callable[[RunKey], RunLine | None] | None = None) -> None:
        self.load = load
        self.lines: dict[RunKey, RunLine] = {}
        self.changed: set[RunKey] = set()
        self._stream = ""
        self._run: RunLine | None = None

    def line(self, key: RunKey) -> RunLine:
        """The run's line (loaded, or new), kept in memory and marked changed."""
        found = self.lines.get(key)
        if found is None:
            found = self.load(key) if self.load is not None else None
            if found is None:
                found = RunLine(line=Lifeline(project=key[0], run_id=key[1]))
            self.lines[key] = found
        self.changed.add(key)
        return found

    def apply_all(
        self,
        records: Iterable[RecordedEvent],
        sweep_project: Callable[[RecordedEvent], str | None],
    ) -> None:
        """Fold ``records``; ``sweep_project`` names the project of a sweep event's sweep
        as the event found it (None: no such sweep yet), since a sweep event names its
        run by id only."""
        batch = records if isinstance(records, Sequence) else list(records)
        count, index = len(batch), 0
        while index < count:
            record = batch[index]
            index += 1
            stream = record.stream
            if stream == self._stream and self._run is not None:
                if type(record.event) is StepLogged:
                    index = _steps(self._run, batch, index - 1, count)
                else:
                    fold_run_event(self._run, record)
                continue
            kind, _, rest = stream.partition(":")
            if kind == "run":
                project, slash, run_id = rest.rpartition("/")
                if not slash:
                    continue
                run = self.line((project, run_id))
                self._stream, self._run = stream, run
                fold_run_event(run, record)
            elif kind == "sweep":
                named = getattr(record.event, "run_id", None)
                owner = sweep_project(record) if isinstance(named, str) else None
                if owner is None or not isinstance(named, str):
                    continue
                run = self.line((owner, named))
                if run.line.sweep_id is None:
                    run.line.sweep_id = rest
                if run.line.sweep_id == rest:
                    fold_sweep_event(run, record)

    def take_changes(self) -> list[tuple[RunKey, RunLine]]:
        """The lines changed since the last call, in key order; call it once per
        ``apply_all``."""
        changed = [(key, self.lines[key]) for key in sorted(self.changed)]
        self.changed.clear()
        # The next event of the same stream must mark its line changed again.
        self._stream, self._run = "", None
        return changed

    def forget(self) -> None:
        """Drop the lines held in memory (they are reloaded when needed)."""
        self.lines.clear()
        self.changed.clear()
        self._stream, self._run = "", None


async def line_from_log(store: EventStore, project: str, run_id: str) -> RunLine | None:
    """A run's line folded from its stream and its sweep's stream: what a read model that
    keeps lines holds, for one that does not (a server's, over HTTP)."""
    stream = run_stream(project, run_id)
    sweep_id: str | None = None
    async for record in store.read_stream(stream):
        if isinstance(record.event, RunInitialized) and record.event.sweep_id:
            sweep_id = record.event.sweep_id
            break
    lines = Lines()
    streams = [stream] + ([sweep_stream(sweep_id)] if sweep_id else [])
    async for record in read_streams(store, streams):
        lines.apply_all([record], lambda _: project)
    return lines.lines.get((project, run_id))
