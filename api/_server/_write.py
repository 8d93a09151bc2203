"""Write endpoints for clients that are not Python: init/log/finish a run, control sweeps.

Each decides against the current state and appends with the stream's version as the
expected version, exactly as the library does, so these writes obey the same rules
(resume modes, fencing of older incarnations) and race safely with the library's.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from eventstore import (
    NO_STREAM,
    Event,
    NewEvent,
    RunExited,
    RunInitialized,
    StepLogged,
    StreamInfo,
    WrongExpectedVersion,
    run_stream,
)
from projections import RunHeads, RunState

from .._library._ids import check_run_id
from .._library._init import _initialization
from .._sweeping._sweeps import cancel_sweep, create_sweep, pause_sweep, resume_sweep, stop_sweep
from ._auth import require_token
from ._context import Context, body_as, context, json_response, path_param
from ._errors import Problem
from ._schemas import FinishIn, InitIn, InitOut, LogIn, LogOut, SweepCreateIn, SweepCreateOut

__all__ = ["control_sweep", "finish_run", "init_run", "log_steps", "new_sweep"]

_ATTEMPTS = 50
_SMALL = 1 << 20  # bodies that hold a few fields


def _authorized(request: Request) -> Context:
    ctx = context(request)
    require_token(request, ctx.token)
    return ctx


def _project(project: str) -> str:
    if not project or "/" in project or "\x00" in project or len(project) > 200:
        raise Problem(400, f"project {project!r} must be 1 to 200 characters without '/' or NUL")
    return project


async def init_run(request: Request) -> Response:
    """POST /api/runs: start or continue a run (``api.init``'s resume rules)."""
    ctx = _authorized(request)
    body = await body_as(request, InitIn)
    project, run_id = _project(body.project), check_run_id(body.id)
    template = RunInitialized(
        project=project,
        run_id=run_id,
        incarnation=0,
        resumed=False,
        starting_step=0,
        resume=body.resume,
        config=body.config or {},
        notes=body.notes,
        name=body.name,
        tags=body.tags,
        group=body.group,
        job_type=body.job_type,
        host=body.host or socket.gethostname(),
        pid=body.pid or os.getpid(),
    )
    stream = run_stream(project, run_id)
    for _ in range(_ATTEMPTS):
        current = await _current(ctx, project, run_id)
        if current is None:
            continue
        state, info = current
        event = _initialization(template, state, body.resume, project, run_id)
        try:
            result = await ctx.store.append(
                stream, [NewEvent(event)], info.version if info is not None else NO_STREAM
            )
        except WrongExpectedVersion:
            continue
        return json_response(
            InitOut(
                project,
                run_id,
                event.incarnation,
                event.resumed,
                event.starting_step,
                result.version,
            ),
            201,
        )
    raise Problem(409, f"run {project}/{run_id} kept changing during init; retry")


async def _current(
    ctx: Context, project: str, run_id: str
) -> tuple[RunState | None, StreamInfo | None] | None:
    """The run's state and its stream's info, read together; None if the state does
    not reflect the stream's last event yet (look again)."""
    stream = run_stream(project, run_id)
    if getattr(ctx.store, "inline", None) is not None:
        # The run's head: current in one row, whatever the read model's lag.
        head = await ctx.store.stream_head(stream)  # type: ignore[attr-defined]
        if head is None:
            return None, None
        return RunHeads.decode(head.state), head.info
    state = await ctx.projector.run(project, run_id)
    info = await ctx.store.stream_info(stream)
    if info is not None and info.last_position > ctx.projector.position:
        return None
    return state, info


async def _append_fenced(
    ctx: Context, project: str, run_id: str, incarnation: int, events: list[Event]
) -> LogOut:
    """Append ``events`` of ``incarnation``, refusing if a newer incarnation exists."""
    stream = run_stream(project, run_id)
    for _ in range(_ATTEMPTS):
        current = await _current(ctx, project, run_id)
        if current is None:
            continue
        state, info = current
        if state is None or info is None or not state.started:
            raise Problem(404, f"run {project}/{run_id} was never started; POST /api/runs first")
        if incarnation != state.incarnation:
            raise Problem(
                409,
                f"run {project}/{run_id} is at incarnation {state.incarnation}, not "
                f"{incarnation}: this writer is fenced (a newer start took over the run)",
            )
        try:
            result = await ctx.store.append(stream, events, info.version)
        except WrongExpectedVersion:
            continue
        return LogOut(result.version, list(result.positions))
    raise Problem(409, f"run {project}/{run_id} kept changing; retry")


async def log_steps(request: Request) -> Response:
    """POST /api/runs/{project}/{run_id}/log: append steps of one incarnation."""
    ctx = _authorized(request)
    project, run_id = path_param(request, "project"), path_param(request, "run_id")
    body = await body_as(request, LogIn)
    if not body.steps:
        raise Problem(400, "steps is empty; send at least one {step, metrics}")
    events: list[Event] = []
    for index, row in enumerate(body.steps):
        if row.step < 0:
            raise Problem(400, f"steps[{index}].step must be >= 0, got {row.step}")
        events.append(StepLogged(incarnation=body.incarnation, step=row.step, metrics=row.metrics))
    return json_response(await _append_fenced(ctx, project, run_id, body.incarnation, events))


async def finish_run(request: Request) -> Response:
    """POST /api/runs/{project}/{run_id}/finish: end an incarnation with an exit code."""
    ctx = _authorized(request)
    project, run_id = path_param(request, "project"), path_param(request, "run_id")
    body = await body_as(request, FinishIn, _SMALL)
    if not -(1 << 31) <= body.exit_code < 1 << 31:
        raise Problem(400, f"exit_code {body.exit_code} is not a process exit code")
    event = RunExited(
        incarnation=body.incarnation, exit_code=body.exit_code, interrupted=body.interrupted
    )
    return json_response(await _append_fenced(ctx, project, run_id, body.incarnation, [event]))


async def new_sweep(request: Request) -> Response:
    """POST /api/sweeps: create a sweep from a config."""
    ctx = _authorized(request)
    body = await body_as(request, SweepCreateIn, _SMALL)
    if body.sweep_id is not None:
        check_run_id(body.sweep_id)  # sweep ids follow the run id rules
    if body.project is not None:
        _project(body.project)
    sweep_id = await create_sweep(
        body.config, project=body.project, store=ctx.store, seed=body.seed, sweep_id=body.sweep_id
    )
    return json_response(SweepCreateOut(sweep_id), 201)


_CONTROLS: dict[str, Any] = {
    "pause": pause_sweep,
    "resume": resume_sweep,
    "stop": stop_sweep,
    "cancel": cancel_sweep,
}


async def control_sweep(request: Request) -> Response:
    """POST /api/sweeps/{sweep_id}/{action}: pause, resume, stop or cancel a sweep."""
    ctx = _authorized(request)
    sweep_id, action = path_param(request, "sweep_id"), path_param(request, "action")
    command = _CONTROLS.get(action)
    if command is None:
        raise Problem(404, f"unknown sweep action {action!r}; use pause, resume, stop or cancel")
    state = await command(sweep_id, store=ctx.store)
    return json_response(msgspec.structs.asdict(state))
