"""The store protocol: what every backend (SQLite, PostgreSQL, ...) provides.

The conformance suite in ``tests/conformance`` is this protocol's executable
specification; a backend is done when it passes that suite unchanged.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self, TypeVar, runtime_checkable

from ._events import Event
from ._hosting import ReadModelFactory
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

__all__ = ["EventStore"]

_M = TypeVar("_M")


@runtime_checkable
class EventStore(Protocol):
    """An append-only, hash-chained event log with streams and global positions."""

    @property
    def url(self) -> str:
        """Where the store lives, as a URL (``sqlite:///...``, ``sqlite://`` for memory)."""
        ...

    async def append(
        self,
        stream: str,
        events: Sequence[Event | NewEvent],
        expected_version: ExpectedVersion = "any",
    ) -> AppendResult:
        """Append ``events`` to ``stream`` atomically, after checking ``expected_version``.

        Raises:
            WrongExpectedVersion: the stream is not at the expected version.
            EventIdConflict: an event id is already stored with other content.
            InvalidEvent: an event cannot be stored (not an event type, unserialisable, too large).
            StoreBusy: other writers held the lock for longer than ``lock_timeout``.
        """
        ...

    async def import_events(self, events: Sequence[StoredEvent]) -> ImportResult:
        """Append events exported from another log, keeping ids, bytes, versions and times;
        events whose ids are already stored with the same content are skipped.

        Raises:
            EventIdConflict: an event id is stored here with other content.
            WrongExpectedVersion: a stream here is not one version behind an event.
        """
        ...

    def read_stream(
        self, stream: str, from_version: int = 0, *, limit: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """The events of ``stream`` from ``from_version`` on, in version order."""
        ...

    def read_all(
        self, from_position: int = 0, *, to_position: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` to ``to_position`` (inclusive), in bounded memory."""
        ...

    def read_stored(
        self, from_position: int = 0, *, to_position: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Like ``read_all`` but undecoded, with each event's stored bytes and hash."""
        ...

    def read_all_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """``read_all`` in lists of up to ``size`` events, for bulk consumers (replays, audits)."""
        ...

    def read_stored_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = 1000
    ) -> AsyncIterator[list[StoredEvent]]:
        """``read_stored`` in lists of up to ``size`` events, for bulk consumers."""
        ...

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it holds no event."""
        ...

    async def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's bytes once by content; return its digest and size."""
        ...

    async def get_file(self, digest: str, path: str | os.PathLike[str]) -> int:
        """Write the stored file with ``digest`` to ``path``; return its size."""
        ...

    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at ``positions``, in the order given."""
        ...

    async def read_events_at(self, positions: Sequence[int]) -> tuple[list[int], list[Event]]:
        """``recorded_at_us`` and the event at each of ``positions``, in the order given,
        as two lists."""
        ...

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us`` (0 if none)."""
        ...

    def subscribe(
        self, from_position: int = 0, *, poll_interval: float | None = None
    ) -> Subscription:
        """Catch up from ``from_position``, then follow new appends from any process."""
        ...

    async def head(self) -> int:
        """The position of the last event, 0 when the log is empty."""
        ...

    async def stream_version(self, stream: str) -> int:
        """The version of ``stream``'s last event, -1 when it has none."""
        ...

    async def streams(self, prefix: str = "") -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        ...

    def host_read_model(self, factory: ReadModelFactory[_M]) -> _M:
        """The read model this store can keep beside its log: the store calls the one
        method of ``factory`` that fits it (a file, a database, a server, memory)."""
        ...

    async def aclose(self) -> None:
        """Close the store; idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
