"""The event catalogue: every fact runlog records, as frozen, tagged msgspec Structs.

Each type's tag is its name, plus ``.vN`` once its schema version N is above 1, so a
stored payload says which shape wrote it. Schema evolution follows msgspec's rules:
new fields get defaults, no field changes type; a rename bumps the version and
registers an upcaster (see ``EventCodec.register_upcaster``).

Time never appears in a payload unless it is the fact itself (the watchdog's
observation in ``HeartbeatExpired``); the store stamps ``recorded_at``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

__all__ = [
    "AgentHeartbeat",
    "AgentStarted",
    "AgentStopped",
    "ClaimLapsed",
    "ConfigUpdated",
    "Event",
    "FileSaved",
    "Heartbeat",
    "HeartbeatExpired",
    "MetricDefined",
    "NotesEdited",
    "PreemptMarked",
    "RunClaimed",
    "RunExited",
    "RunForked",
    "RunInitialized",
    "RunKilled",
    "RunRevived",
    "RunRewound",
    "RunScheduled",
    "RunStopRequested",
    "StepLogged",
    "SummaryUpdated",
    "SweepCancelled",
    "SweepCreated",
    "SweepFinished",
    "SweepPaused",
    "SweepResumed",
    "SweepStopped",
]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, omit_defaults=True, gc=False):
    """Base of every event type. Subclasses are payloads: data, no behaviour."""

    schema_version: ClassVar[int] = 1


# --- run stream: run:{project}/{run_id} -----------------------------------------------


class RunInitialized(Event, frozen=True):
    """A process started (``resumed=False``) or resumed (``resumed=True``) a run.

    Every ``RunInitialized`` opens a new incarnation; fields left ``None`` mean
    "not given, keep what the run had" (contract §4.1).
    """

    project: str
    run_id: str
    incarnation: int
    resumed: bool
    starting_step: int
    resume: str | None = None
    config: dict[str, Any] = {}
    notes: str | None = None
    name: str | None = None
    tags: list[str] | None = None
    group: str | None = None
    job_type: str | None = None
    sweep_id: str | None = None
    host: str = ""
    pid: int = 0


class StepLogged(Event, frozen=True):
    """One history row: the metrics logged at ``step``."""

    incarnation: int
    step: int
    metrics: dict[str, Any]


class NotesEdited(Event, frozen=True):
    """The run's notes were replaced; ``incarnation`` is None for edits from outside a run."""

    notes: str
    incarnation: int | None = None


class PreemptMarked(Event, frozen=True):
    """``mark_preempting()`` was called: the next non-zero exit or expiry means preempted."""

    incarnation: int


class Heartbeat(Event, frozen=True):
    """The run is alive; written only when nothing else was written for an interval."""

    incarnation: int


class RunExited(Event, frozen=True):
    """The run's process ended with ``exit_code``; ``interrupted`` marks Ctrl-C or a stop."""

    incarnation: int
    exit_code: int
    interrupted: bool = False


class HeartbeatExpired(Event, frozen=True):
    """The watchdog saw no event from ``incarnation`` for longer than ``timeout_s``.

    ``last_position`` is the run's last event then; ``observed_at_us`` is the watchdog's
    clock when it decided, recorded so that the decision replays identically.
    """

    incarnation: int
    last_position: int
    observed_at_us: int
    timeout_s: float


class RunKilled(Event, frozen=True):
    """The run was stopped on request (sweep cancel, early stop, explicit kill)."""

    reason: str
    incarnation: int | None = None
    sweep_id: str | None = None


class RunRevived(Event, frozen=True):
    """A run declared crashed wrote again from its current incarnation (a late writer)."""

    incarnation: int


class FileSaved(Event, frozen=True):
    """A file (a checkpoint) was saved; the bytes live in the content-addressed blob area."""

    incarnation: int
    name: str
    digest: str
    size: int


# --- sweep stream: sweep:{sweep_id} -----------------------------------------------------


class SweepCreated(Event, frozen=True):
    """A sweep was created from ``config``; ``seed`` makes its random search replayable."""

    sweep_id: str
    project: str
    method: str
    config: dict[str, Any]
    seed: int
    run_cap: int | None = None


class SweepPaused(Event, frozen=True):
    """No new runs are handed out until the sweep is resumed."""

    reason: str | None = None


class SweepResumed(Event, frozen=True):
    """Run creation restarts (from PAUSED, or reopening a FINISHED sweep)."""

    reason: str | None = None


class SweepStopped(Event, frozen=True):
    """No new runs; runs already executing continue to completion."""

    reason: str | None = None


