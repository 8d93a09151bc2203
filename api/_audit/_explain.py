"""Why a run is in the state it is: the events that decided whether it was queued."""

from __future__ import annotations

from datetime import UTC, datetime

from eventstore import (
    ClaimLapsed,
    Event,
    HeartbeatExpired,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunKilled,
    RunRevived,
    RunStopRequested,
)
from projections import RunState, RunStatus, open_projector

from .._errors import RunNotFound
from .._library._stores import StoreArg, opened_store

__all__ = ["explain"]


async def explain(project: str, run_id: str, *, store: StoreArg = None) -> list[str]:
    """Lines saying what the log holds about ``project/run_id`` and why it is (not) queued.

    Raises:
        RunNotFound: the log never mentions the run.
    """
    async with opened_store(store) as opened, open_projector(opened) as projector:
        state = await projector.run(project, run_id)
        if state is None:
            raise RunNotFound(
                f"the log never mentions run {project}/{run_id}; check the project and id"
            )
        sweep = await projector.sweep(state.sweep_id) if state.sweep_id else None
        # The run's line holds the positions of just the events described below, so a
        # run of millions of steps costs a few reads by position, not a stream scan.
        line = await projector.run_line(project, run_id)
        records = await opened.read_positions(line.events) if line is not None else []
    lines = [
        f"run {project}/{run_id}: {state.status}, incarnation {state.incarnation}, "
        f"last step {state.last_step}"
    ]
    for record in sorted(records, key=lambda r: r.position):
        said = _describe(record.event)
        if said:
            lines.append(f"  #{record.position} {_time(record.recorded_at_us)} {said}")
    if state.last_heartbeat_us is not None:
        lines.append(f"  last heartbeat at {_time(state.last_heartbeat_us)}")
    queued = sweep is not None and run_id in sweep.queue
    lines.append(f"  why: {_why(state, in_sweep=sweep is not None, queued=queued)}")
    return lines


def _time(microseconds: int) -> str:
    return f"{datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC):%Y-%m-%d %H:%M:%S}"


def _describe(event: Event) -> str | None:
    if isinstance(event, RunInitialized):
        how = "resumed" if event.resumed else "started"
        return f"incarnation {event.incarnation} {how} (pid {event.pid} on {event.host or '?'})"
    if isinstance(event, PreemptMarked):
        return f"marked preempting (incarnation {event.incarnation})"
    if isinstance(event, RunExited):
        return f"exited with code {event.exit_code}" + (
            " (interrupted)" if event.interrupted else ""
        )
    if isinstance(event, HeartbeatExpired):
        return f"watchdog: silent for over {event.timeout_s:.0f} s"
    if isinstance(event, RunRevived):
        return "wrote again after the watchdog: revived"
    if isinstance(event, RunKilled):
        return f"killed: {event.reason}"
    if isinstance(event, RunClaimed):
        return (
            f"claimed {'from the queue' if event.requeue else 'as a new run'} by {event.agent_id}"
        )
    if isinstance(event, RunStopRequested):
        return f"stop requested: {event.reason}"
    if isinstance(event, ClaimLapsed):
        return "the claim lapsed before the run started"
    return None


def _why(state: RunState, *, in_sweep: bool, queued: bool) -> str:
    status, code = state.status, state.exit_code
    if status is RunStatus.PREEMPTED:
        cause = f"exit code {code}" if code is not None else "the watchdog's expiry"
        where = (
            "queued in its sweep"
            if queued
            else ("claimed again" if in_sweep else "not in a sweep, so not queued")
        )
        return f"marked preempting, then {cause}: preempted, {where}"
    if status is RunStatus.FINISHED:
        note = " (a preempt mark does not requeue a run that exits 0)" if state.preempting else ""
        return f"exited with 0: finished{note}"
    if status is RunStatus.CRASHED:
        return "stopped writing without a preempt mark (or exited 254): crashed, not queued"
    if status is RunStatus.FAILED:
        return f"exited with {code} without a preempt mark: failed, not queued"
    if status is RunStatus.KILLED and state.stop_requested:
        return (
            f"stop requested ({state.reason}): SIGTERM, then SIGKILL after the kill "
            "delay; killed, never requeued"
        )
    if status is RunStatus.KILLED:
        return "killed (stopped on request, interrupted or its sweep cancelled): not queued"
    if state.stop_requested:
        return f"{status}, asked to stop ({state.reason}): its agent sends SIGTERM, then SIGKILL"
    return f"{status}: still live, nothing decided yet"
