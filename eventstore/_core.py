"""The store written once: lifetime, argument checks, batch encoding, paging, files.

``StoreCore`` implements the whole ``EventStore`` protocol over a few hooks that a
backend supplies: how to connect and disconnect, how to run one of its query functions
on a reading or a writing connection (``_read``, ``_write``), the query functions
themselves (``_queries``: SQL and row handling only), and, if it can, how it hears of
appends by other processes (``_listen``). SQLite and PostgreSQL differ in nothing else.
"""

from __future__ import annotations

import asyncio
import os
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar, cast

import anyio

from ._batch import encode_batch
from ._checks import (
    check_expected,
    check_positions,
    check_range,
    check_size,
    check_stream,
    check_stream_window,
)
from ._codec import EventCodec
from ._errors import InvalidArgument, StoreClosed, StoreError
from ._events import Event
from ._files import hash_file
from ._import import check_imported
from ._inline import InlineProjection, StoredHead, StreamHead
from ._location import StoreLocation
from ._store_base import StoreBase
from ._subscription import Subscription
from ._types import (
    AppendResult,
    ExpectedVersion,
    ImportResult,
    NewEvent,
    RecordedEvent,
    StoredEvent,
    StreamInfo,
)

__all__ = ["PAGE", "Queries", "StoreCore", "StoreOptions"]

_F = TypeVar("_F")
PAGE = 1000
"""Events per page of ``read_stream``, ``read_all`` and ``read_stored`` by default."""