class SweepCancelled(Event, frozen=True):
    """No new runs, executing runs are killed and queued runs become killed."""

    reason: str | None = None


class SweepFinished(Event, frozen=True):
    """The sweep ended by itself: ``reason`` is stopped, exhausted, run_cap or target."""

    reason: str


class RunScheduled(Event, frozen=True):
    """The search proposed a new run with these parameters."""

    run_id: str
    params: dict[str, Any]
    index: int | None = None


class RunClaimed(Event, frozen=True):
    """An agent took a run (a new suggestion, or a preempted run from the queue)."""

    run_id: str
    agent_id: str
    requeue: bool = False
    lease_s: float = 300.0


class ClaimLapsed(Event, frozen=True):
    """A claim's lease expired before the run started; the run is offered again."""

    run_id: str
    claim_position: int


class AgentStarted(Event, frozen=True):
    """An agent registered with the sweep."""

    agent_id: str
    host: str = ""
    pid: int = 0


class AgentStopped(Event, frozen=True):
    """An agent left the sweep."""

    agent_id: str
    reason: str | None = None


class RunStopRequested(Event, frozen=True):
    """A stop was asked for ``incarnation`` of the run (the ``stop`` command of contract §9.2).

    Written by Hyperband early termination (``rule="hyperband"``, with the band, the
    run's value there and the band's threshold) or by a single-run stop (``rule="user"``).
    The run's agent sends SIGTERM, then SIGKILL after the kill delay; the run ends
    killed, never preempted, so it is never requeued.
    """

    incarnation: int
    reason: str
    rule: str = "user"
    sweep_id: str | None = None
    band: int | None = None
    value: float | None = None
    threshold: float | None = None


class AgentHeartbeat(Event, frozen=True):
    """An agent is alive and runs ``run_ids`` now (contract §9.2)."""

    agent_id: str
    run_ids: list[str] = []


CATALOGUE: tuple[type[Event], ...] = (
    RunInitialized,
    StepLogged,
    NotesEdited,
    PreemptMarked,
    Heartbeat,
    RunExited,
    HeartbeatExpired,
    RunKilled,
    RunRevived,
    FileSaved,
    SweepCreated,
    SweepPaused,
    SweepResumed,
    SweepStopped,
    SweepCancelled,
    SweepFinished,
    RunScheduled,
    RunClaimed,
    ClaimLapsed,
    AgentStarted,
    AgentStopped,
    RunStopRequested,
    AgentHeartbeat,
)


# --- run stream, continued: summary, config, metric definitions, rewind and fork --------


class SummaryUpdated(Event, frozen=True):
    """Explicit summary values (``run.summary[key] = value``, ``summary.update``).

    They override the last logged value of those keys until the key is logged again;
    ``removed`` keys were deleted from the summary.
    """

    values: dict[str, Any]
    incarnation: int | None = None
    removed: list[str] = []


class ConfigUpdated(Event, frozen=True):
    """Config keys set after ``init`` (``run.config.update``, ``run.config.lr = ...``)."""

    values: dict[str, Any]
    incarnation: int | None = None


class MetricDefined(Event, frozen=True):
    """``define_metric``: how a metric (or a ``prefix*`` glob) is summarised and charted.

    ``summary`` is a comma-separated list of ``min``, ``max``, ``last``, ``first``,
    ``best`` and ``none``, or None for the default (the last value under the metric's
    own name); ``step_metric`` names the metric to chart it against.
    """

    name: str
    incarnation: int | None = None
    step_metric: str | None = None
    summary: str | None = None
    goal: str | None = None
    hidden: bool = False


class RunRewound(Event, frozen=True):
    """``resume_from="<id>?_step=n"``: the visible history ends at ``step``.

    Written in one append with the ``RunInitialized`` of the new incarnation (which
    starts at ``step + 1``). ``summary`` is the summary recomputed from the surviving
    history, ``rows`` and ``last_step`` describe it; the rows after ``step`` stay in
    the log and readable as of an earlier position.
    """

    incarnation: int
    step: int
    summary: dict[str, Any] = {}
    rows: int = 0
    last_step: int | None = None


class RunForked(Event, frozen=True):
    """``fork_from="<source>?_step=n"``: this new run's visible history starts with the
    source's rows up to ``step``, as the source was at ``source_position``.

    Written first in the fork's stream, in one append with its ``RunInitialized``.
    """

    source_project: str
    source_run_id: str
    step: int
    source_position: int
    summary: dict[str, Any] = {}
    rows: int = 0
    last_step: int | None = None


CATALOGUE = (
    *CATALOGUE,
    SummaryUpdated,
    ConfigUpdated,
    MetricDefined,
    RunRewound,
    RunForked,
)
