"""The run rules of the fold: how each event of a run stream changes its state
(contract §4, §6, §3.4).

An event of an older incarnation is fenced (counted, not applied), a ``StepLogged``
below the run's next step is dropped (counted), and an event for a run that never
started is ignored.
"""

from __future__ import annotations

from eventstore import (
    ConfigUpdated,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    MetricDefined,
    NotesEdited,
    PreemptMarked,
    RecordedEvent,
    RunExited,
    RunForked,
    RunInitialized,
    RunKilled,
    RunRevived,
    RunRewound,
    RunStopRequested,
    StepLogged,
    SummaryUpdated,
)

from ._fold_state import _ALIVE, _CRASH_CODE, _INTERRUPTED_CODES, _LIVE, FoldState, RunKey
from ._state import FileRef, RunState, RunStatus, SweepState
from ._summary import check_summary_ops, summarize

__all__ = ["RunRules"]


class RunRules(FoldState):
    """The rules of run streams; the second layer of ``Fold``."""

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
                # Its counts changed: a read model must store it again, even when this is
                # a resume (no first start below touches it).
                self.dirty_sweeps.add(sweep_id)
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
