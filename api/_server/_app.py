"""The app factory: routes, error handlers, and the lifespan that owns the store, the
projector and the watchdog."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventstore import EventStore, RunLogError, wire
from projections import Projector, open_projector

from .._library._stores import runlog_store
from .._sweeping._sweeps import reap
from . import _dashboard, _read, _readmodel_api, _sse, _store_api, _write
from ._context import Context
from ._errors import (
    Problem,
    http_exception_handler,
    problem_handler,
    runlog_error_handler,
    validation_error_handler,
)
from ._fanout import Hub
from ._openapi import openapi

__all__ = ["create_app"]

log = logging.getLogger("runlog.server")


def create_app(
    store: EventStore | str | os.PathLike[str],
    *,
    token: str | None = None,
    reap_interval: float | None = 60.0,
    reap_timeout: float = 300.0,
    keepalive: float = 15.0,
) -> Starlette:
    """The ``runlog serve`` ASGI app over ``store``.

    Args:
        store: an open store (left open), or a path/URL opened for the app's lifetime.
        token: the bearer token of the write endpoints; None refuses every write.
        reap_interval: seconds between watchdog rounds (``api.reap``); None turns it off.
        reap_timeout: seconds of silence after which the watchdog expires a run.
        keepalive: seconds between SSE comments on an idle stream.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if isinstance(store, EventStore):
                opened = store
            else:
                opened = await stack.enter_async_context(runlog_store(store))
            projector = await stack.enter_async_context(open_projector(opened))
            await projector.catch_up()
            hub = Hub(opened)
            try:
                async with anyio.create_task_group() as group:
                    await group.start(hub.run)
                    app.state.runlog = Context(opened, projector, hub, token, keepalive)
                    group.start_soon(_keep_current, projector)
                    if reap_interval is not None:
                        group.start_soon(_watchdog, opened, reap_interval, reap_timeout)
                    yield
                    group.cancel_scope.cancel()
            finally:
                app.state.runlog = None

    routes = [
        Route("/", _dashboard.page, methods=["GET"]),
        Route("/static/{name}", _dashboard.static, methods=["GET"]),
        Route("/api/dash/runs", _dashboard.dash_runs, methods=["GET"]),
        Route("/api/dash/facets", _dashboard.facets, methods=["GET"]),
        Route("/api/dash/runs/{project}/{run_id}/lifeline", _dashboard.lifeline, methods=["GET"]),
        Route("/api/dash/runs/{project}/{run_id}/as_of", _dashboard.as_of, methods=["GET"]),
        Route("/api/dash/sweeps/{sweep_id}", _dashboard.dash_sweep, methods=["GET"]),
        Route("/api/dash/explain/{project}/{run_id}", _dashboard.explain_run, methods=["GET"]),
        Route("/api/dash/verify", _dashboard.verify_store, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/api/health", _read.health, methods=["GET"]),
        Route(wire.HEAD, _read.head, methods=["GET"]),
        Route("/api/runs", _read.list_runs, methods=["GET"]),
        Route("/api/runs", _write.init_run, methods=["POST"]),
        Route("/api/runs/{project}/{run_id}", _read.get_run, methods=["GET"]),
        Route("/api/runs/{project}/{run_id}/history", _read.history, methods=["GET"]),
        Route("/api/runs/{project}/{run_id}/timeline", _read.timeline, methods=["GET"]),
        Route("/api/runs/{project}/{run_id}/files", _read.list_files, methods=["GET"]),
        Route("/api/runs/{project}/{run_id}/files/{name}", _read.get_file, methods=["GET"]),
        Route("/api/runs/{project}/{run_id}/log", _write.log_steps, methods=["POST"]),
        Route("/api/runs/{project}/{run_id}/finish", _write.finish_run, methods=["POST"]),
        Route("/api/sweeps", _read.list_sweeps, methods=["GET"]),
        Route("/api/sweeps", _write.new_sweep, methods=["POST"]),
        Route("/api/sweeps/{sweep_id}", _read.one_sweep, methods=["GET"]),
        Route("/api/sweeps/{sweep_id}/{action}", _write.control_sweep, methods=["POST"]),
        Route("/api/log", _read.log_page, methods=["GET"]),
        Route("/api/events", _sse.events, methods=["GET"]),
        Route(wire.APPEND, _store_api.append, methods=["POST"]),
        Route(wire.IMPORT, _store_api.import_events, methods=["POST"]),
        Route(wire.READ_MODEL + "/position", _readmodel_api.position, methods=["GET"]),
        Route(wire.READ_MODEL + "/catch_up", _readmodel_api.catch_up, methods=["POST"]),
        Route(wire.READ_MODEL + "/run", _readmodel_api.run, methods=["GET"]),
        Route(wire.READ_MODEL + "/runs", _readmodel_api.runs, methods=["GET"]),
        Route(wire.READ_MODEL + "/line", _readmodel_api.run_line, methods=["GET"]),
        Route(wire.READ_MODEL + "/copy", _readmodel_api.run_copy, methods=["GET"]),
        Route(wire.READ_MODEL + "/sweep", _readmodel_api.sweep, methods=["GET"]),
        Route(wire.READ_MODEL + "/sweeps", _readmodel_api.sweeps, methods=["GET"]),
        Route(wire.READ_MODEL + "/history", _readmodel_api.history, methods=["GET"]),
        Route(wire.READ_MODEL + "/snapshot", _readmodel_api.snapshot, methods=["GET"]),
        Route(wire.EVENTS, _store_api.read_all, methods=["GET"]),
        Route(wire.STORED, _store_api.read_stored, methods=["GET"]),
        Route(wire.STREAM, _store_api.read_stream, methods=["GET"]),
        Route(wire.POSITIONS, _store_api.positions, methods=["POST"]),
        Route(wire.INFO, _store_api.stream_info, methods=["GET"]),
        Route(wire.STREAMS, _store_api.streams, methods=["GET"]),
        Route(wire.POSITION_AT, _store_api.position_at, methods=["GET"]),
        Route(wire.RUN, _store_api.run_state, methods=["GET"]),
        Route(wire.FILES, _store_api.files_put, methods=["PUT"]),
        Route(wire.FILES + "/{digest}", _store_api.files_get, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Problem: problem_handler,
            RunLogError: runlog_error_handler,
            HTTPException: http_exception_handler,
            msgspec.ValidationError: validation_error_handler,
            msgspec.DecodeError: validation_error_handler,
        },
    )


async def _keep_current(projector: Projector, interval: float = 0.5) -> None:
    """Fold new events into the read model in the background.

    Every query catches up first anyway (read-your-writes); doing it here as well keeps
    that catch-up small, so a query after a burst of logging (a remote ``init``, a
    dashboard refresh) does not fold the whole burst while the client waits.
    """
    while True:
        try:
            await projector.catch_up()
        except RunLogError as exc:
            log.warning("folding new events failed, retrying: %s", exc)
        await anyio.sleep(interval)


async def _watchdog(store: EventStore, interval: float, silence_s: float) -> None:
    """``api.reap`` every ``interval`` seconds; a failed round is logged and retried."""
    while True:
        try:
            for decision in await reap(store=store, timeout_s=silence_s):
                log.info("watchdog: %s", decision)
        except RunLogError as exc:
            log.warning("watchdog round failed, retrying in %.0f s: %s", interval, exc)
        await anyio.sleep(interval)


_OPENAPI: bytes | None = None


async def _openapi(request: Request) -> Response:
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = msgspec.json.encode(openapi())
    return Response(_OPENAPI, media_type="application/json")
