"""Reading several streams as one: their events in log (position) order."""

from __future__ import annotations

import heapq
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping

from ._protocol import EventStore
from ._types import RecordedEvent

__all__ = ["read_streams"]


async def read_streams(
    store: EventStore,
    streams: Iterable[str] | Mapping[str, int],
    *,
    after: int = 0,
    until: int | None = None,
) -> AsyncIterator[RecordedEvent]:
    """The events of ``streams`` in position order: those after position ``after`` and
    up to ``until`` (the end of the log if None). A mapping names the version each
    stream is read from. Each stream is read a page at a time, so memory stays bounded
    however long the streams are; leaving early closes every stream's read.
    """
    start = streams if isinstance(streams, Mapping) else dict.fromkeys(streams, 0)

    async def window(stream: str) -> AsyncGenerator[RecordedEvent, None]:
        async for record in store.read_stream(stream, start[stream]):
            if until is not None and record.position > until:
                return
            if record.position > after:
                yield record

    reads = [window(stream) for stream in start]
    try:
        heads: list[tuple[int, int, RecordedEvent]] = []
        for index, read in enumerate(reads):
            first = await anext(read, None)
            if first is not None:
                heads.append((first.position, index, first))
        heapq.heapify(heads)
        while heads:
            _, index, record = heads[0]
            yield record
            following = await anext(reads[index], None)
            if following is None:
                heapq.heappop(heads)
            else:
                heapq.heapreplace(heads, (following.position, index, following))
    finally:
        for read in reads:
            await read.aclose()
