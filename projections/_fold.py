"""The fold: how each event changes run and sweep state (contract §4, §6, §8, §9).

``Fold.apply`` is the only place the state machines live. It reads nothing but the
event and the states it is given (no clock, no I/O, no randomness), so the same events
always give the same states: the incremental projector, a rebuild from position 0 and
time travel all call it. States are updated in place for speed; a ``Fold`` owns the
states it holds.

Events a fold must ignore are ignored the same way on every path: an event of an older
incarnation (fenced), a ``StepLogged`` below the run's next step (dropped), an event for
a run that never started, and sweep commands its state does not allow.

The fold is written in layers, each a module of one idea: ``_fold_state.py`` (the
states and the helpers), ``_fold_runs.py`` (the run rules), ``_fold_sweeps.py`` (the
sweep rules) and this module (dispatch, and the batched fast path for stretches of
``StepLogged``). ``Model`` is the fold's old name, still answered by ``projections`` with a
``DeprecationWarning``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from operator import attrgetter, lt
from typing import Any

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

from ._fold_runs import RunRules
from ._fold_state import HistoryRow, RunKey, _target, parse_stream
from ._fold_sweeps import SweepRules
from ._state import RunState, SweepState
from ._summary import summarize

__all__ = ["Fold", "HistoryRow", "RunKey", "parse_stream"]

_metrics = attrgetter("metrics")
_position = attrgetter("position")


class Fold(RunRules, SweepRules):
    """Run and sweep states, folded from events in position order.

    Args:
        load_run: returns the stored state of a run not yet in this fold (or None).
        load_sweep: the same for a sweep.

    The loaders let a projector keep most states on disk; a rebuild passes none.
    """

    def __init__(
        self,
        load_run: Callable[[RunKey], RunState | None] | None = None,
        load_sweep: Callable[[str], SweepState | None] | None = None,
    ) -> None:
        super().__init__(load_run, load_sweep)
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
        try:
            target = self._targets[first.stream]
        except KeyError:
            target = self._targets[first.stream] = _target(first.stream)
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
        records = batch[start:end]
        events = [record.event for record in records]
        steps: list[int] = [event.step for event in events]  # type: ignore[attr-defined]
        if not definitions and steps[0] >= next_step and all(map(lt, steps, steps[1:])):
            # The usual stretch: steps only increase, so all are accepted, and without
            # metric definitions the summary is each metric's last value. Done in C.
            deque(map(summary.update, map(_metrics, events)), 0)
            history.extend(zip(repeat(project), repeat(run_id), steps, map(_position, records)))
            state.last_step = steps[-1]
            state.next_step = steps[-1] + 1
            state.steps += len(steps)
            last = records[-1]
            state.last_event_us = last.recorded_at_us
            self._touch_run(state, last)
            self.position = last.position
            return True
        accepted = dropped = 0
        add = history.append
        for index in range(start, end):
            record = batch[index]
            event: StepLogged = record.event  # type: ignore[assignment]
            step = event.step
            if step < next_step:
                dropped += 1
            else:
                next_step = step + 1
                accepted += 1
                if definitions:
                    summarize(summary, definitions, event.metrics)
                else:
                    summary.update(event.metrics)
                add((project, run_id, step, record.position))
        if accepted:
            state.last_step = next_step - 1
            state.steps += accepted
        state.dropped_steps += dropped
        state.next_step = next_step
        last = batch[end - 1]
        state.last_event_us = last.recorded_at_us
        self._touch_run(state, last)
        self.position = last.position
        return True
