"""The OpenAPI 3.1 description at ``/openapi.json``, built from the msgspec schemas."""

from __future__ import annotations

from typing import Any

import msgspec

from eventstore import wire

from ._schemas import (
    AppendIn,
    AppendOut,
    ErrorOut,
    FileOut,
    FinishIn,
    HeadOut,
    HistoryOut,
    InitIn,
    InitOut,
    LogIn,
    LogOut,
    LogPage,
    RunOut,
    RunPage,
    SweepCreateIn,
    SweepCreateOut,
    SweepOut,
    SweepPage,
    TimelineOut,
)

__all__ = ["openapi"]

_TYPES: tuple[Any, ...] = (
    AppendIn, AppendOut, ErrorOut, FileOut, FinishIn, HeadOut, HistoryOut, InitIn, InitOut,
    LogIn, LogOut, LogPage, RunOut, RunPage, SweepCreateIn, SweepCreateOut, SweepOut,
    SweepPage, TimelineOut, list[FileOut],
)  # fmt: skip
_PREFIX = "#/components/schemas/"


def _ref(kind: Any) -> dict[str, Any]:
    if getattr(kind, "__origin__", None) is list:
        return {"type": "array", "items": _ref(kind.__args__[0])}
    return {"$ref": _PREFIX + kind.__name__}


def _param(name: str, where: str = "query", kind: str = "string", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind, **extra}
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


def _path(name: str) -> dict[str, Any]:
    # Path segments are any characters but '/', which Starlette does not match inside one.
    return _param(name, "path", pattern="^[^/]+$", minLength=1)


def _errors(*codes: int) -> dict[str, Any]:
    body = {"application/json": {"schema": _ref(ErrorOut)}}
    return {str(code): {"description": "refused", "content": body} for code in codes}


def _op(
    summary: str,
    answer: Any,
    *,
    params: list[dict[str, Any]] | None = None,
    body: Any = None,
    status: int = 200,
    media: str = "application/json",
    errors: tuple[int, ...] = (400, 404),
    secured: bool = False,
) -> dict[str, Any]:
    if isinstance(answer, str):
        content: dict[str, Any] = {answer: {"schema": {}}}
    else:
        content = {media: {"schema": _ref(answer)}}
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {str(status): {"description": "ok", "content": content}, **_errors(*errors)},
    }
    if body is not None:
        schema = _ref(body) if not isinstance(body, dict) else body
        body_media = media if not isinstance(body, dict) else "application/octet-stream"
        op["requestBody"] = {"required": True, "content": {body_media: {"schema": schema}}}
    if secured:
        op["security"] = [{"bearer": []}]
        op["responses"].update(_errors(401, 403, 409))
    return op


