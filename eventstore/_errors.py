"""The exception tree shared by every runlog package.

::

    RunLogError
    ├── InvalidArgument (also ValueError)
    │   ├── InvalidStreamName
    │   └── InvalidEvent
    │       └── EventTooLarge
    ├── StoreError
    │   ├── StoreClosed
    │   ├── StoreUnavailable
    │   │   └── StoreBusy
    │   ├── UnsupportedStore
    │   ├── NotARunlogDatabase
    │   ├── IncompatibleSchema
    │   ├── CorruptStore
    │   └── ConcurrencyError
    │       ├── WrongExpectedVersion
    │       ├── FencedWriter
    │       └── EventIdConflict
    └── DecodeError
        ├── UnknownEventType
        └── MalformedEvent

Catch ``RunLogError`` to handle anything runlog raises on purpose; catch a leaf to
handle one situation. Every message says what went wrong and what to do next.
Higher packages (projections, api) derive their own errors from ``RunLogError``.
"""

from __future__ import annotations

__all__ = [
    "ConcurrencyError",
    "CorruptStore",
    "DecodeError",
    "EventIdConflict",
    "EventTooLarge",
    "FencedWriter",
    "IncompatibleSchema",
    "InvalidArgument",
    "InvalidEvent",
    "InvalidStreamName",
    "MalformedEvent",
    "NotARunlogDatabase",
    "RunLogError",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "UnknownEventType",
    "UnsupportedStore",
    "WrongExpectedVersion",
]


class RunLogError(Exception):
    """Base of every error runlog raises deliberately."""


class InvalidArgument(RunLogError, ValueError):
    """A caller passed a value runlog cannot accept; nothing was written."""


class InvalidStreamName(InvalidArgument):
    """A stream name is empty, too long, not a string or holds a NUL character."""


class InvalidEvent(InvalidArgument):
    """An event is not a runlog event type or cannot be serialised; nothing was written."""


class EventTooLarge(InvalidEvent):
    """An encoded event exceeds the store's ``max_event_bytes``; nothing was written."""


class StoreError(RunLogError):
    """A problem with the store itself rather than with what was asked of it."""


class StoreClosed(StoreError):
    """The store was used after ``aclose()``; open a new one with ``open_store()``."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened (missing directory, permissions, disk full)."""


class StoreBusy(StoreUnavailable):
    """Other writers held the database lock for longer than ``lock_timeout``.

    Nothing was written by the call that raised it; retrying the same events is safe.
    """


class UnsupportedStore(StoreError):
    """The path or URL names a backend this build of runlog cannot open."""


class NotARunlogDatabase(StoreError):
    """The file exists but is not a runlog database; it was left untouched."""


class IncompatibleSchema(StoreError):
    """The database was written by a newer runlog; it was left untouched."""


class CorruptStore(StoreError):
    """The database file is damaged (a SQLite integrity failure)."""


class ConcurrencyError(StoreError):
    """Another writer changed the stream first; re-read, decide again, retry."""


class WrongExpectedVersion(ConcurrencyError):
    """The stream's version is not the one ``append`` was told to expect."""

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        shown = "no stream" if actual == -1 else f"version {actual}"
        super().__init__(
            f"stream {stream!r}: expected version {expected!r}, but the stream is at {shown}; "
            "another writer appended first. Re-read the stream, decide again and retry."
        )


class FencedWriter(ConcurrencyError):
    """A writer from an older incarnation of a run tried to append after a newer one began."""


class EventIdConflict(ConcurrencyError):
    """An event id is already stored with different content or in another stream."""


class DecodeError(RunLogError):
    """A stored event could not be decoded; ``position`` names it."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        self.position = position
        where = f"event at position {position}: " if position is not None else ""
        super().__init__(where + message)


class UnknownEventType(DecodeError):
    """A stored event has a type (or type version) this build of runlog does not know."""


class MalformedEvent(DecodeError):
    """A stored payload is not valid msgpack for its declared type."""
