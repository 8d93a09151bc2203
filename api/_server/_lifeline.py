"""A run's life for the dashboard's timeline: its incarnations as bands over wall time and
steps, and the marks that explain them (preemption, exits, expiries, revivals, fencing,
sweep claims and requeues), each with the log position it comes from.

The run's stream is read once and then only from where the last reading stopped: a
run with a million steps is read in full the first time its page is opened, and only
its new events afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import anyio
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
    StepLogged,
    run_stream,
    sweep_stream,
)

__all__ = ["Band", "Lifeline", "Lifelines", "Mark"]


class Mark(msgspec.Struct, kw_only=True):
    """One event worth showing on the timeline."""

    kind: str
    """init, resume, preempt, exit, killed, expired, revived, fenced, scheduled, claimed,
    requeued, lapsed, file, notes."""
    position: int
    recorded_at_us: int
    incarnation: int | None
    step: int | None
    """The last step logged before it (None before the first step)."""
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
    """exit 0, exit 143, killed: reason, expired; None while it lives."""
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
    """The run stream's version read so far."""
    sweep_id: str | None = None
    sweep_position: int = 0
    """The last sweep event looked at."""


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


_KINDS: dict[type, str] = {
    PreemptMarked: "preempt",
    RunExited: "exit",
    HeartbeatExpired: "expired",
    RunRevived: "revived",
    RunKilled: "killed",
    FileSaved: "file",
    NotesEdited: "notes",
}


