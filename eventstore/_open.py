"""``open_store``: the one entry point from a path or URL to a store."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from ._codec import EventCodec, default_codec
from ._core import StoreOptions
from ._errors import InvalidArgument
from ._inline import InlineProjection
from ._location import parse_location
from ._sqlite import SQLiteStore

if TYPE_CHECKING:
    from ._http import HTTPStore
    from ._postgres import PostgresStore

__all__ = ["Opening", "open_store"]


class _Closeable(Protocol):
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


_R = TypeVar("_R", bound=_Closeable)


class Opening(Generic[_R]):
    """An opening resource: ``await`` it for the resource, or use it as ``async with``,
    which leaves the resource's own context on exit (closing it, finishing a run)."""

    def __init__(self, open_: Callable[[], Awaitable[_R]]) -> None:
        self._open = open_
        self._resource: _R | None = None

    def __await__(self) -> Generator[Any, None, _R]:
        return self._open().__await__()

    async def __aenter__(self) -> _R:
        self._resource = await self._open()
        return self._resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._resource is not None:
            await self._resource.__aexit__(exc_type, exc, tb)


def open_store(
    target: str | os.PathLike[str],
    *,
    create: bool = True,
    lock_timeout: float = 60.0,
    max_event_bytes: int = 1 << 20,
    durability: Literal["normal", "full"] = "normal",
    poll_interval: float = 0.1,
    codec: EventCodec | None = None,
    clock: Callable[[], float] = time.time,
    inline: InlineProjection | None = None,
) -> Opening[SQLiteStore] | Opening[PostgresStore] | Opening[HTTPStore]:
    """Open the event store at ``target``.

    Args:
        target: a file path, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
            ``:memory:`` / ``sqlite://`` for a store that lives as long as the object, or
            ``postgresql://user:password@host:port/dbname`` for a PostgreSQL database, or
            ``http(s)://host:port`` for a store served by ``runlog serve`` (writes send
            the token in ``RUNLOG_TOKEN``).
        create: create the database (and its directory) if it does not exist.
        lock_timeout: seconds an append waits for other writers before ``StoreBusy``;
            on PostgreSQL also how long an operation retries a lost connection before
            ``StoreUnavailable``.
        max_event_bytes: the largest encoded event accepted (``EventTooLarge`` above it).
        durability: ``"normal"`` survives a crash of the process (SQLite WAL,
            ``synchronous=NORMAL``); ``"full"`` also survives power loss, at the cost of
            an fsync per commit. On PostgreSQL, ``"full"`` sets ``synchronous_commit=on``
            for the store's sessions and ``"normal"`` keeps the server's setting.
        poll_interval: how often an idle subscription looks for appends by other processes.
        codec: the event types and upcasters to use (the built-in catalogue by default).
        clock: the wall clock that stamps ``recorded_at``, in seconds since the epoch.
        inline: a projection whose per-stream heads every append keeps current in its
            own transaction (``stream_head`` reads one). Ignored for ``http(s)://``
            stores: the server's store keeps its own.

    Raises:
        NotARunlogDatabase: the file is something else; it is left untouched.
        IncompatibleSchema: the file was written by a newer runlog; it is left untouched.
        UnsupportedStore: the URL names a backend this build does not have.
        StoreUnavailable: the file cannot be opened or created.
    """
    location = parse_location(target)
    if lock_timeout <= 0:
        raise InvalidArgument(f"lock_timeout must be positive, got {lock_timeout}")
    if max_event_bytes <= 0:
        raise InvalidArgument(f"max_event_bytes must be positive, got {max_event_bytes}")
    if durability not in ("normal", "full"):
        raise InvalidArgument(f"durability is 'normal' or 'full', not {durability!r}")
    if poll_interval <= 0:
        raise InvalidArgument(f"poll_interval must be positive, got {poll_interval}")
    if inline is not None and not isinstance(inline, InlineProjection):
        raise InvalidArgument(f"inline={inline!r} is not an inline projection")
    if location.backend == "http":
        # A runlog server (runlog serve): writes send the bearer token in RUNLOG_TOKEN.
        from ._http import HTTPStore

        remote = HTTPStore(
            location.url,
            codec=codec or default_codec,
            poll_interval=poll_interval,
            max_event_bytes=max_event_bytes,
        )
        return Opening(remote._open)
    options = StoreOptions(
        codec=codec or default_codec,
        create=create,
        lock_timeout=lock_timeout,
        max_event_bytes=max_event_bytes,
        durability=durability,
        poll_interval=poll_interval,
        clock=clock,
        inline=inline,
    )
    if location.backend == "postgresql":
        from ._postgres import PostgresStore  # imports asyncpg: only when it is used

        return Opening(PostgresStore(location, options)._open)
    return Opening(SQLiteStore(location, options)._open)
