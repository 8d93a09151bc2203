"""The dashboard: its static files and the read endpoints its pages use.

Each endpoint answers exactly what one screen shows: a page of the runs table with the
chosen columns, the filter choices, one run's timeline, one run's state at a past
position, a sweep with its runs' parameters and metric, an explanation, a verify report.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from projections import RunState, RunStatus

from .._audit._explain import explain
from .._audit._verify import verify
from ._context import MAX_PAGE, Context, context, int_param, json_response, path_param, text_param
from ._errors import Problem
from ._lifeline import Lifeline, lifeline_of
from ._runindex import SORTABLE, RunQuery, RunRow

__all__ = [
    "as_of",
    "dash_runs",
    "dash_sweep",
    "explain_run",
    "facets",
    "lifeline",
    "page",
    "static",
    "verify_store",
]

_STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
_MAX_COLUMNS = 40
_MAX_KEYS = 500  # config/summary keys offered as columns


class DashRow(msgspec.Struct, frozen=True):
    """One row of the runs table: fixed fields and the chosen config/summary columns."""

    project: str
    run_id: str
    name: str | None
    status: str
    sweep_id: str | None
    tags: list[str]
    steps: int
    last_step: int | None
    created_us: int
    updated_us: int
    runtime_s: float
    incarnation: int
    columns: dict[str, Any]
    """``config.<key>`` / ``summary.<key>`` -> value (absent when the run has none)."""


class DashRunPage(msgspec.Struct, frozen=True):
    """One page of the runs table."""

    items: list[DashRow]
    total: int
    """Runs matching the filters."""
    offset: int
    position: int
    """The log position the rows reflect."""


class Facets(msgspec.Struct, frozen=True):
    """What the runs table can be filtered and widened by."""

    projects: dict[str, int]
    statuses: dict[str, int]
    sweeps: list[str]
    tags: list[str]
    config_keys: list[str]
    """Most common first."""
    summary_keys: list[str]
    runs: int
    position: int


class SweepRun(msgspec.Struct, frozen=True):
    """A run of a sweep, with what the sweep page shows of it."""

    run_id: str
    status: str
    params: dict[str, Any]
    metric: float | None
    steps: int
    queued: bool


class DashSweep(msgspec.Struct, frozen=True):
    """A sweep page: the sweep, its runs with parameters and metric, the best run."""

    sweep_id: str
    project: str
    status: str
    method: str
    config: dict[str, Any]
    run_cap: int | None
    counts: dict[str, int]
    queue: list[str]
    claims: dict[str, str]
    agents: list[str]
    metric: str | None
    goal: str
    parameters: list[str]
    runs: list[SweepRun]
    best: SweepRun | None
    position: int


class AsOf(msgspec.Struct, frozen=True):
    """A run's state at a past log position."""

    position: int
    state: RunState | None


async def page(request: Request) -> Response:
    """GET /: the dashboard page."""
    body = resources.files(__package__).joinpath("dashboard.html").read_bytes()
    return Response(body, media_type="text/html; charset=utf-8")


async def static(request: Request) -> Response:
    """GET /static/{name}: the dashboard's script, style, and uPlot with its licence."""
    name = path_param(request, "name")
    media = _STATIC.get(name)
    if media is None:
        raise Problem(404, f"there is no static file {name!r}")
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    return Response(body, media_type=media, headers={"Cache-Control": "max-age=300"})


def _query(request: Request) -> RunQuery:
    status = text_param(request, "status") or None
    if status is not None and status not in {s.value for s in RunStatus}:
        raise Problem(
            400, f"unknown status {status!r}; use one of " + ", ".join(s.value for s in RunStatus)
        )
    sort = text_param(request, "sort") or "created"
    if sort not in SORTABLE and not sort.startswith(("config.", "summary.")):
        raise Problem(
            400,
            f"cannot sort by {sort!r}; use one of {', '.join(SORTABLE)}, "
            "config.<key> or summary.<key>",
        )
    order = text_param(request, "order") or "desc"
    if order not in ("asc", "desc"):
        raise Problem(400, f"order is 'asc' or 'desc', not {order!r}")
    search = (text_param(request, "q") or "").strip().lower()
    limit = int_param(request, "limit", 50, minimum=1, maximum=MAX_PAGE)
    offset = int_param(request, "offset", 0)
    assert limit is not None
    assert offset is not None
    return RunQuery(
        project=text_param(request, "project") or None,
        status=status,
        sweep=text_param(request, "sweep") or None,
        tag=text_param(request, "tag") or None,
        search=search or None,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
    )


