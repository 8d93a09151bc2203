"""The JSON read endpoints: runs, one run, its history, timeline and files; sweeps; the log."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TypeVar

import anyio
import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from eventstore import StepLogged, run_stream
from projections import RunState, RunStatus, SweepStatus, history_as_of, metric_names

from ._context import MAX_PAGE, context, event_out, int_param, json_response, path_param, text_param
from ._errors import Problem
from ._schemas import (
    FileOut,
    HeadOut,
    HistoryOut,
    LogPage,
    RunOut,
    RunPage,
    SweepOut,
    SweepPage,
    TimelineOut,
)

__all__ = [
    "get_file",
    "get_run",
    "head",
    "history",
    "list_files",
    "list_runs",
    "list_sweeps",
    "log_page",
    "one_sweep",
    "timeline",
]

_I = TypeVar("_I")
_MAX_POINTS = 100_000
_TIMELINE_SCAN = 20_000  # events one timeline request reads at most, skipping steps


async def head(request: Request) -> Response:
    """GET /api/head"""
    return json_response(HeadOut(await context(request).store.head()))


async def health(request: Request) -> Response:
    """GET /api/health: the server is up and its store answers."""
    await context(request).store.head()
    return json_response({"ok": True})


def _ordered(request: Request, items: list[_I]) -> list[_I]:
    order = request.query_params.get("order", "oldest")
    if order not in ("oldest", "newest"):
        raise Problem(400, f"order is 'oldest' or 'newest', not {order!r}")
    return items[::-1] if order == "newest" else items


def _page_params(request: Request) -> tuple[int, int]:
    limit = int_param(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    offset = int_param(request, "offset", 0)
    assert limit is not None
    assert offset is not None
    return limit, offset


def _status(raw: str | None, kind: type[RunStatus] | type[SweepStatus]) -> str | None:
    if raw is None or raw == "":
        return None
    values = [s.value for s in kind]
    if raw not in values and raw.upper() not in values:
        raise Problem(400, f"unknown status {raw!r}; use one of {', '.join(values)}")
    return raw


async def list_runs(request: Request) -> Response:
    """GET /api/runs?project=&status=&order=&limit=&offset=: oldest first, or newest."""
    ctx = context(request)
    limit, offset = _page_params(request)
    status = _status(text_param(request, "status"), RunStatus)
    runs = _ordered(
        request, await ctx.projector.runs(text_param(request, "project") or None, status)
    )
    page = runs[offset : offset + limit]
    following = offset + len(page)
    return json_response(
        RunPage(page, len(runs), offset, following if following < len(runs) else None)
    )


async def _run_or_404(request: Request) -> RunState:
    project, run_id = path_param(request, "project"), path_param(request, "run_id")
    state = await context(request).projector.run(project, run_id)
    if state is None:
        raise Problem(404, f"there is no run {project}/{run_id}; list runs at /api/runs")
    return state


async def get_run(request: Request) -> Response:
    """GET /api/runs/{project}/{run_id}"""
    state = await _run_or_404(request)
    fields = msgspec.structs.asdict(state)
    return json_response(RunOut(**fields, as_of=context(request).projector.position))


async def history(request: Request) -> Response:
    """GET /api/runs/{project}/{run_id}/history?keys=&start=&stop=&points="""
    state = await _run_or_404(request)
    keys: list[str] | None = None
    raw_keys = request.query_params.getlist("keys")
    if raw_keys:
        keys = [k for value in raw_keys for k in value.split(",") if k]
    start = int_param(request, "start", None, minimum=-(1 << 62), maximum=1 << 62)
    stop = int_param(request, "stop", None, minimum=-(1 << 62), maximum=1 << 62)
    points = int_param(request, "points", None, minimum=1, maximum=_MAX_POINTS)
    if points is None:
        await _refuse_a_huge_history(request, state, start, stop)
    until = int_param(request, "until", None, minimum=0, maximum=1 << 62)
    if until is not None:  # as the log stood then: rows a later rewind hid are there
        rows = await history_as_of(
            context(request).store,
            state.project,
            state.run_id,
            until,
            keys=keys,
            start=start,
            stop=stop,
            points=points,
        )
    else:
        rows = await context(request).projector.history(
            state.project, state.run_id, keys=keys, start=start, stop=stop, points=points
        )
    if points is None and len(rows) > _MAX_POINTS:
        raise Problem(
            400,
            f"the range holds {len(rows)} steps; narrow it or pass points= (at most {_MAX_POINTS})",
        )
    names = metric_names(state.summary, state.metrics)
    return json_response(HistoryOut(state.project, state.run_id, names, rows))


async def _refuse_a_huge_history(
    request: Request, state: RunState, start: int | None, stop: int | None
) -> None:
    """Refuse a history of more than ``_MAX_POINTS`` steps before reading any event.

    The run's step count bounds the answer; only when a range might cut it below the
    limit are the range's rows counted, from the read model's index of steps.
    """
    bound = state.steps
    if start is not None and stop is not None:
        bound = min(bound, max(stop - start, 0))
    if bound <= _MAX_POINTS:
        return
    if start is None and stop is None:
        count = state.steps
    else:
        rows = await context(request).projector.history_rows(
            state.project, state.run_id, start, stop
        )
        count = len(rows)
    if count > _MAX_POINTS:
        raise Problem(
            400,
            f"the range holds {count} steps; narrow it or pass points= (at most {_MAX_POINTS})",
        )


async def timeline(request: Request) -> Response:
    """GET /api/runs/{project}/{run_id}/timeline?from_version=&limit=&steps="""
    state = await _run_or_404(request)
    ctx = context(request)
    start = int_param(request, "from_version", 0)
    limit = int_param(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    assert start is not None
    assert limit is not None
    steps = (request.query_params.get("steps") or "false").lower() in ("1", "true", "yes")
    stream = run_stream(state.project, state.run_id)
    events = []
    next_version = start
    done = True
    async for record in ctx.store.read_stream(stream, start, limit=_TIMELINE_SCAN):
        next_version = record.version + 1
        if steps or not isinstance(record.event, StepLogged):
            events.append(event_out(record))
            if len(events) >= limit:
                break
    info = await ctx.store.stream_info(stream)
    done = info is None or next_version > info.version
    return json_response(TimelineOut(events, next_version, done))


async def list_files(request: Request) -> Response:
    """GET /api/runs/{project}/{run_id}/files"""
    state = await _run_or_404(request)
    return json_response(
        [FileOut(name, ref.digest, ref.size, ref.position) for name, ref in state.files.items()]
    )


async def get_file(request: Request) -> Response:
    """GET /api/runs/{project}/{run_id}/files/{name}: the saved bytes."""
    state = await _run_or_404(request)
    name = path_param(request, "name")
    ref = state.files.get(name)
    if ref is None:
        raise Problem(404, f"run {state.project}/{state.run_id} saved no file {name!r}")
    return await file_by_digest(request, ref.digest, name)


async def file_by_digest(request: Request, digest: str, filename: str) -> Response:
    """Stream the stored file ``digest``, through a temporary file removed afterwards."""
    folder = await anyio.to_thread.run_sync(tempfile.mkdtemp)
    target = Path(folder) / "file"
    try:
        await context(request).store.get_file(digest, target)
    except BaseException:
        await anyio.to_thread.run_sync(_remove, folder)
        raise
    return FileResponse(
        target,
        media_type="application/octet-stream",
        filename=filename,
        background=BackgroundTask(anyio.to_thread.run_sync, _remove, folder),
    )


def _remove(folder: str) -> None:
    for path in Path(folder).iterdir():
        path.unlink()
    Path(folder).rmdir()


async def list_sweeps(request: Request) -> Response:
    """GET /api/sweeps?project=&status=&order=&limit=&offset=: oldest first, or newest."""
    ctx = context(request)
    limit, offset = _page_params(request)
    status = _status(text_param(request, "status"), SweepStatus)
    sweeps = _ordered(
        request, await ctx.projector.sweeps(text_param(request, "project") or None, status)
    )
    page = sweeps[offset : offset + limit]
    following = offset + len(page)
    return json_response(
        SweepPage(page, len(sweeps), offset, following if following < len(sweeps) else None)
    )


async def one_sweep(request: Request) -> Response:
    """GET /api/sweeps/{sweep_id}: the sweep with its queue and the queued runs' states."""
    ctx = context(request)
    sweep_id = path_param(request, "sweep_id")
    sweep = await ctx.projector.sweep(sweep_id)
    if sweep is None:
        raise Problem(404, f"there is no sweep {sweep_id!r}; list sweeps at /api/sweeps")
    queued = [await ctx.projector.run(sweep.project, run_id) for run_id in sweep.queue]
    return json_response(
        SweepOut(
            **msgspec.structs.asdict(sweep),
            queue_runs=[run for run in queued if run is not None],
            as_of=ctx.projector.position,
        )
    )


async def log_page(request: Request) -> Response:
    """GET /api/log?from=&limit=: the log itself, paginated by position."""
    ctx = context(request)
    start = int_param(request, "from", 1, minimum=0)
    limit = int_param(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    assert start is not None
    assert limit is not None
    start = max(start, 1)
    events = [
        event_out(record)
        async for record in ctx.store.read_all(start, to_position=start + limit - 1)
    ]
    following = events[-1].position + 1 if events else start
    return json_response(LogPage(events, following, await ctx.store.head()))
