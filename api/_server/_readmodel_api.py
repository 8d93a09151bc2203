"""``/api/store/rm/*``: the server's read model, for projectors of ``http://`` stores.

A projector opened on an ``HTTPStore`` asks these instead of replaying the log over
the network (``projections.RemoteReadModel``), so sweep claims, the watchdog, audits
and dashboards in other processes cost a request each, whatever the log's length.
Read-only and msgpack, like the rest of the store protocol. Each query first folds
what the log holds, on the server, as any query does: read-your-writes holds for the
client too.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from projections import RunCopy, RunLine, RunState, SweepState

from ._context import context, int_param, text_param
from ._errors import Problem
from ._schemas import msgpack_encoder

__all__ = [
    "catch_up",
    "history",
    "position",
    "run",
    "run_copy",
    "run_line",
    "runs",
    "snapshot",
    "sweep",
    "sweeps",
]


def _reply(value: object) -> Response:
    return Response(msgpack_encoder.encode(value), media_type="application/msgpack")


def _required(request: Request, *names: str) -> list[str]:
    values = [text_param(request, name) for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise Problem(400, f"query parameter(s) {', '.join(missing)} are required")
    return [value for value in values if value]


async def position(request: Request) -> Response:
    """GET /api/store/rm/position: the position the server's read model reflects."""
    return _reply(await context(request).projector.stored_position())


async def catch_up(request: Request) -> Response:
    """POST /api/store/rm/catch_up: fold what the log holds; the position reached."""
    return _reply(await context(request).projector.catch_up())


async def run(request: Request) -> Response:
    """GET /api/store/rm/run?project=&run_id=: one run's state, or nil."""
    project, run_id = _required(request, "project", "run_id")
    state: RunState | None = await context(request).projector.run(project, run_id)
    return _reply(state)


async def run_line(request: Request) -> Response:
    """GET /api/store/rm/line?project=&run_id=: one run's line (incarnations, marks,
    explained events), or nil."""
    project, run_id = _required(request, "project", "run_id")
    line: RunLine | None = await context(request).projector.run_line(project, run_id)
    return _reply(line)


async def run_copy(request: Request) -> Response:
    """GET /api/store/rm/copy?project=&run_id=&position=: the last stored copy of a run's
    state at or before the position, or nil."""
    project, run_id = _required(request, "project", "run_id")
    at = int_param(request, "position", None, minimum=0)
    if at is None:
        raise Problem(400, "query parameter position is required")
    copy: RunCopy | None = await context(request).projector.run_copy(project, run_id, at)
    return _reply(copy)


async def runs(request: Request) -> Response:
    """GET /api/store/rm/runs?project=&status=&sweep_id=: runs, oldest first."""
    ctx = context(request)
    sweep_id = text_param(request, "sweep_id")
    if sweep_id:
        return _reply(await ctx.projector.runs_of_sweep(sweep_id))
    found = await ctx.projector.runs(
        text_param(request, "project"),
        text_param(request, "status"),
        limit=int_param(request, "limit", None, minimum=0),
    )
    return _reply(found)


async def sweep(request: Request) -> Response:
    """GET /api/store/rm/sweep?sweep_id=: one sweep's state, or nil."""
    [sweep_id] = _required(request, "sweep_id")
    state: SweepState | None = await context(request).projector.sweep(sweep_id)
    return _reply(state)


async def sweeps(request: Request) -> Response:
    """GET /api/store/rm/sweeps?project=&status=: sweeps, oldest first."""
    found = await context(request).projector.sweeps(
        text_param(request, "project"), text_param(request, "status")
    )
    return _reply(found)


async def history(request: Request) -> Response:
    """GET /api/store/rm/history?project=&run_id=&start=&stop=&points=: (step, position) rows."""
    project, run_id = _required(request, "project", "run_id")
    rows = await context(request).projector.history_rows(
        project,
        run_id,
        int_param(request, "start", None, minimum=-(1 << 62)),
        int_param(request, "stop", None, minimum=-(1 << 62)),
        int_param(request, "points", None, minimum=1, maximum=100_000),
    )
    return _reply(rows)


async def snapshot(request: Request) -> Response:
    """GET /api/store/rm/snapshot: the whole read model at one position (for audits)."""
    return _reply(await context(request).projector.snapshot())
