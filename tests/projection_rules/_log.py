"""Build event logs for fold tests without a store: positions and times assigned in order."""

from __future__ import annotations

from typing import Any

from eventstore import (
    Event,
    HeartbeatExpired,
    PreemptMarked,
    RecordedEvent,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunKilled,
    RunScheduled,
    SweepCreated,
)
from projections import Fold, RunState, SweepState


class Log:
    """An in-order list of recorded events; each event is 1 ms after the one before."""

    def __init__(self) -> None:
        self.records: list[RecordedEvent] = []
        self.versions: dict[str, int] = {}

    def add(self, stream: str, *events: Event) -> Log:
        for event in events:
            position = len(self.records) + 1
            version = self.versions.get(stream, -1) + 1
            self.versions[stream] = version
            self.records.append(
                RecordedEvent(position, stream, version, 1_000_000_000 + position * 1000, event)
            )
        return self

    def run(self, run_id: str, *events: Event, project: str = "p") -> Log:
        return self.add(f"run:{project}/{run_id}", *events)

    def sweep(self, sweep_id: str, *events: Event) -> Log:
        return self.add(f"sweep:{sweep_id}", *events)

    def fold(self) -> Fold:
        model = Fold()
        model.apply_all(self.records)
        return model

    def state(self, run_id: str, project: str = "p") -> RunState:
        state = self.fold().runs[(project, run_id)]
        return state

    def sweep_state(self, sweep_id: str) -> SweepState:
        return self.fold().sweeps[sweep_id]


def init(run_id: str = "a", incarnation: int = 1, **fields: Any) -> RunInitialized:
    fields.setdefault("resumed", incarnation > 1)
    fields.setdefault("starting_step", 0)
    return RunInitialized(project="p", run_id=run_id, incarnation=incarnation, **fields)


def sweep_created(sweep_id: str = "s", **fields: Any) -> SweepCreated:
    fields.setdefault("method", "grid")
    fields.setdefault("config", {})
    fields.setdefault("seed", 0)
    return SweepCreated(sweep_id=sweep_id, project="p", **fields)


def in_sweep(log: Log, run_id: str = "a", sweep_id: str = "s") -> Log:
    """A sweep ``sweep_id`` (created if new) with ``run_id`` scheduled, claimed and started."""
    if not any(r.stream == f"sweep:{sweep_id}" for r in log.records):
        log.sweep(sweep_id, sweep_created(sweep_id))
    log.sweep(sweep_id, RunScheduled(run_id=run_id, params={"lr": 0.1}))
    log.sweep(sweep_id, RunClaimed(run_id=run_id, agent_id="agent-1"))
    return log.run(run_id, init(run_id, sweep_id=sweep_id))


def to_status(log: Log, status: str, run_id: str = "a", incarnation: int = 1) -> Log:
    """Drive a started run (current incarnation ``incarnation``) into ``status``."""
    if status == "running":
        return log
    if status == "preempting":
        return log.run(run_id, PreemptMarked(incarnation=incarnation))
    if status == "preempted":
        return log.run(
            run_id,
            PreemptMarked(incarnation=incarnation),
            RunExited(incarnation=incarnation, exit_code=143),
        )
    if status == "finished":
        return log.run(run_id, RunExited(incarnation=incarnation, exit_code=0))
    if status == "failed":
        return log.run(run_id, RunExited(incarnation=incarnation, exit_code=1))
    if status == "crashed":
        return log.run(
            run_id,
            HeartbeatExpired(
                incarnation=incarnation, last_position=0, observed_at_us=0, timeout_s=300
            ),
        )
    if status == "killed":
        return log.run(run_id, RunKilled(reason="stopped", incarnation=incarnation))
    raise ValueError(status)
