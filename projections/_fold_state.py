"""What the fold holds, and the helpers every rule uses.

``FoldState`` keeps the run and sweep states folded so far, the position they reflect,
what changed since the last ``take_changes``, and the history rows added. The rules
(``_fold_runs.py``, ``_fold_sweeps.py``) change the states through the helpers here;
``_fold.py`` dispatches events to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventstore import (
    RecordedEvent,
)

from ._state import RunState, RunStatus, SweepState

__all__ = ["FoldState", "HistoryRow", "RunKey", "parse_stream"]

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


class FoldState:
    """Run and sweep states folded so far; the first layer of ``Fold``.

    Args:
        load_run: returns the stored state of a run not yet in this fold (or None).
        load_sweep: the same for a sweep.
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
        self.rewound: set[RunKey] = set()
        """Runs rewound (or restarted below their last step): a step's row may come again."""

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

    def _release_claim(self, state: RunState) -> None:
        if state.claimed_by is None or state.sweep_id is None:
            return
        sweep = self.sweep(state.sweep_id)
        if sweep is not None:
            sweep.claims.pop(state.run_id, None)
        state.claimed_by = None
        state.claim_position = None


def _move_count(sweep: SweepState, old: RunStatus, new: RunStatus) -> None:
    counts = sweep.counts
    if counts.get(old.value, 0) > 1:
        counts[old.value] -= 1
    else:
        counts.pop(old.value, None)
    counts[new.value] = counts.get(new.value, 0) + 1