def _columns(request: Request) -> list[str]:
    raw = ",".join(request.query_params.getlist("columns"))
    columns = [c for c in raw.split(",") if c]
    if len(columns) > _MAX_COLUMNS:
        raise Problem(400, f"at most {_MAX_COLUMNS} columns, got {len(columns)}")
    for column in columns:
        if not column.startswith(("config.", "summary.")) or "\x00" in column:
            raise Problem(400, f"column {column!r} must be config.<key> or summary.<key>")
    return columns


def _dash_row(row: RunRow, columns: list[str]) -> DashRow:
    chosen: dict[str, Any] = {}
    for column in columns:
        source = row.config if column.startswith("config.") else row.summary
        key = column.split(".", 1)[1]
        if key in source:
            value = source[key]
            # JSON has no NaN or infinity: say which it was instead of failing the page.
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)
            chosen[column] = value
    return DashRow(
        row.project,
        row.run_id,
        row.name,
        row.status,
        row.sweep_id,
        row.tags,
        row.steps,
        row.last_step,
        row.created_us,
        row.updated_us,
        row.runtime_s,
        row.incarnation,
        chosen,
    )


async def dash_runs(request: Request) -> Response:
    """GET /api/dash/runs?project=&status=&sweep=&tag=&q=&sort=&order=&offset=&limit=&columns=

    One page of the runs table, filtered and sorted on the server.
    """
    ctx = context(request)
    query = _query(request)
    columns = _columns(request)
    position = await ctx.run_index.refresh()
    rows, total = ctx.run_index.select(query)
    return json_response(
        DashRunPage([_dash_row(r, columns) for r in rows], total, query.offset, position)
    )


async def facets(request: Request) -> Response:
    """GET /api/dash/facets?project=: projects, statuses, sweeps, tags and column keys."""
    ctx = context(request)
    project = text_param(request, "project") or None
    position = await ctx.run_index.refresh()
    cached = ctx.facets_cache.get(project)
    if cached is not None and cached[0] == position:
        return Response(cached[1], media_type="application/json")
    projects: dict[str, int] = {}
    statuses: dict[str, int] = {}
    sweeps: set[str] = set()
    tags: set[str] = set()
    config_keys: dict[str, int] = {}
    summary_keys: dict[str, int] = {}
    rows = ctx.run_index.rows()
    for row in rows:
        projects[row.project] = projects.get(row.project, 0) + 1
        if project is not None and row.project != project:
            continue
        statuses[row.status] = statuses.get(row.status, 0) + 1
        if row.sweep_id:
            sweeps.add(row.sweep_id)
        tags.update(row.tags)
        for key in row.config:
            config_keys[key] = config_keys.get(key, 0) + 1
        for key in row.summary:
            summary_keys[key] = summary_keys.get(key, 0) + 1
    body = msgspec.json.encode(
        Facets(
            projects=dict(sorted(projects.items())),
            statuses=statuses,
            sweeps=sorted(sweeps),
            tags=sorted(tags),
            config_keys=_common(config_keys),
            summary_keys=_common(summary_keys),
            runs=len(rows),
            position=position,
        )
    )
    ctx.facets_cache[project] = (position, body)
    return Response(body, media_type="application/json")


def _common(counts: dict[str, int]) -> list[str]:
    """Keys most runs have first: the columns a table shows before any is chosen."""
    return sorted(counts, key=lambda key: (-counts[key], key))[:_MAX_KEYS]


async def _run_or_404(ctx: Context, request: Request) -> RunState:
    project, run_id = path_param(request, "project"), path_param(request, "run_id")
    state = await ctx.projector.run(project, run_id)
    if state is None:
        raise Problem(404, f"there is no run {project}/{run_id}; list runs at /api/runs")
    return state


