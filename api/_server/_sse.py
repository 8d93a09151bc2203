"""The live event stream: server-sent events from a position, resumable with ``Last-Event-ID``.

Each client follows the log from its own position: it catches up from the store, then
takes live events from the hub (one subscription on the store for all streams, see
``_fanout``), so a slow client only delays itself and never skips or repeats an event.
Every event's SSE ``id`` is its log position: a client that reconnects with
``Last-Event-ID: p`` continues at ``p + 1``, without a gap or a duplicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from eventstore import RecordedEvent

from ._context import Context, context, event_out, int_param, text_param
from ._errors import Problem
from ._fanout import Follower
from ._schemas import json_encoder

__all__ = ["events"]


async def events(request: Request) -> Response:
    """GET /api/events?from=&stream=&prefix= as ``text/event-stream``.

    ``from`` is the first position sent (default: only events appended from now on);
    ``Last-Event-ID`` overrides it with the position after the last event received.
    ``stream`` keeps one stream's events (repeat it to keep several: the dashboard follows
    every selected run through one connection), ``prefix`` those of streams starting
    with it.
    """
    ctx = context(request)
    last_id = request.headers.get("last-event-id")
    if last_id is not None and last_id.strip():
        try:
            start = int(last_id.strip()) + 1
        except ValueError:
            raise Problem(
                400, f"Last-Event-ID must be the position of an event, got {last_id!r}"
            ) from None
        if start < 1 or start > 1 << 62:
            raise Problem(400, f"Last-Event-ID {last_id!r} is not a position")
    else:
        given = int_param(request, "from", None, minimum=0)
        start = given if given is not None else await ctx.store.head() + 1
    named = [s for s in request.query_params.getlist("stream") if s]
    if any("\x00" in s for s in named):
        raise Problem(400, "query parameter 'stream' must not hold NUL characters")
    stream = frozenset(named) or None
    prefix = text_param(request, "prefix") or None
    return StreamingResponse(
        _stream(ctx, start, stream, prefix),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _wanted(record: RecordedEvent, stream: frozenset[str] | None, prefix: str | None) -> bool:
    if stream is not None and record.stream not in stream:
        return False
    return prefix is None or record.stream.startswith(prefix)


async def _stream(
    ctx: Context, start: int, stream: frozenset[str] | None, prefix: str | None
) -> AsyncIterator[bytes]:
    # A reconnecting EventSource waits `retry` ms; the comment line opens the stream at
    # once so a client knows it is connected before the first event.
    yield b"retry: 1000\n: connected\n\n"
    sent = anyio.current_time()
    follower = Follower(ctx.hub, start)
    try:
        while True:
            if ctx.stopping:
                return
            record: RecordedEvent | None = None
            # Cancelling a wait for the next event loses nothing: the follower moves
            # on only after a page is read. An idle stream sends a comment now and then,
            # which is also how a vanished client is noticed (the write fails).
            with anyio.move_on_after(ctx.keepalive) as scope:
                ctx.waiting.add(scope)
                try:
                    record = await follower.next()
                finally:
                    ctx.waiting.discard(scope)
            if ctx.stopping:
                return
            if record is None or not _wanted(record, stream, prefix):
                if anyio.current_time() - sent >= ctx.keepalive:
                    sent = anyio.current_time()
                    yield b": keepalive\n\n"
                continue
            sent = anyio.current_time()
            data = json_encoder.encode(event_out(record))
            yield b"id: %d\nevent: %s\ndata: %s\n\n" % (
                record.position,
                record.type.encode(),
                data,
            )
    finally:
        follower.close()
