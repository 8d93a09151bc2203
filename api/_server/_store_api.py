"""The store protocol over HTTP (msgpack), what ``open_store("http://...")`` talks to.

Events travel as the codec's own bytes, so a remote append stores exactly what a local
one would (bytes stay bytes) and the client's codec, upcasters included, decodes reads.
The server decodes every appended event before storing it: bytes that are not a known
event type are refused (400) and never reach the log.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from eventstore import DecodeError, NewEvent, RecordedEvent, StoredEvent, default_codec, run_stream
from eventstore.wire import MSGPACK
from projections import RunHeads

from ._auth import require_token
from ._context import MAX_PAGE, context, int_param, read_body, text_param
from ._errors import Problem
from ._read import file_by_digest
from ._schemas import AppendIn, AppendOut, RunStateOut, WireRecord, msgpack_encoder

__all__ = [
    "MSGPACK",
    "append",
    "files_get",
    "files_put",
    "positions",
    "read_all",
    "read_stored",
    "read_stream",
    "run_state",
    "stream_info",
    "streams",
]

_MAX_FILE = 1 << 34  # uploads stream to a temporary file, never held in memory
_import_decoder = msgspec.msgpack.Decoder(list[StoredEvent])
_APPEND_BODY = 256 << 20  # a batch of appends is read whole; the library sends ~1000 events
_append_decoder = msgspec.msgpack.Decoder(AppendIn)
_positions_decoder = msgspec.msgpack.Decoder(list[int])


def _reply(value: object, status: int = 200) -> Response:
    return Response(msgpack_encoder.encode(value), status, media_type=MSGPACK)


def _wire(records: list[RecordedEvent]) -> list[WireRecord]:
    encode = default_codec.encode
    return [
        WireRecord(r.position, r.stream, r.version, r.recorded_at_us, encode(r.event))
        for r in records
    ]


async def _msgpack_body(request: Request, decoder: msgspec.msgpack.Decoder[Any], limit: int) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip()
    if media != MSGPACK:
        raise Problem(415, f"send the body as {MSGPACK}, not {media or 'nothing'}")
    raw = await read_body(request, limit)
    try:
        return decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise Problem(400, f"the request body is invalid: {exc}") from None


async def append(request: Request) -> Response:
    """POST /api/store/append (token): ``store.append`` with ids and expected version."""
    ctx = context(request)
    require_token(request, ctx.token)
    body: AppendIn = await _msgpack_body(request, _append_decoder, _APPEND_BODY)
    batch: list[NewEvent] = []
    for index, wire in enumerate(body.events):
        if len(wire.id) != 16:
            raise Problem(400, f"events[{index}].id must be 16 bytes (a UUID)")
        try:
            event = default_codec.decode(wire.data)
        except DecodeError as exc:
            raise Problem(400, f"events[{index}] is not a runlog event: {exc}") from None
        batch.append(NewEvent(event, uuid.UUID(bytes=wire.id)))
    expected: Any = body.expected_version
    result = await ctx.store.append(body.stream, batch, expected)
    return _reply(
        AppendOut(result.stream, list(result.positions), result.version, result.deduplicated)
    )


async def import_events(request: Request) -> Response:
    """POST /api/store/import (token): ``store.import_events`` of a msgpack list of events."""
    ctx = context(request)
    require_token(request, ctx.token)
    events: list[StoredEvent] = await _msgpack_body(request, _import_decoder, _APPEND_BODY)
    result = await ctx.store.import_events(events)
    return _reply(result)


def _limit(request: Request) -> int:
    limit = int_param(request, "limit", 1000, minimum=1, maximum=MAX_PAGE)
    assert limit is not None
    return limit


def _range(request: Request) -> tuple[int, int]:
    """``from``, ``to`` and ``limit`` as the first and last position of one page."""
    start = max(int_param(request, "from", 1) or 1, 1)
    stop = int_param(request, "to", None)
    last = start + _limit(request) - 1
    return start, last if stop is None else min(last, stop)


async def read_all(request: Request) -> Response:
    """GET /api/store/events?from=&to=&limit=: a page of the log."""
    start, last = _range(request)
    records: list[RecordedEvent] = []
    if last >= start:
        async for page in context(request).store.read_all_pages(
            start, to_position=last, size=last - start + 1
        ):
            records += page
    return _reply(_wire(records))


async def read_stored(request: Request) -> Response:
    """GET /api/store/stored?from=&to=&limit=: a page of the log as stored (bytes, hashes)."""
    start, last = _range(request)
    stored: list[StoredEvent] = []
    if last >= start:
        async for page in context(request).store.read_stored_pages(
            start, to_position=last, size=last - start + 1
        ):
            stored += page
    return _reply(stored)


async def read_stream(request: Request) -> Response:
    """GET /api/store/stream?name=&from_version=&limit=: a page of one stream."""
    ctx = context(request)
    name = text_param(request, "name")
    if not name:
        raise Problem(400, "query parameter 'name' (the stream) is required")
    start = int_param(request, "from_version", 0)
    assert start is not None
    records = [r async for r in ctx.store.read_stream(name, start, limit=_limit(request))]
    return _reply(_wire(records))


async def positions(request: Request) -> Response:
    """POST /api/store/positions: the events at the positions given (a msgpack list)."""
    ctx = context(request)
    wanted: list[int] = await _msgpack_body(request, _positions_decoder, 1 << 20)
    if len(wanted) > MAX_PAGE:
        raise Problem(400, f"ask for at most {MAX_PAGE} positions at a time")
    return _reply(_wire(await ctx.store.read_positions(wanted)))


async def stream_info(request: Request) -> Response:
    """GET /api/store/info?name=: ``StreamInfo`` or nil."""
    name = text_param(request, "name")
    if not name:
        raise Problem(400, "query parameter 'name' (the stream) is required")
    return _reply(await context(request).store.stream_info(name))


async def streams(request: Request) -> Response:
    """GET /api/store/streams?prefix=: every stream starting with ``prefix``."""
    prefix = text_param(request, "prefix") or ""
    return _reply(await context(request).store.streams(prefix))


async def position_at(request: Request) -> Response:
    """GET /api/store/position_at?us=: the last position recorded at or before ``us``."""
    us = int_param(request, "us", None, minimum=-(1 << 62))
    if us is None:
        raise Problem(400, "query parameter 'us' (microseconds since the epoch) is required")
    return _reply(await context(request).store.position_at(us))


async def run_state(request: Request) -> Response:
    """GET /api/store/run?project=&run_id=: the run's state and the position it reflects."""
    ctx = context(request)
    project, run_id = text_param(request, "project"), text_param(request, "run_id")
    if not project or not run_id:
        raise Problem(400, "query parameters 'project' and 'run_id' are required")
    stream = run_stream(project, run_id)
    if getattr(ctx.store, "inline", None) is not None:
        # The run's head, kept by every append: current, whatever the read model's lag.
        head = await ctx.store.stream_head(stream)  # type: ignore[attr-defined]
        if head is None:
            return _reply(RunStateOut(None, 0, None))
        state = RunHeads.decode(head.state)
        return _reply(RunStateOut(state, head.info.last_position, head.info))
    for _ in range(100):
        state = await ctx.projector.run(project, run_id)
        info = await ctx.store.stream_info(stream)
        # Answer with a state that reflects the stream's last event, so the client's
        # conditional append (expecting info.version) decides on current state.
        if info is None or info.last_position <= ctx.projector.position:
            break
    return _reply(RunStateOut(state, ctx.projector.position, info))


async def files_put(request: Request) -> Response:
    """PUT /api/store/files (token): store the body's bytes by content; returns [digest, size]."""
    ctx = context(request)
    require_token(request, ctx.token)
    folder = await anyio.to_thread.run_sync(tempfile.mkdtemp)
    target = Path(folder) / "upload"
    try:
        size = 0
        async with await anyio.open_file(target, "wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > _MAX_FILE:
                    raise Problem(413, f"files are at most {_MAX_FILE} bytes")
                await file.write(chunk)
        digest, stored = await ctx.store.put_file(target)
    finally:
        await anyio.to_thread.run_sync(_cleanup, folder)
    return _reply([digest, stored])


def _cleanup(folder: str) -> None:
    for path in Path(folder).iterdir():
        os.unlink(path)
    os.rmdir(folder)


async def files_get(request: Request) -> Response:
    """GET /api/store/files/{digest}: the stored bytes."""
    digest = str(request.path_params["digest"])
    if not digest or "\x00" in digest:
        raise Problem(400, "the digest must be a non-empty string")
    return await file_by_digest(request, digest, "file")