def _forget(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a read-ahead nobody will use, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


class StoreOptions:
    """What ``open_store`` passes to every backend."""

    __slots__ = (
        "clock",
        "codec",
        "create",
        "durability",
        "inline",
        "lock_timeout",
        "max_event_bytes",
        "poll_interval",
    )

    def __init__(
        self,
        *,
        codec: EventCodec,
        create: bool,
        lock_timeout: float,
        max_event_bytes: int,
        durability: str,
        poll_interval: float,
        clock: Callable[[], float] = time.time,
        inline: InlineProjection | None = None,
    ) -> None:
        self.inline = inline
        self.codec = codec
        self.create = create
        self.lock_timeout = lock_timeout
        self.max_event_bytes = max_event_bytes
        self.durability = durability
        self.poll_interval = poll_interval
        self.clock = clock


class Queries:
    """The base of a backend's query functions: the codec, the store's name for
    messages, and the stream names by id, cached (a stream's name never changes)."""

    def __init__(self, codec: EventCodec, where: str) -> None:
        self._codec = codec
        self._where = where
        self._names: dict[int, str] = {}


class StoreCore(StoreBase):
    """An event store over one backend's connections (see the module docstring)."""

    _queries: Any
    """The backend's query functions: each takes the connection first (see ``_read``)."""

    def __init__(
        self, location: StoreLocation, where: str, options: StoreOptions, shown: str | None = None
    ) -> None:
        super().__init__(shown or location.url)
        self._location = location
        self._where = where
        self._options = options
        self._codec = options.codec
        self._lock_timeout = options.lock_timeout
        self._max_event_bytes = options.max_event_bytes
        self._poll_interval = options.poll_interval
        self._clock = options.clock

    # --- what a backend supplies --------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Open the connections and make sure the schema is there."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close whatever ``_connect`` opened, even after it failed half-way."""

    @abstractmethod
    def _read(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run the query function ``fn(connection, *args)`` on a reading connection."""

    @abstractmethod
    def _write(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run ``fn(connection, *args)`` on the connection that writes."""

    # --- lifetime -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where the store lives, as a URL."""
        return self._location.url

    @property
    def path(self) -> Path | None:
        """The database file, None for an in-memory store or a server."""
        return self._location.path

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded event this store accepts (``EventTooLarge`` above it)."""
        return self._max_event_bytes

    @property
    def where(self) -> str:
        """The store as error messages name it (never with a password)."""
        return self._where

    async def _open(self) -> Self:
        if self._state != "new":
            raise StoreError("a store object is opened once; call open_store() again")
        try:
            await self._connect()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._disconnect()
            raise
        self._state = "open"
        if self._options.inline is not None:
            try:
                await self.keep_inline(self._options.inline)
            except BaseException:
                await self.aclose()
                raise
        return self

    async def aclose(self) -> None:
        """Close the connections; idempotent. Waits for operations already submitted."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._wake()
        with anyio.CancelScope(shield=True):
            await self._disconnect()

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreClosed(
                f"the store {self._shown} is "
                f"{'closed' if self._state == 'closed' else 'not open'}; "
                "open it with 'async with open_store(...)'"
            )

    # --- writing ------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event | NewEvent],
        expected_version: ExpectedVersion = "any",
    ) -> AppendResult:
        """Append ``events`` to ``stream`` atomically, after checking ``expected_version``.

        Raises:
            WrongExpectedVersion: the stream is not at the expected version.
            EventIdConflict: an event id is already stored with other content, or only
                part of a retried batch is stored.
            InvalidEvent: an event cannot be stored (not an event type, unserialisable,
                larger than ``max_event_bytes``).
            InvalidStreamName: ``stream`` is not a valid stream name.
            StoreBusy: other writers held the lock for longer than ``lock_timeout``.
            StoreUnavailable: (PostgreSQL) the server could not be reached for
                ``lock_timeout`` seconds; the append may or may not have been stored, so
                retry it with the same ids.
        """
        check_stream(stream)
        expected = check_expected(expected_version)
        self._check_open()
        ids, datas = encode_batch(self._codec, events, self._max_event_bytes)
        inline = self._queries.inline
        objects: list[Event] | None = None
        if inline is not None and inline.applies_to(stream):
            # The head is folded from the events as given, not decoded again: they
            # encoded to the stored bytes, so they are the same events.
            objects = [e.event if type(e) is NewEvent else e for e in events]  # type: ignore[misc]
        result = cast(
            AppendResult,
            await self._write(self._queries.append, stream, ids, datas, expected, objects),
        )
        if result.positions and not result.deduplicated:
            self._wake()
        return result

    async def import_events(self, events: Sequence[StoredEvent]) -> ImportResult:
        """Append events read from another log, keeping their ids, bytes, versions and times.

        This is how an exported log is restored or shipped to another store exactly
        once: an event whose id is already stored (with the same stream, version and
        bytes) is skipped. Each new event goes at the end of this log with its original
        stream version, so the target stream must be exactly one version behind it.
        ``recorded_at`` is kept unless it is older than this log's last event, where it
        is raised to that time (times never decrease along positions). The batch is one
        transaction. Into an empty store, a whole exported log gets back its positions
        and therefore its hashes.

        Raises:
            EventIdConflict: an event id is stored here with other content.
            WrongExpectedVersion: a stream here is not one version behind the event.
            EventTooLarge: an event is over this store's ``max_event_bytes``.
        """
        rows = check_imported(events, self._max_event_bytes)
        result = cast(ImportResult, await self._write(self._queries.import_rows, rows))
        if result.added:
            self._wake()
        return result

    # --- inline projection (see _inline.py) ---------------------------------------------

    @property
    def inline(self) -> InlineProjection | None:
        """The projection whose heads this store's appends keep current, if any."""
        return cast(InlineProjection | None, self._queries.inline)

    async def keep_inline(self, projection: InlineProjection) -> None:
        """Keep ``projection``'s heads current from now on, in every append's transaction.

        Heads stored under another projection name are dropped first (they are
        recomputed as streams are read or appended to, or by ``rebuild_heads``).
        Idempotent for the projection already kept.

        Raises:
            InvalidArgument: the store already keeps another projection.
        """
        if not isinstance(projection, InlineProjection):
            raise InvalidArgument(
                f"{projection!r} is not an inline projection (name, applies_to, fold)"
            )
        current = self.inline
        if current is not None:
            if current.name != projection.name:
                raise InvalidArgument(
                    f"{self._shown} already keeps the inline projection {current.name!r}; "
                    "open the store again to keep another"
                )
            return
        self._check_open()
        await self._write(self._queries.adopt, projection)

    async def stream_head(self, stream: str) -> StreamHead | None:
        """The stream's head: the inline projection's fold of all its events, read in
        one snapshot (None if the stream has no event).

        One indexed row when appends kept the head current; events appended without
        the projection are read and folded in first.

        Raises:
            InvalidArgument: the store keeps no inline projection, or none for ``stream``.
        """
        check_stream(stream)
        inline = self._inline_for(stream)
        return cast(StreamHead | None, await self._query(self._queries.stream_head, inline, stream))

    async def stored_heads(self) -> list[StoredHead]:
        """Every head as stored (not caught up), in stream order: for audits."""
        self._check_open()
        return cast(list[StoredHead], await self._query(self._queries.stored_heads))

    async def rebuild_heads(self, *, page: int = 10_000) -> int:
        """Recompute every head from the log (derived data: this is how damage to the
        ``stream_heads`` table is repaired); returns how many heads were written.

        The log is read page by page in one pass; each head is written with the events
        appended since the pass read its stream folded in, so writers may go on.
        """
        inline = self._inline_for(None)
        heads: dict[str, tuple[int, bytes]] = {}
        async for records in self.read_all_pages(size=check_size(page)):
            by_stream: dict[str, list[RecordedEvent]] = {}
            for record in records:
                if record.stream in by_stream:
                    by_stream[record.stream].append(record)
                elif inline.applies_to(record.stream):
                    by_stream[record.stream] = [record]
            for stream, events in by_stream.items():
                before = heads.get(stream)
                state = inline.fold(stream, before[1] if before else None, events)
                heads[stream] = (events[-1].version, state)
        rows = [(stream, version, state) for stream, (version, state) in heads.items()]
        for start in range(0, len(rows), 1000):
            await self._write(self._queries.put_heads, inline, rows[start : start + 1000])
        return len(rows)

    def _inline_for(self, stream: str | None) -> InlineProjection:
        self._check_open()
        inline = self.inline
        if inline is None:
            raise InvalidArgument(
                f"{self._shown} keeps no inline projection; open it with "
                "open_store(..., inline=projection) or call keep_inline(projection)"
            )
        if stream is not None and not inline.applies_to(stream):
            raise InvalidArgument(
                f"the inline projection {inline.name!r} keeps no head for {stream!r}"
            )
        return inline

    async def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's bytes once by content; return its digest and size.

        The file is read twice (to hash, then to store), a chunk at a time, so its size
        is not limited by memory. Storing content already stored writes nothing.

        Raises:
            InvalidArgument: the file cannot be read, or changed while it was stored.
        """
        source = Path(path)
        digest, size = await anyio.to_thread.run_sync(hash_file, source)
        await self._write(self._queries.put_file, source, digest, size)
        return digest, size

    async def get_file(self, digest: str, path: str | os.PathLike[str]) -> int:
        """Write the stored file with ``digest`` to ``path`` (atomically); return its size.

        Raises:
            InvalidArgument: nothing is stored under ``digest``.
            CorruptStore: the stored bytes do not match the digest.
        """
        return cast(int, await self._read(self._queries.get_file, digest, Path(path)))

    # --- reading ------------------------------------------------------------------------

    async def _query(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._check_open()
        return await self._read(fn, *args)

    async def head(self) -> int:
        """The position of the last event, 0 when the log is empty."""
        return cast(int, await self._query(self._queries.head))

    async def stream_version(self, stream: str) -> int:
        """The version of ``stream``'s last event, -1 when it has none."""
        check_stream(stream)
        return cast(int, await self._query(self._queries.stream_version, stream))

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it holds no event."""
        check_stream(stream)
        return cast(StreamInfo | None, await self._query(self._queries.stream_info, stream))

    async def streams(self, prefix: str = "") -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        return cast(list[StreamInfo], await self._query(self._queries.streams, prefix))

    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at ``positions``, in the order given; a missing position raises.

        Raises:
            InvalidArgument: a position is below 1 or beyond the head.
        """
        wanted = check_positions(positions)
        return cast(list[RecordedEvent], await self._query(self._queries.at_positions, wanted))

    async def read_events_at(self, positions: Sequence[int]) -> tuple[list[int], list[Event]]:
        """``recorded_at_us`` and the event at each of ``positions``, in the order given,
        as two lists (columns).

        Cheaper per event than ``read_positions``: a dense stretch of positions is one
        range scan, and no object is built per event beyond the event itself.

        Raises:
            InvalidArgument: a position is below 1 or beyond the head.
        """
        wanted = check_positions(positions)
        return cast(
            tuple[list[int], list[Event]], await self._query(self._queries.events_at, wanted)
        )

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us`` (0 if none was).

        ``recorded_at`` never decreases along positions, so this is where the log stood
        at that time.
        """
        return cast(int, await self._query(self._queries.position_at, recorded_at_us))

    async def read_stream(
        self, stream: str, from_version: int = 0, *, limit: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """The events of ``stream`` from ``from_version`` on, in version order.

        A stream that does not exist yields nothing.
        """
        check_stream_window(stream, from_version, limit)
        remaining = limit
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            page: list[RecordedEvent] = await self._query(
                self._queries.stream_page, stream, from_version, size
            )
            for event in page:
                yield event
            if len(page) < size:
                return
            from_version = page[-1].version + 1
            if remaining is not None:
                remaining -= len(page)

    def read_all_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = PAGE
    ) -> AsyncIterator[list[RecordedEvent]]:
        """``read_all`` a page of up to ``size`` events at a time, for bulk consumers."""
        return self._pages(self._queries.page, from_position, to_position, size)

    def read_stored_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = PAGE
    ) -> AsyncIterator[list[StoredEvent]]:
        """``read_stored`` a page of up to ``size`` events at a time, for bulk consumers."""
        return self._pages(self._queries.stored_page, from_position, to_position, size)

    async def _pages(
        self, fn: Callable[..., Any], from_position: int, to_position: int | None, size: int
    ) -> AsyncIterator[list[Any]]:
        position, last = check_range(from_position, to_position)
        size = check_size(size)
        page: list[Any] = await self._query(fn, position, size, last)
        ahead: asyncio.Future[list[Any]] | None = None
        try:
            while len(page) == size and (last is None or page[-1].position < last):
                # Read ahead: the store's thread (or the server) fetches the next page
                # while the consumer handles this one, so fetching and folding overlap.
                ahead = asyncio.ensure_future(self._query(fn, page[-1].position + 1, size, last))
                yield page
                page = await ahead
                ahead = None
            if page:
                yield page
        finally:
            if ahead is not None:  # the consumer stopped early: the page is not wanted
                # Not awaited: this may run as the generator is garbage-collected.
                ahead.cancel()
                ahead.add_done_callback(_forget)

    def subscribe(
        self, from_position: int = 0, *, poll_interval: float | None = None
    ) -> Subscription:
        """Catch up from ``from_position``, then follow new appends from any process.

        Appends through this store object wake the subscription at once; appends by
        other processes are seen when the backend learns of them, and in any case
        within ``poll_interval`` seconds.
        """
        self._check_open()
        return Subscription(self, from_position, poll_interval or self._poll_interval)

    async def _read_page(self, from_position: int, limit: int) -> list[RecordedEvent]:
        return cast(
            list[RecordedEvent], await self._query(self._queries.page, from_position, limit, None)
        )