async def lifeline(request: Request) -> Response:
    """GET /api/dash/runs/{project}/{run_id}/lifeline: incarnation bands and marks."""
    ctx = context(request)
    state = await _run_or_404(ctx, request)
    line: Lifeline = await lifeline_of(ctx.projector, state.project, state.run_id)
    return json_response(line)


async def as_of(request: Request) -> Response:
    """GET /api/dash/runs/{project}/{run_id}/as_of?position=: the run's state back then."""
    ctx = context(request)
    state = await _run_or_404(ctx, request)
    position = int_param(request, "position", None)
    if position is None:
        raise Problem(400, "pass position=, a log position")
    if position >= state.last_position and position <= ctx.projector.position:
        # Nothing of the run happened since: its current state is its state then, and
        # the slider's starting point costs no replay.
        return json_response(AsOf(position, state))
    past = await ctx.time_travel.run_as_of((state.project, state.run_id), state.sweep_id, position)
    return json_response(AsOf(position, past))


def _metric(config: dict[str, Any]) -> tuple[str | None, str]:
    metric = config.get("metric")
    if isinstance(metric, dict) and isinstance(metric.get("name"), str):
        goal = metric.get("goal", "minimize")
        return metric["name"], goal if goal in ("minimize", "maximize") else "minimize"
    return None, "minimize"


async def dash_sweep(request: Request) -> Response:
    """GET /api/dash/sweeps/{sweep_id}: the sweep with its runs, parameters, metric, best."""
    ctx = context(request)
    sweep_id = path_param(request, "sweep_id")
    sweep = await ctx.projector.sweep(sweep_id)
    if sweep is None:
        raise Problem(404, f"there is no sweep {sweep_id!r}; list sweeps at /api/sweeps")
    metric, goal = _metric(sweep.config)
    states = await ctx.projector.runs_of_sweep(sweep_id)
    order = {run_id: i for i, run_id in enumerate(sweep.scheduled)}
    states.sort(key=lambda s: (order.get(s.run_id, len(order)), s.created_us, s.run_id))
    queued = set(sweep.queue)
    runs: list[SweepRun] = []
    parameters: set[str] = set()
    for state in states:
        value = state.summary.get(metric) if metric else None
        number = (
            float(value)
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            else None
        )
        params = dict(state.params or {})
        parameters.update(k for k, v in params.items() if not isinstance(v, dict))
        runs.append(
            SweepRun(
                state.run_id,
                state.status.value,
                params,
                number,
                state.steps,
                state.run_id in queued,
            )
        )
    scored = [r for r in runs if r.metric is not None]
    best = None
    if scored:
        pick = max if goal == "maximize" else min
        best = pick(scored, key=lambda r: r.metric if r.metric is not None else 0.0)
    return json_response(
        DashSweep(
            sweep_id=sweep.sweep_id,
            project=sweep.project,
            status=sweep.status.value,
            method=sweep.method,
            config=sweep.config,
            run_cap=sweep.run_cap,
            counts=sweep.counts,
            queue=sweep.queue,
            claims=sweep.claims,
            agents=sorted(sweep.agents),
            metric=metric,
            goal=goal,
            parameters=sorted(parameters),
            runs=runs,
            best=best,
            position=sweep.last_position,
        )
    )


async def explain_run(request: Request) -> Response:
    """GET /api/dash/explain/{project}/{run_id}: ``runlog explain``'s lines for the run."""
    ctx = context(request)
    state = await _run_or_404(ctx, request)
    lines = await explain(state.project, state.run_id, store=ctx.store)
    return json_response({"lines": lines})


async def verify_store(request: Request) -> Response:
    """GET /api/dash/verify: ``runlog verify`` over the whole log, in this process."""
    ctx = context(request)
    report = await verify(store=ctx.store, workers=0)
    fault = report.log.first_fault
    return json_response(
        {
            "ok": report.ok,
            "head": report.head,
            "checked": report.log.last_position,
            "first_bad_position": report.first_bad_position,
            "fault": None if fault is None else msgspec.to_builtins(fault),
            "projection_differences": (
                [] if report.projection is None else report.projection.differences[:20]
            ),
            "replay_error": report.replay_error,
        }
    )
