"""The fold: how each event changes run and sweep state (contract §4, §6, §8, §9).

``Model.apply`` is the only place the state machines live. It reads nothing but the
event and the states it is given (no clock, no I/O, no randomness), so the same events
always give the same states: the incremental projector, a rebuild from position 0 and
time travel all call it. States are updated in place for speed; a ``Model`` owns the
states it holds.

Events a fold must ignore are ignored the same way on every path: an event of an older
incarnation (fenced), a ``StepLogged`` below the run's next step (dropped), an event for
a run that never started, and sweep commands its state does not allow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from eventstore import (
    AgentHeartbeat,
    AgentStarted,
    AgentStopped,
    ClaimLapsed,
    ConfigUpdated,
    Event,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    MetricDefined,
    NotesEdited,
    PreemptMarked,
    RecordedEvent,
    RunClaimed,
    RunExited,
    RunForked,
    RunInitialized,
    RunKilled,
    RunRevived,
    RunRewound,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    SummaryUpdated,
    SweepCancelled,
    SweepCreated,
    SweepFinished,
    SweepPaused,
    SweepResumed,
    SweepStopped,
)

from ._state import AgentInfo, FileRef, RunState, RunStatus, SweepState, SweepStatus
from ._summary import check_summary_ops, summarize

__all__ = ["HistoryRow", "Model", "RunKey", "parse_stream"]

RunKey = tuple[str, str]
"""(project, run id)."""
HistoryRow = tuple[str, str, int, int]
"""(project, run id, step, position) of an accepted ``StepLogged``."""

_ALIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PREEMPTING)
_LIVE = (RunStatus.RUNNING, RunStatus.PREEMPTING)
_INTERRUPTED_CODES = (130,)
_CRASH_CODE = 254


def parse_stream(stream: str) -> tuple[str, str] | None:
    """``("run", "project/run_id")`` or ``("sweep", sweep_id)``, None for other streams."""
    kind, _, rest = stream.partition(":")
    if kind in ("run", "sweep") and rest:
        return kind, rest
    return None


def _target(stream: str) -> tuple[bool, Any] | None:
    """(True, run key) for a run stream, (False, sweep id) for a sweep stream, else None."""
    parsed = parse_stream(stream)
    if parsed is None:
        return None
    kind, rest = parsed
    if kind == "sweep":
        return (False, rest)
    project, slash, run_id = rest.rpartition("/")
    return (True, (project, run_id)) if slash and project and run_id else None


class Model:
    """Run and sweep states, folded from events in position order.

    Args:
        load_run: returns the stored state of a run not yet in this model (or None).
        load_sweep: the same for a sweep.

    The loaders let a projector keep most states on disk; a rebuild passes none.
    """

    def __init__(
        self,
        load_run: Callable[[RunKey], RunState | None] | None = None,
        load_sweep: Callable[[str], SweepState | None] | None = None,
    ) -> None:
        self.runs: dict[RunKey, RunState] = {}
        self.sweeps: dict[str, SweepState] = {}
        self.position = 0
        self.dirty_runs: set[RunKey] = set()
        self.dirty_sweeps: set[str] = set()
        self.history: list[HistoryRow] = []
        self._load_run = load_run
        self._load_sweep = load_sweep
        self._targets: dict[str, tuple[bool, Any] | None] = {}  # stream -> (is_run, key)
        self._run_handlers: dict[type[Event], Callable[[Any, RecordedEvent, RunKey], None]] = {
            RunInitialized: self._initialized,
            StepLogged: self._step,
            NotesEdited: self._notes,
            PreemptMarked: self._preempt_marked,
            Heartbeat: self._heartbeat,
            RunExited: self._exited,
            HeartbeatExpired: self._expired,
            RunKilled: self._killed,
            RunRevived: self._revived,
            FileSaved: self._file_saved,
            RunStopRequested: self._stop_requested,
        }
        self._sweep_handlers: dict[type[Event], Callable[[Any, RecordedEvent, str], None]] = {
            SweepCreated: self._sweep_created,
            SweepPaused: self._sweep_paused,
            SweepResumed: self._sweep_resumed,
            SweepStopped: self._sweep_stopped,
            SweepCancelled: self._sweep_cancelled,
            SweepFinished: self._sweep_finished,
            RunScheduled: self._run_scheduled,
            RunClaimed: self._run_claimed,
            ClaimLapsed: self._claim_lapsed,
            AgentStarted: self._agent_started,
            AgentStopped: self._agent_stopped,
            AgentHeartbeat: self._agent_heartbeat,
        }
        self.rewound: set[RunKey] = set()
        """Runs rewound (or restarted below their last step): a step's row may come again."""
        self._run_handlers.update(
            {
                SummaryUpdated: self._summary_updated,
                ConfigUpdated: self._config_updated,
                MetricDefined: self._metric_defined,
                RunRewound: self._rewound,
                RunForked: self._forked,
            }
        )

    # --- entry points -------------------------------------------------------------------

    def apply(self, record: RecordedEvent) -> None:
        """Fold one event; events must come in position order."""
        self.position = record.position
        stream = record.stream
        try:
            target = self._targets[stream]
        except KeyError:
            target = self._targets[stream] = _target(stream)
        if target is None:
            return
        is_run, key = target
        handler = (self._run_handlers if is_run else self._sweep_handlers).get(type(record.event))
        if handler is not None:
            handler(record.event, record, key)

    def apply_all(self, records: Iterable[RecordedEvent]) -> None:
        """Fold events in position order; the same as ``apply`` on each, only faster.

        Training logs are mostly long stretches of ``StepLogged`` from one writer, and
        each of those needs the same checks; a stretch is folded in one pass.
        """
        batch = records if isinstance(records, Sequence) else list(records)
        count = len(batch)
        index = 0
        while index < count:
            record = batch[index]
            event = record.event
            if type(event) is StepLogged:
                end = index + 1
                stream = record.stream
                incarnation = event.incarnation
                while end < count:
                    following = batch[end]
                    if (
                        following.stream != stream
                        or type(following.event) is not StepLogged
                        or following.event.incarnation != incarnation
                    ):
                        break
                    end += 1
                if end - index > 1 and self._steps(batch, index, end):
                    index = end
                    continue
            self.apply(record)
            index += 1

    def _steps(self, batch: Sequence[RecordedEvent], start: int, end: int) -> bool:
        """Fold ``batch[start:end]``, one writer's ``StepLogged`` events, as ``_step`` would.

        Returns False, having folded nothing, when the first event would not be accepted
        (fenced, not started, ...): those rare cases go through ``apply`` one by one.
        """
        first = batch[start]
        target = self._targets.get(first.stream)
        if target is None or not target[0]:
            return False
        key = target[1]
        state = self.run(key)
        incarnation = first.event.incarnation  # type: ignore[attr-defined]
        if state is None or not state.started or incarnation != state.incarnation:
            return False
        state = self._current(key, incarnation, first)  # revives a crashed run, as _step
        assert state is not None
        history = self.history
        project, run_id = state.project, state.run_id
        summary = state.summary
        definitions = state.metrics
        next_step = state.next_step
        for index in range(start, end):
            record = batch[index]
            event: StepLogged = record.event  # type: ignore[assignment]
            step = event.step
            if step < next_step:
                state.dropped_steps += 1
            else:
                state.last_step = step
                next_step = step + 1
                state.steps += 1
                if definitions:
                    summarize(summary, definitions, event.metrics)
                else:
                    summary.update(event.metrics)
                history.append((project, run_id, step, record.position))
        state.next_step = next_step
        last = batch[end - 1]
        state.last_event_us = last.recorded_at_us
        self._touch_run(state, last)
        self.position = last.position
        return True

    def run(self, key: RunKey) -> RunState | None:
        """The state of a run, loading it if needed."""
        state = self.runs.get(key)
        if state is None and self._load_run is not None:
            state = self._load_run(key)
            if state is not None:
                self.runs[key] = state
        return state

    def sweep(self, sweep_id: str) -> SweepState | None:
        """The state of a sweep, loading it if needed."""
        state = self.sweeps.get(sweep_id)
        if state is None and self._load_sweep is not None:
            state = self._load_sweep(sweep_id)
            if state is not None:
                self.sweeps[sweep_id] = state
        return state

    def take_changes(self) -> tuple[list[RunState], list[SweepState], list[HistoryRow]]:
        """The states changed and history rows added since the last call, and forget them."""
        runs = [self.runs[key] for key in sorted(self.dirty_runs)]
        sweeps = [self.sweeps[sweep_id] for sweep_id in sorted(self.dirty_sweeps)]
        history, self.history = self.history, []
        self.dirty_runs.clear()
        self.dirty_sweeps.clear()
        return runs, sweeps, history

    # --- helpers ------------------------------------------------------------------------

    def _touch_run(self, state: RunState, record: RecordedEvent) -> None:
        state.updated_us = record.recorded_at_us
        state.last_position = record.position
        self.dirty_runs.add((state.project, state.run_id))

    def _touch_sweep(self, state: SweepState, record: RecordedEvent) -> None:
        state.updated_us = record.recorded_at_us
        state.last_position = record.position
        self.dirty_sweeps.add(state.sweep_id)

    def _set_status(
        self, state: RunState, status: RunStatus, record: RecordedEvent, *, front: bool = False
    ) -> None:
        old = state.status
        if old is status:
            return
        state.status = status
        sweep = self.sweep(state.sweep_id) if state.sweep_id is not None else None
        if sweep is None:
            return
        _move_count(sweep, old, status)
        if old is RunStatus.PREEMPTED and state.run_id in sweep.queue:
            sweep.queue.remove(state.run_id)  # only preempted runs wait in the queue
        if status is RunStatus.PREEMPTED:
            # contract §8.1: FIFO by the position of the event that preempted it;
            # §8.3: a lapsed claim puts it back at the front.
            if front:
                sweep.queue.insert(0, state.run_id)
            else:
                sweep.queue.append(state.run_id)
        self._touch_sweep(sweep, record)

    def _current(
        self, key: RunKey, incarnation: int | None, record: RecordedEvent
    ) -> RunState | None:
        """The run an event of ``incarnation`` may change, or None if it must be ignored."""
        state = self.run(key)
        if state is None or not state.started:
            return None
        if incarnation is not None and incarnation != state.incarnation:
            if incarnation < state.incarnation:
                state.fenced_events += 1
                self._touch_run(state, record)
            return None
        if incarnation is not None:
            state.last_event_us = record.recorded_at_us
            if state.status is RunStatus.CRASHED:
                # contract §6.2: a late writer of the current incarnation revives a
                # run the watchdog declared crashed.
                self._set_status(state, RunStatus.RUNNING, record)
        return state

    # --- run stream ---------------------------------------------------------------------

    def _initialized(self, event: RunInitialized, record: RecordedEvent, key: RunKey) -> None:
        state = self.run(key)
        if state is None:
            state = self.runs[key] = RunState(
                project=key[0], run_id=key[1], created_us=record.recorded_at_us
            )
        if event.incarnation <= state.incarnation:
            state.fenced_events += 1
            self._touch_run(state, record)
            return
        first_start = not state.started
        if not first_start and event.resumed:
            state.resumes += 1
        sweep = self._join_sweep(state, event.sweep_id)
        state.started = True
        state.incarnation = event.incarnation
        state.starting_step = event.starting_step
        if state.last_step is not None and event.starting_step <= state.last_step:
            self.rewound.add(key)  # its steps may come again: history rows are upserted
        state.next_step = event.starting_step
        state.config.update(event.config)  # top-level keys replace wholesale (§4.1)
        if event.tags:  # an empty list means "not given" (§4.1)
            state.tags = list(event.tags)
        for field in ("notes", "name", "group", "job_type"):
            value = getattr(event, field)
            if value is not None:
                setattr(state, field, value)
        state.host, state.pid = event.host, event.pid
        state.preempting = False
        state.stop_requested = False
        state.exit_code = None
        state.interrupted = False
        state.reason = None
        state.last_event_us = record.recorded_at_us
        self._release_claim(state)
        self._set_status(state, RunStatus.RUNNING, record)
        if sweep is not None and first_start:
            sweep.ever_running += 1  # what run_cap counts (§9.1)
            self._touch_sweep(sweep, record)
        self._touch_run(state, record)

    def _join_sweep(self, state: RunState, sweep_id: str | None) -> SweepState | None:
        """The run's sweep; a run first started with ``sweep_id`` joins that sweep.

        A sweep id that names no sweep (yet) is ignored: membership must be decidable
        from the events so far, or counts and queues could not be folded incrementally.
        """
        if state.sweep_id is None and sweep_id is not None:
            sweep = self.sweep(sweep_id)
            if sweep is not None:
                state.sweep_id = sweep_id
                sweep.counts[state.status.value] = sweep.counts.get(state.status.value, 0) + 1
            return sweep
        return self.sweep(state.sweep_id) if state.sweep_id is not None else None

    def _step(self, event: StepLogged, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        if event.step < state.next_step:
            state.dropped_steps += 1  # contract §4.1: lower steps are dropped
        else:
            state.last_step = event.step
            state.next_step = event.step + 1
            state.steps += 1
            summarize(state.summary, state.metrics, event.metrics)
            self.history.append((state.project, state.run_id, event.step, record.position))
        self._touch_run(state, record)

    def _notes(self, event: NotesEdited, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        state.notes = event.notes
        self._touch_run(state, record)

    def _preempt_marked(self, event: PreemptMarked, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        if state.status in _LIVE:
            state.preempting = True
            self._set_status(state, RunStatus.PREEMPTING, record)
        self._touch_run(state, record)

    def _heartbeat(self, event: Heartbeat, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        state.last_heartbeat_us = record.recorded_at_us
        self._touch_run(state, record)

    def _exited(self, event: RunExited, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        if state.status in _LIVE:
            state.exit_code = event.exit_code
            state.interrupted = event.interrupted
            status = _exit_status(state.status, event)
            if state.stop_requested and event.exit_code != 0:
                status = RunStatus.KILLED  # §6.2: a stopped run is killed, never requeued
            self._set_status(state, status, record)
        self._touch_run(state, record)

    def _expired(self, event: HeartbeatExpired, record: RecordedEvent, key: RunKey) -> None:
        state = self.run(key)
        if state is None or not state.started or event.incarnation != state.incarnation:
            return  # a stale decision about an incarnation that is already gone
        if state.stop_requested and state.status in _LIVE:
            # A run asked to stop that then went silent was stopped (SIGKILL after the
            # kill delay leaves no exit): killed, not crashed, and never requeued.
            self._set_status(state, RunStatus.KILLED, record)
        elif state.status is RunStatus.RUNNING:
            self._set_status(state, RunStatus.CRASHED, record)
        elif state.status is RunStatus.PREEMPTING:
            self._set_status(state, RunStatus.PREEMPTED, record)
        self._touch_run(state, record)

    def _killed(self, event: RunKilled, record: RecordedEvent, key: RunKey) -> None:
        state = self.run(key)
        if state is None:
            return
        if event.incarnation is not None and event.incarnation < state.incarnation:
            state.fenced_events += 1
            self._touch_run(state, record)
            return
        if state.status in _ALIVE:
            state.reason = event.reason
            self._release_claim(state)
            self._set_status(state, RunStatus.KILLED, record)
        self._touch_run(state, record)

    def _revived(self, event: RunRevived, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)  # revives a crashed run
        if state is not None:
            self._touch_run(state, record)

    def _stop_requested(self, event: RunStopRequested, record: RecordedEvent, key: RunKey) -> None:
        # Not ``_current``: the request is not the run's own write, so it neither
        # counts as a heartbeat nor revives a crashed run.
        state = self.run(key)
        if state is None or not state.started or event.incarnation != state.incarnation:
            return  # about an incarnation that is gone (or not there yet)
        if state.status in _LIVE and not state.stop_requested:
            state.stop_requested = True
            state.reason = event.reason
            self._touch_run(state, record)

    def _file_saved(self, event: FileSaved, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        state.files[event.name] = FileRef(event.digest, event.size, record.position)
        self._touch_run(state, record)

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

    def _release_claim(self, state: RunState) -> None:
        if state.claimed_by is None or state.sweep_id is None:
            return
        sweep = self.sweep(state.sweep_id)
        if sweep is not None:
            sweep.claims.pop(state.run_id, None)
        state.claimed_by = None
        state.claim_position = None

    # --- run stream: summary, config, metric definitions ---------------------------------

    def _summary_updated(self, event: SummaryUpdated, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        state.summary.update(event.values)
        for name in event.removed:
            state.summary.pop(name, None)
        self._touch_run(state, record)

    def _config_updated(self, event: ConfigUpdated, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        state.config.update(event.values)
        self._touch_run(state, record)

    def _metric_defined(self, event: MetricDefined, record: RecordedEvent, key: RunKey) -> None:
        state = self._current(key, event.incarnation, record)
        if state is None:
            return
        try:
            ops = list(check_summary_ops(event.summary))
        except ValueError:
            ops = []  # the library refuses these; a stored one is folded as "no aggregate"
        state.metrics[event.name] = {
            "ops": ops,
            "goal": event.goal,
            "step_metric": event.step_metric,
            "hidden": event.hidden,
        }
        self._touch_run(state, record)

    # --- run stream: rewind and fork (contract §3.4) -----------------------------------

    def _rewound(self, event: RunRewound, record: RecordedEvent, key: RunKey) -> None:
        state = self.run(key)
        if state is None or not state.started or event.incarnation <= state.incarnation:
            return  # written only with the RunInitialized of a newer incarnation
        state.rewinds.append((event.step, record.position))
        self.rewound.add(key)
        state.summary = dict(event.summary)
        state.steps = event.rows
        state.last_step = event.last_step
        self._touch_run(state, record)

    def _forked(self, event: RunForked, record: RecordedEvent, key: RunKey) -> None:
        if self.run(key) is not None:
            return  # a fork is the first event of a new run's stream
        state = self.runs[key] = RunState(
            project=key[0], run_id=key[1], created_us=record.recorded_at_us
        )
        state.forked_from = (
            event.source_project,
            event.source_run_id,
            event.step,
            event.source_position,
        )
        state.summary = dict(event.summary)
        state.steps = event.rows
        state.last_step = event.last_step
        self._touch_run(state, record)


def _exit_status(status: RunStatus, event: RunExited) -> RunStatus:
    """Contract §6.2, the ``RunExited`` rows."""
    code = event.exit_code
    if status is RunStatus.PREEMPTING:
        return RunStatus.FINISHED if code == 0 else RunStatus.PREEMPTED
    if code == 0:
        return RunStatus.FINISHED
    if code == _CRASH_CODE:
        return RunStatus.CRASHED
    if event.interrupted or code in _INTERRUPTED_CODES:
        return RunStatus.KILLED
    return RunStatus.FAILED


def _move_count(sweep: SweepState, old: RunStatus, new: RunStatus) -> None:
    counts = sweep.counts
    if counts.get(old.value, 0) > 1:
        counts[old.value] -= 1
    else:
        counts.pop(old.value, None)
    counts[new.value] = counts.get(new.value, 0) + 1