class _Builder:
    """Folds a run's events (and its sweep's events about it) into a ``Lifeline``."""

    def __init__(self, line: Lifeline) -> None:
        self.line = line
        self.step: int | None = line.bands[-1].last_step if line.bands else None
        self.current = line.bands[-1].incarnation if line.bands else 0
        self.bands_by = {band.incarnation: band for band in line.bands}

    def _band(self, incarnation: int | None) -> Band | None:
        for band in reversed(self.line.bands):
            if incarnation is None or band.incarnation == incarnation:
                return band
        return None

    def _mark(
        self,
        kind: str,
        record: RecordedEvent,
        incarnation: int | None,
        label: str,
        *,
        in_run: bool = True,
    ) -> None:
        # A sweep event is read after the run's own events, so the step reached by then
        # says nothing about when it happened: it gets none.
        self.line.marks.append(
            Mark(
                kind=kind,
                position=record.position,
                recorded_at_us=record.recorded_at_us,
                incarnation=incarnation,
                step=self.step if in_run else None,
                label=label,
            )
        )

    def run_event(self, record: RecordedEvent) -> None:
        line, event = self.line, record.event
        if type(event) is StepLogged and event.incarnation == self.current:
            live = self.bands_by.get(event.incarnation)
            if live is not None and live.end is None:
                # The hot path: a long run is almost all steps of its live incarnation.
                line.version = record.version
                line.position = max(line.position, record.position)
                live.ended_us = record.recorded_at_us
                if record.recorded_at_us > line.last_us:
                    line.last_us = record.recorded_at_us
                step = event.step
                if self.step is None or step > self.step:
                    self.step = step
                live.steps += 1
                if live.first_step is None:
                    live.first_step = step
                live.last_step = self.step
                return
        line.version = record.version
        line.position = max(line.position, record.position)
        line.first_us = line.first_us or record.recorded_at_us
        line.last_us = max(line.last_us, record.recorded_at_us)
        incarnation = getattr(event, "incarnation", None)
        if isinstance(event, RunInitialized):
            line.sweep_id = line.sweep_id or event.sweep_id
            self.current = max(self.current, event.incarnation)
            line.bands.append(
                opened := Band(
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
            self.bands_by[event.incarnation] = opened
            self._mark(
                "resume" if event.resumed else "init", record, event.incarnation, _label(event)
            )
            return
        if isinstance(incarnation, int) and incarnation < self.current:
            line.fenced += 1
            # One mark per fenced stretch, not one per step a stale writer logged.
            if not (
                line.marks
                and line.marks[-1].kind == "fenced"
                and line.marks[-1].incarnation == incarnation
            ):
                self._mark(
                    "fenced",
                    record,
                    incarnation,
                    f"incarnation {incarnation} wrote after incarnation {self.current} "
                    "took over: fenced, ignored",
                )
            return
        band = self._band(incarnation if isinstance(incarnation, int) else None)
        if band is not None and band.end is None:
            band.ended_us = record.recorded_at_us
        if isinstance(event, StepLogged):
            if self.step is None or event.step > self.step:
                self.step = event.step
            if band is not None:
                band.steps += 1
                band.first_step = event.step if band.first_step is None else band.first_step
                band.last_step = self.step
            return
        if isinstance(event, Heartbeat):
            return
        kind = _KINDS.get(type(event))
        if kind is None:
            return
        self._mark(kind, record, incarnation, _label(event))
        if band is not None and band.end is None and kind in ("exit", "killed", "expired"):
            if isinstance(event, RunExited):
                band.end = f"exit {event.exit_code}"
            elif isinstance(event, RunKilled):
                band.end = f"killed: {event.reason}"
            else:
                band.end = "expired"
            band.end_position = record.position
        elif band is not None and kind == "revived" and band.end == "expired":
            band.end, band.end_position = None, None

    def sweep_event(self, record: RecordedEvent) -> None:
        event = record.event
        if getattr(event, "run_id", None) != self.line.run_id:
            return
        if isinstance(event, RunScheduled):
            self._mark(
                "scheduled",
                record,
                None,
                f"scheduled by sweep {self.line.sweep_id} with {event.params}",
                in_run=False,
            )
        elif isinstance(event, RunClaimed):
            kind = "requeued" if event.requeue else "claimed"
            what = "claimed again from the queue" if event.requeue else "claimed"
            self._mark(kind, record, None, f"{what} by agent {event.agent_id}", in_run=False)
        elif isinstance(event, ClaimLapsed):
            self._mark("lapsed", record, None, "claim lapsed: offered again", in_run=False)
        elif isinstance(event, RunKilled):
            self._mark("killed", record, event.incarnation, _label(event), in_run=False)


class Lifelines:
    """Built timelines, continued from where they stopped; the most recent few are kept."""

    def __init__(self, store: EventStore, keep: int = 256) -> None:
        self._store = store
        self._keep = keep
        self._lines: OrderedDict[tuple[str, str], Lifeline] = OrderedDict()
        # One lock per run: a long run's first reading must not hold up other runs' pages.
        self._locks: dict[tuple[str, str], anyio.Lock] = {}

    async def get(self, project: str, run_id: str, sweep_id: str | None) -> Lifeline:
        """The run's timeline with every event stored so far."""
        key = (project, run_id)
        lock = self._locks.setdefault(key, anyio.Lock())
        try:
            async with lock:
                return await self._continue(key, sweep_id)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(key, None)

    async def _continue(self, key: tuple[str, str], sweep_id: str | None) -> Lifeline:
        project, run_id = key
        line = self._lines.get(key)
        if line is None:
            line = Lifeline(project=project, run_id=run_id, sweep_id=sweep_id)
        line = msgspec.structs.replace(line)  # the cached one stays whole if reading fails
        line.bands = [msgspec.structs.replace(b) for b in line.bands]
        line.marks = list(line.marks)
        builder = _Builder(line)
        new_sweep: list[RecordedEvent] = []
        async for record in self._store.read_stream(run_stream(project, run_id), line.version + 1):
            builder.run_event(record)
        sweep = line.sweep_id or sweep_id
        if sweep is not None:
            line.sweep_id = sweep
            async for record in self._store.read_stream(sweep_stream(sweep)):
                if record.position > line.sweep_position:
                    new_sweep.append(record)
            for record in new_sweep:
                line.sweep_position = record.position
                builder.sweep_event(record)
            line.marks.sort(key=lambda mark: mark.position)
        self._lines.pop(key, None)
        self._lines[key] = line  # the most recently used last
        while len(self._lines) > self._keep:
            self._lines.popitem(last=False)
        return line
