"""What every handler needs: the open store, its projector, the token; and small helpers
for reading a request and writing a response."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from eventstore import EventStore, RecordedEvent
from projections import Projector

from ._errors import Problem
from ._fanout import Hub
from ._runindex import RunIndex
from ._schemas import EventOut, json_encoder
from ._timetravel import TimeTravel

__all__ = [
    "Context",
    "body_as",
    "read_body",
    "context",
    "event_out",
    "int_param",
    "json_response",
    "path_param",
]

_T = TypeVar("_T")
MAX_PAGE = 10_000
_INT64 = 1 << 62  # positions and steps stay far below what SQLite and Postgres hold


class Context:
    """The server's open resources, set by the lifespan."""

    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        hub: Hub,
        token: str | None,
        keepalive: float,
    ) -> None:
        self.store = store
        self.hub = hub
        self.projector = projector
        self.token = token
        self.keepalive = keepalive
        self.stopping = False
        self.run_index = RunIndex(store, projector)
        """The dashboard's runs table, loaded on its first request."""
        self.time_travel = TimeTravel(store, projector)
        self.facets_cache: dict[str | None, tuple[int, bytes]] = {}
        self.waiting: set[anyio.CancelScope] = set()
        """The waits of open event streams, cancelled when the server stops."""
        self._loop = asyncio.get_running_loop()

    def stop_streams_soon(self) -> None:
        """End every open event stream; safe to call from a signal handler or thread.

        Without it a server stopping would wait for clients that never hang up.
        """
        self._loop.call_soon_threadsafe(self._stop_streams)

    def _stop_streams(self) -> None:
        self.stopping = True
        for scope in list(self.waiting):
            scope.cancel()


def context(request: Request) -> Context:
    """The server's context (the lifespan puts it in the app state)."""
    found = getattr(request.app.state, "runlog", None)
    if not isinstance(found, Context):
        raise Problem(503, "the server is starting or stopping; retry in a moment")
    return found


def json_response(value: object, status: int = 200) -> Response:
    """``value`` encoded by msgspec as a JSON response."""
    return Response(json_encoder.encode(value), status, media_type="application/json")


def int_param(
    request: Request,
    name: str,
    default: int | None,
    *,
    minimum: int = 0,
    maximum: int = _INT64,
) -> int | None:
    """An integer query parameter within ``[minimum, maximum]``, or ``default``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise Problem(
            400, f"query parameter {name!r} must be between {minimum} and {maximum}, got {value}"
        )
    return value


def path_param(request: Request, name: str) -> str:
    """A path parameter, refused if it holds a NUL or is empty."""
    value = str(request.path_params[name])
    if not value or "\x00" in value:
        raise Problem(400, f"{name} must be a non-empty string without NUL characters")
    return value


def text_param(request: Request, name: str) -> str | None:
    """A string query parameter, refused if it holds a NUL."""
    value = request.query_params.get(name)
    if value is not None and "\x00" in value:
        raise Problem(400, f"query parameter {name!r} must not hold NUL characters")
    return value


JSON_BODY = 64 << 20
"""The largest JSON body a write endpoint reads (bodies are read whole)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"the body is too large: {declared} bytes, at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"the body is too large: over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def body_as(request: Request, kind: type[_T], limit: int = JSON_BODY) -> _T:
    """The JSON body decoded into ``kind``; a 400/413/415 naming the problem otherwise."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media not in ("application/json", ""):
        raise Problem(415, f"send the body as application/json, not {media}")
    raw = await read_body(request, limit)
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise Problem(400, f"the request body is invalid: {exc}") from None


def event_out(record: RecordedEvent) -> EventOut:
    """A recorded event as JSON-ready ``EventOut``."""
    data: Any = msgspec.to_builtins(record.event)
    return EventOut(
        position=record.position,
        stream=record.stream,
        version=record.version,
        recorded_at_us=record.recorded_at_us,
        type=record.type,
        data=data,
    )