def openapi() -> dict[str, Any]:
    """The OpenAPI document of the server."""
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_PREFIX + "{name}")
    run = [_path("project"), _path("run_id")]
    page = [
        _param("limit", kind="integer", minimum=1, maximum=10_000),
        _param("offset", kind="integer", minimum=0),
    ]
    order = {"name": "order", "in": "query", "required": False,
             "schema": {"enum": ["oldest", "newest"]}}  # fmt: skip
    listing = [_param("project"), _param("status"), order, *page]
    msgpack = "application/msgpack"
    paths: dict[str, Any] = {
        "/api/health": {"get": _op("The server and its store answer", "application/json")},
        "/api/head": {"get": _op("The last position of the log", HeadOut)},
        "/api/runs": {
            "get": _op(
                "Runs, oldest first, by project and status, paginated", RunPage, params=listing
            ),
            "post": _op(
                "Start or continue a run (init)", InitOut, body=InitIn, status=201, secured=True
            ),
        },
        "/api/runs/{project}/{run_id}": {"get": _op("One run's state", RunOut, params=run)},
        "/api/runs/{project}/{run_id}/history": {
            "get": _op(
                "A run's metric history: keys, step range [start, stop), at most `points`; "
                "`until`: as the log stood at that position",
                HistoryOut,
                params=[
                    *run,
                    _param("keys"),
                    _param("start", kind="integer"),
                    _param("stop", kind="integer"),
                    _param("points", kind="integer", minimum=1, maximum=100_000),
                    _param("until", kind="integer", minimum=0),
                ],
            )
        },
        "/api/runs/{project}/{run_id}/timeline": {
            "get": _op(
                "A run's events in version order (steps only with steps=true)",
                TimelineOut,
                params=[
                    *run,
                    _param("from_version", kind="integer", minimum=0),
                    _param("limit", kind="integer", minimum=1, maximum=10_000),
                    _param("steps", kind="boolean"),
                ],
            )
        },
        "/api/runs/{project}/{run_id}/files": {
            "get": _op("The files a run saved", list[FileOut], params=run)
        },
        "/api/runs/{project}/{run_id}/files/{name}": {
            "get": _op(
                "A saved file's bytes", "application/octet-stream", params=[*run, _path("name")]
            )
        },
        "/api/runs/{project}/{run_id}/log": {
            "post": _op(
                "Log steps for an incarnation", LogOut, params=run, body=LogIn, secured=True
            )
        },
        "/api/runs/{project}/{run_id}/finish": {
            "post": _op("Finish an incarnation", LogOut, params=run, body=FinishIn, secured=True)
        },
        "/api/sweeps": {
            "get": _op("Sweeps, oldest first, paginated", SweepPage, params=listing),
            "post": _op(
                "Create a sweep", SweepCreateOut, body=SweepCreateIn, status=201, secured=True
            ),
        },
        "/api/sweeps/{sweep_id}": {
            "get": _op("One sweep with its queue", SweepOut, params=[_path("sweep_id")])
        },
        "/api/sweeps/{sweep_id}/{action}": {
            "post": _op(
                "Pause, resume, stop or cancel a sweep",
                "application/json",
                params=[
                    _path("sweep_id"),
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["pause", "resume", "stop", "cancel"]},
                    },
                ],
                secured=True,
            )
        },
        "/api/log": {
            "get": _op(
                "The log from a position, paginated by position",
                LogPage,
                params=[
                    _param("from", kind="integer", minimum=0),
                    _param("limit", kind="integer", minimum=1, maximum=10_000),
                ],
            )
        },
        "/api/events": {
            "get": {
                "summary": "Live events as server-sent events; Last-Event-ID resumes",
                "parameters": [
                    _param("from", kind="integer", minimum=0),
                    _param("stream"),
                    _param("prefix"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400),
                },
                "x-streaming": True,
            }
        },
        wire.APPEND: {
            "post": _op(
                "Store protocol: append (msgpack)",
                AppendOut,
                body=AppendIn,
                media=msgpack,
                secured=True,
            )
        },
        wire.EVENTS: {
            "get": _op(
                "Store protocol: a page of the log (msgpack)",
                msgpack,
                params=[
                    _param("from", kind="integer", minimum=0),
                    _param("to", kind="integer", minimum=0),
                    _param("limit", kind="integer", minimum=1, maximum=10_000),
                ],
            )
        },
        wire.STREAM: {
            "get": _op(
                "Store protocol: a page of a stream (msgpack)",
                msgpack,
                params=[
                    _param("name"),
                    _param("from_version", kind="integer", minimum=0),
                    _param("limit", kind="integer", minimum=1, maximum=10_000),
                ],
            )
        },
        wire.STORED: {
            "get": _op(
                "Store protocol: a page of the log as stored (msgpack)",
                msgpack,
                params=[
                    _param("from", kind="integer", minimum=0),
                    _param("to", kind="integer", minimum=0),
                    _param("limit", kind="integer", minimum=1, maximum=10_000),
                ],
            )
        },
        wire.POSITIONS: {
            "post": _op(
                "Store protocol: events at positions (msgpack)",
                msgpack,
                body={"type": "array", "items": {"type": "integer"}},
                media=msgpack,
            )
        },
        wire.INFO: {
            "get": _op("Store protocol: stream info (msgpack)", msgpack, params=[_param("name")])
        },
        wire.STREAMS: {
            "get": _op("Store protocol: streams (msgpack)", msgpack, params=[_param("prefix")])
        },
        wire.POSITION_AT: {
            "get": _op(
                "Store protocol: position at a time (msgpack)",
                msgpack,
                params=[_param("us", kind="integer")],
            )
        },
        wire.RUN: {
            "get": _op(
                "Store protocol: a run's state (msgpack)",
                msgpack,
                params=[_param("project"), _param("run_id")],
            )
        },
        wire.FILES: {
            "put": _op(
                "Store protocol: store a file by content",
                msgpack,
                body={"type": "string", "format": "binary"},
                secured=True,
            )
        },
        wire.FILES + "/{digest}": {
            "get": _op(
                "Store protocol: a stored file",
                "application/octet-stream",
                params=[_path("digest")],
            )
        },
    }
    paths.update(_dashboard_paths(run, components))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "runlog serve",
            "version": "1",
            "description": "Run and sweep state, metric histories and the live event log of a "
            "runlog store. Write endpoints need 'Authorization: Bearer <token>'.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _dashboard_paths(run: list[dict[str, Any]], components: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's read endpoints (``_dashboard``), added to ``components`` in place."""
    from ._dashboard import AsOf, DashRunPage, DashSweep, Facets
    from ._lifeline import Lifeline

    _, more = msgspec.json.schema_components(
        (AsOf, DashRunPage, DashSweep, Facets, Lifeline), ref_template=_PREFIX + "{name}"
    )
    components.update(more)
    order = {"name": "order", "in": "query", "required": False,
             "schema": {"enum": ["asc", "desc"]}}  # fmt: skip
    table = [
        _param("project"), _param("status"), _param("sweep"), _param("tag"), _param("q"),
        _param("sort"), order, _param("columns"),
        _param("limit", kind="integer", minimum=1, maximum=10_000),
        _param("offset", kind="integer", minimum=0),
    ]  # fmt: skip
    return {
        "/api/dash/runs": {
            "get": _op(
                "Dashboard: one page of the runs table, filtered, searched (q) and sorted by "
                "created, updated, runtime, steps, last_step, status, run_id, name, project, "
                "config.<key> or summary.<key>; columns picks config/summary columns",
                DashRunPage,
                params=table,
            )
        },
        "/api/dash/facets": {
            "get": _op(
                "Dashboard: projects, statuses, sweeps, tags and column keys of the runs",
                Facets,
                params=[_param("project")],
            )
        },
        "/api/dash/runs/{project}/{run_id}/lifeline": {
            "get": _op(
                "Dashboard: a run's incarnations and the events that shaped them",
                Lifeline,
                params=run,
            )
        },
        "/api/dash/runs/{project}/{run_id}/as_of": {
            "get": _op(
                "Dashboard: a run's state at a past log position",
                AsOf,
                params=[*run, _param("position", kind="integer", minimum=0)],
            )
        },
        "/api/dash/sweeps/{sweep_id}": {
            "get": _op(
                "Dashboard: a sweep with its runs' parameters and metric, and the best run",
                DashSweep,
                params=[_path("sweep_id")],
            )
        },
        "/api/dash/explain/{project}/{run_id}": {
            "get": _op(
                "Dashboard: why a run is in its state (runlog explain)",
                "application/json",
                params=run,
            )
        },
        "/api/dash/verify": {
            "get": _op(
                "Dashboard: verify the log's hash chain and the read model", "application/json"
            )
        },
    }
