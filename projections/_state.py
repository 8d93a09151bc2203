"""Run and sweep state: what the folds produce and the read models keep.

States are msgspec Structs, so they encode to msgpack for the read models and compare
field by field, which is how a rebuild is checked against the incremental path.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = [
    "AgentInfo",
    "FileRef",
    "HistoryPoint",
    "RunState",
    "RunStatus",
    "SweepState",
    "SweepStatus",
]


class RunStatus(enum.StrEnum):
    """A run's state (contract §6.1)."""

    PENDING = "pending"
    """Scheduled or claimed by a sweep, not yet started."""
    RUNNING = "running"
    PREEMPTING = "preempting"
    """Running, and ``mark_preempting()`` was called."""
    PREEMPTED = "preempted"
    """Ended (or went silent) after preempting; waits in its sweep's queue."""
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"
    KILLED = "killed"

    @property
    def terminal(self) -> bool:
        """The process is over (a resume can still leave this state)."""
        return self in _TERMINAL_RUN

    @property
    def alive(self) -> bool:
        """Pending, running or preempting."""
        return self in _ALIVE_RUN


_TERMINAL_RUN = frozenset(
    {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CRASHED, RunStatus.KILLED}
)
_ALIVE_RUN = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PREEMPTING})


class SweepStatus(enum.StrEnum):
    """A sweep's state (contract §9.1)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"

    @property
    def terminal(self) -> bool:
        """FINISHED (reopenable), CANCELED, FAILED or CRASHED."""
        return self in _TERMINAL_SWEEP


_TERMINAL_SWEEP = frozenset(
    {SweepStatus.FINISHED, SweepStatus.CANCELED, SweepStatus.FAILED, SweepStatus.CRASHED}
)


class FileRef(msgspec.Struct, frozen=True):
    """A file a run saved: its content hash, size and the position of its ``FileSaved``."""

    digest: str
    size: int
    position: int


class AgentInfo(msgspec.Struct, frozen=True):
    """An agent registered with a sweep."""

    host: str
    pid: int
    started_us: int
    last_seen_us: int = 0
    """When its last heartbeat (or its registration) was recorded."""
    run_ids: list[str] = []
    """The runs it said it was running at its last heartbeat."""


class HistoryPoint(msgspec.Struct, frozen=True, gc=False):
    """One row of a run's metric history."""

    # gc=False: a full history is a point per step, and plain data cannot form a cycle;
    # tracked, the points made the collector's passes cost as much as reading them.

    step: int
    position: int
    recorded_at_us: int
    metrics: dict[str, Any]


class RunState(msgspec.Struct, kw_only=True):
    """Everything the log says about one run, as of ``last_position``."""

    project: str
    run_id: str
    status: RunStatus = RunStatus.PENDING
    started: bool = False
    """A ``RunInitialized`` exists: the run "exists" for resume purposes (contract §3.2)."""
    incarnation: int = 0
    """The current incarnation; events of older ones are fenced (ignored)."""
    resumes: int = 0
    starting_step: int = 0
    next_step: int = 0
    """The step the next ``log()`` without ``step=`` uses: last logged step + 1."""
    last_step: int | None = None
    steps: int = 0
    """History rows: accepted ``StepLogged`` events."""
    summary: dict[str, Any] = {}
    """The last logged value of each metric."""
    config: dict[str, Any] = {}
    notes: str | None = None
    name: str | None = None
    tags: list[str] = []
    group: str | None = None
    job_type: str | None = None
    preempting: bool = False
    """``mark_preempting()`` was called in the current incarnation."""
    exit_code: int | None = None
    interrupted: bool = False
    reason: str | None = None
    """Why the run was killed (``RunKilled.reason``), if it was."""
    host: str = ""
    pid: int = 0
    sweep_id: str | None = None
    params: dict[str, Any] | None = None
    """The sweep parameters it was scheduled with."""
    claimed_by: str | None = None
    """The agent holding the current claim, until the run starts."""
    claim_position: int | None = None
    requeued: bool = False
    """The run has been preempted and claimed again from its sweep's queue."""
    files: dict[str, FileRef] = {}
    created_us: int = 0
    updated_us: int = 0
    last_event_us: int = 0
    """When the current incarnation last wrote anything (any event proves liveness)."""
    last_heartbeat_us: int | None = None
    last_position: int = 0
    dropped_steps: int = 0
    """``StepLogged`` events ignored because their step was below ``next_step``."""
    fenced_events: int = 0
    """Events ignored because an older incarnation wrote them."""
    metrics: dict[str, dict[str, Any]] = {}
    """``define_metric`` definitions by metric name (or ``prefix*``): ``ops`` (the
    summary aggregates), ``goal``, ``step_metric``, ``hidden``."""
    rewinds: list[tuple[int, int]] = []
    """``(step, position)`` of each rewind (``resume_from``): rows after ``step`` that
    were logged before ``position`` are hidden from the history."""
    forked_from: tuple[str, str, int, int] | None = None
    """``(project, run id, step, position)`` of the source of a run created by
    ``fork_from``: its history starts with the source's rows up to ``step`` as the
    source was at ``position``."""
    stop_requested: bool = False
    """A ``RunStopRequested`` for the current incarnation: a non-zero exit or an expiry
    ends the run killed, never preempted (contract §6.2, §9.6)."""


class SweepState(msgspec.Struct, kw_only=True):
    """Everything the log says about one sweep, as of ``last_position``."""

    sweep_id: str
    project: str
    status: SweepStatus = SweepStatus.PENDING
    method: str = ""
    config: dict[str, Any] = {}
    seed: int = 0
    run_cap: int | None = None
    finish_reason: str | None = None
    scheduled: list[str] = []
    """Run ids the search proposed, in order (the search's progress)."""
    queue: list[str] = []
    """Preempted runs waiting for an agent, oldest first (contract §8)."""
    reoffer: list[str] = []
    """New suggestions whose claim lapsed: offered again before any new suggestion."""
    claims: dict[str, str] = {}
    """run id -> agent id, for claims whose run has not started yet."""
    ever_running: int = 0
    """Runs of the sweep that ever reached running (what ``run_cap`` counts)."""
    counts: dict[str, int] = {}
    """Runs of the sweep per ``RunStatus`` value."""
    agents: dict[str, AgentInfo] = {}
    created_us: int = 0
    updated_us: int = 0
    last_position: int = 0

    @property
    def hands_out_work(self) -> bool:
        """Whether an agent asking for work may get some (queue first, then the search)."""
        return self.status is SweepStatus.RUNNING or (
            self.status is SweepStatus.FINISHED and bool(self.queue)
        )
