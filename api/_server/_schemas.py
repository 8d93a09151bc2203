"""The server's wire types: msgspec Structs, encoded once per process.

Responses reuse the projections' own Structs (``RunState``, ``SweepState``,
``HistoryPoint``) so what a dashboard reads is exactly what the fold produced.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from eventstore.wire import AppendIn, AppendOut, ErrorOut, WireNew, WireRecord
from projections import FileRef, HistoryPoint, RunState, SweepState

from .._wire import RunStateOut

__all__ = [
    "AppendIn",
    "AppendOut",
    "ErrorOut",
    "EventOut",
    "FileOut",
    "FinishIn",
    "HeadOut",
    "HistoryOut",
    "InitIn",
    "InitOut",
    "LogIn",
    "LogOut",
    "LogPage",
    "RunOut",
    "RunPage",
    "RunStateOut",
    "StepIn",
    "SweepCreateIn",
    "SweepCreateOut",
    "SweepOut",
    "SweepPage",
    "TimelineOut",
    "WireNew",
    "WireRecord",
    "json_encoder",
    "msgpack_encoder",
]


class EventOut(msgspec.Struct, frozen=True):
    """One event of the log, as JSON."""

    position: int
    stream: str
    version: int
    recorded_at_us: int
    type: str
    data: dict[str, Any]
    """The event's fields (its ``type`` tag included)."""


class LogPage(msgspec.Struct, frozen=True):
    """A page of the log in position order; ask again from ``next`` for the rest."""

    events: list[EventOut]
    next: int
    """The position to ask for next (``from=next``)."""
    head: int
    """The last position in the log when the page was read."""


class RunOut(RunState, kw_only=True):
    """A run's state, with the log position the server's read model reflected."""

    as_of: int = 0


class RunPage(msgspec.Struct, frozen=True):
    """A page of runs, oldest first."""

    items: list[RunState]
    total: int
    offset: int
    next_offset: int | None


class SweepOut(SweepState, kw_only=True):
    """A sweep's state with the states of the runs waiting in its queue."""

    queue_runs: list[RunState] = msgspec.field(default_factory=list)
    as_of: int = 0


class SweepPage(msgspec.Struct, frozen=True):
    """A page of sweeps, oldest first."""

    items: list[SweepState]
    total: int
    offset: int
    next_offset: int | None


class HistoryOut(msgspec.Struct, frozen=True):
    """A run's metric history: every step in the range, or at most ``points`` of them."""

    project: str
    run_id: str
    keys: list[str]
    """Every metric the run logged (from its summary), whatever ``keys=`` kept."""
    points: list[HistoryPoint]


class TimelineOut(msgspec.Struct, frozen=True):
    """A run's events in version order; ask again from ``next_version`` for the rest."""

    events: list[EventOut]
    next_version: int
    done: bool
    """True when the stream has no event at or after ``next_version`` (yet)."""


class FileOut(msgspec.Struct, frozen=True):
    """A file a run saved."""

    name: str
    digest: str
    size: int
    position: int


class HeadOut(msgspec.Struct, frozen=True):
    """The position of the last event (0 for an empty log)."""

    head: int


# --- writes from non-Python clients -------------------------------------------------------


class InitIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Start or continue a run, with ``api.init``'s resume rules."""

    project: str
    id: str
    resume: Literal["allow", "must", "never"] | None = None
    config: dict[str, Any] | None = None
    notes: str | None = None
    name: str | None = None
    tags: list[str] | None = None
    group: str | None = None
    job_type: str | None = None
    host: str = ""
    pid: int = 0


class InitOut(msgspec.Struct, frozen=True):
    """The run as started: log with ``incarnation``; its next step is ``starting_step``."""

    project: str
    run_id: str
    incarnation: int
    resumed: bool
    starting_step: int
    version: int


class StepIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One logged step."""

    step: int
    metrics: dict[str, Any]


class LogIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Steps to log for one incarnation of a run (fenced if a newer one exists)."""

    incarnation: int
    steps: list[StepIn]


class LogOut(msgspec.Struct, frozen=True):
    """What was appended: the stream's version after it and the positions."""

    version: int
    positions: list[int]


class FinishIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """End an incarnation of a run with an exit code."""

    incarnation: int
    exit_code: int = 0
    interrupted: bool = False


class SweepCreateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Create a sweep from a W&B-shaped config."""

    config: dict[str, Any]
    project: str | None = None
    sweep_id: str | None = None
    seed: int | None = None


class SweepCreateOut(msgspec.Struct, frozen=True):
    """The id of the sweep created."""

    sweep_id: str


# --- the store protocol over HTTP (msgpack), for open_store("http://...") ----------------


FileRefs = dict[str, FileRef]

json_encoder = msgspec.json.Encoder()
"""The one JSON encoder of the server."""
msgpack_encoder = msgspec.msgpack.Encoder()
"""The one msgpack encoder of the server (store protocol endpoints)."""
