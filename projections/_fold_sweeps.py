"""The sweep rules of the fold: how each event of a sweep stream changes the sweep and
its runs (contract §8, §9): commands its state does not allow are ignored, the queue of
preempted runs is FIFO, a lapsed claim puts a run back at the front.
"""

from __future__ import annotations

import msgspec

from eventstore import (
    AgentHeartbeat,
    AgentStarted,
    AgentStopped,
    ClaimLapsed,
    RecordedEvent,
    RunClaimed,
    RunScheduled,
    SweepCancelled,
    SweepCreated,
    SweepFinished,
    SweepPaused,
    SweepResumed,
    SweepStopped,
)

from ._fold_state import FoldState
from ._state import AgentInfo, RunState, RunStatus, SweepState, SweepStatus

__all__ = ["SweepRules"]


class SweepRules(FoldState):
    """The rules of sweep streams; the second layer of ``Fold``."""

    # --- sweep stream -------------------------------------------------------------------

    def _sweep_created(self, event: SweepCreated, record: RecordedEvent, sweep_id: str) -> None:
        if self.sweep(sweep_id) is not None:
            return  # a sweep is created once
        state = self.sweeps[sweep_id] = SweepState(
            sweep_id=sweep_id,
            project=event.project,
            method=event.method,
            config=event.config,
            seed=event.seed,
            run_cap=event.run_cap,
            created_us=record.recorded_at_us,
        )
        self._touch_sweep(state, record)

    def _sweep_command(
        self, sweep_id: str, record: RecordedEvent, allowed: tuple[SweepStatus, ...]
    ) -> SweepState | None:
        state = self.sweep(sweep_id)
        if state is None or state.status not in allowed:
            return None  # the command layer refuses these; a fold ignores them
        self._touch_sweep(state, record)
        return state

    def _sweep_paused(self, event: SweepPaused, record: RecordedEvent, sweep_id: str) -> None:
        state = self._sweep_command(sweep_id, record, (SweepStatus.RUNNING, SweepStatus.PAUSED))
        if state is not None:
            state.status = SweepStatus.PAUSED

    def _sweep_resumed(self, event: SweepResumed, record: RecordedEvent, sweep_id: str) -> None:
        state = self._sweep_command(sweep_id, record, (SweepStatus.PAUSED, SweepStatus.FINISHED))
        if state is not None:
            state.status = SweepStatus.RUNNING
            state.finish_reason = None

    def _sweep_stopped(self, event: SweepStopped, record: RecordedEvent, sweep_id: str) -> None:
        state = self._sweep_command(
            sweep_id, record, (SweepStatus.RUNNING, SweepStatus.PAUSED, SweepStatus.PENDING)
        )
        if state is not None:
            state.status = SweepStatus.FINISHED
            state.finish_reason = "stopped"

    def _sweep_cancelled(self, event: SweepCancelled, record: RecordedEvent, sweep_id: str) -> None:
        state = self._sweep_command(
            sweep_id, record, (SweepStatus.RUNNING, SweepStatus.PAUSED, SweepStatus.PENDING)
        )
        if state is None:
            return
        state.status = SweepStatus.CANCELED
        queued, state.queue = state.queue, []
        for run_id in queued:  # contract §8.5: queued runs become killed
            run = self.run((state.project, run_id))
            if run is not None:
                run.reason = "sweep cancelled"
                self._set_status(run, RunStatus.KILLED, record)
                self._touch_run(run, record)
        state.reoffer = []

    def _sweep_finished(self, event: SweepFinished, record: RecordedEvent, sweep_id: str) -> None:
        state = self._sweep_command(
            sweep_id, record, (SweepStatus.RUNNING, SweepStatus.PAUSED, SweepStatus.PENDING)
        )
        if state is not None:
            state.status = SweepStatus.FINISHED
            state.finish_reason = event.reason

    def _run_scheduled(self, event: RunScheduled, record: RecordedEvent, sweep_id: str) -> None:
        sweep = self.sweep(sweep_id)
        if sweep is None:
            return
        key = (sweep.project, event.run_id)
        if self.run(key) is not None:
            return  # a run id is scheduled once
        sweep.scheduled.append(event.run_id)
        run = self.runs[key] = RunState(
            project=sweep.project,
            run_id=event.run_id,
            sweep_id=sweep.sweep_id,
            params=event.params,
            created_us=record.recorded_at_us,
        )
        sweep.counts[RunStatus.PENDING.value] = sweep.counts.get(RunStatus.PENDING.value, 0) + 1
        self._touch_run(run, record)
        self._touch_sweep(sweep, record)

    def _run_claimed(self, event: RunClaimed, record: RecordedEvent, sweep_id: str) -> None:
        sweep = self.sweep(sweep_id)
        run = self.run((sweep.project, event.run_id)) if sweep else None
        if sweep is None or run is None or run.sweep_id != sweep.sweep_id:
            return
        if run.status is RunStatus.PREEMPTED and event.run_id in sweep.queue:
            run.requeued = True
            self._set_status(run, RunStatus.PENDING, record)  # leaves the queue (§8.2)
        elif run.status is RunStatus.PENDING and run.claimed_by is None:
            run.requeued = False
            if event.run_id in sweep.reoffer:
                sweep.reoffer.remove(event.run_id)
        else:
            return  # not claimable: already claimed, running, or terminal
        run.claimed_by = event.agent_id
        run.claim_position = record.position
        sweep.claims[event.run_id] = event.agent_id
        if sweep.status is SweepStatus.PENDING:
            sweep.status = SweepStatus.RUNNING
        self._touch_run(run, record)
        self._touch_sweep(sweep, record)

    def _claim_lapsed(self, event: ClaimLapsed, record: RecordedEvent, sweep_id: str) -> None:
        sweep = self.sweep(sweep_id)
        run = self.run((sweep.project, event.run_id)) if sweep else None
        if (
            sweep is None
            or run is None
            or run.status is not RunStatus.PENDING
            or run.claim_position != event.claim_position
        ):
            return  # the run started, or this is about an older claim
        run.claimed_by = None
        run.claim_position = None
        sweep.claims.pop(event.run_id, None)
        if run.requeued:
            self._set_status(run, RunStatus.PREEMPTED, record, front=True)  # §8.3
        else:
            sweep.reoffer.append(event.run_id)
        self._touch_run(run, record)
        self._touch_sweep(sweep, record)

    def _agent_started(self, event: AgentStarted, record: RecordedEvent, sweep_id: str) -> None:
        sweep = self.sweep(sweep_id)
        if sweep is None:
            return
        sweep.agents[event.agent_id] = AgentInfo(
            event.host, event.pid, record.recorded_at_us, last_seen_us=record.recorded_at_us
        )
        if sweep.status is SweepStatus.PENDING:
            sweep.status = SweepStatus.RUNNING
        self._touch_sweep(sweep, record)

    def _agent_stopped(self, event: AgentStopped, record: RecordedEvent, sweep_id: str) -> None:
        sweep = self.sweep(sweep_id)
        if sweep is None or sweep.agents.pop(event.agent_id, None) is None:
            return
        self._touch_sweep(sweep, record)

    def _agent_heartbeat(self, event: AgentHeartbeat, record: RecordedEvent, sweep_id: str) -> None:
        sweep = self.sweep(sweep_id)
        info = sweep.agents.get(event.agent_id) if sweep is not None else None
        if sweep is None or info is None:
            return  # an agent that never registered, or already left
        sweep.agents[event.agent_id] = msgspec.structs.replace(
            info, last_seen_us=record.recorded_at_us, run_ids=list(event.run_ids)
        )
        self._touch_sweep(sweep, record)
