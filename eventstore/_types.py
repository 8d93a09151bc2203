"""The values the store hands out and takes in, besides the events themselves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec

from ._chain import chain_hash
from ._codec import new_event_id
from ._events import Event

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "AppendResult",
    "ExpectedVersion",
    "ImportResult",
    "NewEvent",
    "RecordedEvent",
    "StoredEvent",
    "StreamInfo",
]

ANY: Literal["any"] = "any"
"""Append whatever the stream's version is."""
NO_STREAM: Literal["no_stream"] = "no_stream"
"""Append only if the stream holds no event yet."""
EXISTS: Literal["exists"] = "exists"
"""Append only if the stream holds at least one event."""

ExpectedVersion = int | Literal["any", "no_stream", "exists"]
"""What ``append`` checks first: ``ANY``, ``NO_STREAM``, ``EXISTS`` or the exact version
of the stream's last event (``-1`` is the same as ``NO_STREAM``)."""


class NewEvent(msgspec.Struct, frozen=True):
    """An event with the id that makes its append idempotent.

    Appending a bare event gives it a fresh id, so a retry after an unclear failure
    (a timeout, a cancelled call) could store it twice. Wrapping it keeps the id:
    re-appending the same ``NewEvent`` returns the positions stored the first time.
    """

    event: Event
    event_id: uuid.UUID | bytes = msgspec.field(default_factory=new_event_id)
    """A UUID, or its 16 bytes (cheaper to make in bulk)."""


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as read back: where it sits in the log, when it was recorded, what it says.

    Replays read millions of these, so it carries only what folds need; the event's id
    and hash are in ``StoredEvent`` (``read_stored``).
    """

    position: int
    """Global position: 1, 2, 3, ... gap-free in commit order."""
    stream: str
    version: int
    """Version within the stream: 0, 1, 2, ..."""
    recorded_at_us: int
    """When the store committed it, in microseconds since the Unix epoch (UTC).
    Never decreases along positions."""
    event: Event

    @property
    def recorded_at(self) -> datetime:
        """``recorded_at_us`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.recorded_at_us / 1_000_000, tz=UTC)

    @property
    def type(self) -> str:
        """The event's type name."""
        return type(self.event).__name__


class StoredEvent(msgspec.Struct, frozen=True, gc=False):
    """An event exactly as the store holds it, undecoded: for audits, export and verification."""

    position: int
    stream: str
    version: int
    event_id_bytes: bytes
    recorded_at_us: int
    data: bytes
    """The msgpack payload, the bytes the hash covers."""
    hash: bytes
    """BLAKE2b-256 over the previous event's hash and this event (see ``chain_hash``)."""

    @property
    def event_id(self) -> uuid.UUID:
        """The event's id."""
        return uuid.UUID(bytes=self.event_id_bytes)

    @property
    def recorded_at(self) -> datetime:
        """``recorded_at_us`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.recorded_at_us / 1_000_000, tz=UTC)

    def expected_hash(self, previous: bytes) -> bytes:
        """The hash this event must have if ``previous`` is the hash of the event before it."""
        return chain_hash(
            previous,
            self.position,
            self.version,
            self.recorded_at_us,
            self.event_id_bytes,
            self.stream.encode(),
            self.data,
        )


class AppendResult(msgspec.Struct, frozen=True):
    """What an ``append`` wrote, or, for an idempotent retry, what was written before."""

    stream: str
    positions: tuple[int, ...]
    """The global positions of the appended events, in the order given."""
    version: int
    """The stream's version after the append (-1 if it still has no event)."""
    deduplicated: bool = False
    """True when every event was already stored and nothing new was written."""

    @property
    def first_position(self) -> int | None:
        """Position of the first appended event, None for an empty append."""
        return self.positions[0] if self.positions else None

    @property
    def last_position(self) -> int | None:
        """Position of the last appended event, None for an empty append."""
        return self.positions[-1] if self.positions else None


class ImportResult(msgspec.Struct, frozen=True):
    """What ``import_events`` did with a batch."""

    added: int
    """Events appended."""
    skipped: int
    """Events already stored (same id and content), left as they were."""
    times_raised: int
    """Events whose ``recorded_at`` was raised to keep times non-decreasing."""
    head: int
    """The log's head after the batch."""


class StreamInfo(msgspec.Struct, frozen=True):
    """One stream of the log."""

    name: str
    version: int
    """Version of its last event; the stream holds ``version + 1`` events."""
    first_position: int
    last_position: int
