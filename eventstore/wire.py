"""The store protocol over HTTP: its routes and the msgpack structs on the wire.

``runlog serve`` answers these routes and ``open_store("http://...")`` (``HTTPStore``)
calls them; both import this module, so the two sides cannot drift apart. Events travel
as the codec's own bytes: the server stores exactly what a local append would, and the
client's codec (upcasters included) decodes what it reads.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "APPEND",
    "EVENTS",
    "FILES",
    "HEAD",
    "IMPORT",
    "INFO",
    "MSGPACK",
    "POSITIONS",
    "POSITION_AT",
    "READ_MODEL",
    "RUN",
    "STORED",
    "STREAM",
    "STREAMS",
    "AppendIn",
    "AppendOut",
    "ErrorOut",
    "WireNew",
    "WireRecord",
]

MSGPACK = "application/msgpack"
"""The media type of every body on these routes but files (raw bytes) and errors (JSON)."""

HEAD = "/api/head"
"""GET: ``{"head": position}`` (JSON)."""
APPEND = "/api/store/append"
"""POST ``AppendIn`` (token): ``AppendOut``."""
IMPORT = "/api/store/import"
"""POST a list of ``StoredEvent`` (token): ``ImportResult``."""
EVENTS = "/api/store/events"
"""GET ``?from=&to=&limit=``: a page of the log as ``WireRecord``s."""
STORED = "/api/store/stored"
"""GET ``?from=&to=&limit=``: a page of the log as stored (``StoredEvent``s)."""
STREAM = "/api/store/stream"
"""GET ``?name=&from_version=&limit=``: a page of one stream as ``WireRecord``s."""
POSITIONS = "/api/store/positions"
"""POST a list of positions: the ``WireRecord``s at them, in that order."""
INFO = "/api/store/info"
"""GET ``?name=``: the stream's ``StreamInfo`` or nil."""
STREAMS = "/api/store/streams"
"""GET ``?prefix=``: ``StreamInfo`` of every stream starting with ``prefix``."""
POSITION_AT = "/api/store/position_at"
"""GET ``?us=``: the last position recorded at or before that time."""
RUN = "/api/store/run"
"""GET ``?project=&run_id=``: the run's state, the position it reflects, its stream's info."""
FILES = "/api/store/files"
"""PUT raw bytes (token): ``[digest, size]``; GET ``FILES/{digest}``: the bytes."""
READ_MODEL = "/api/store/rm"
"""The server's read model: ``READ_MODEL/position``, ``/catch_up``, ``/run``, ``/runs``,
``/sweep``, ``/sweeps``, ``/history``, ``/snapshot``, ``/line``, ``/copy``."""


class WireNew(msgspec.Struct, frozen=True, array_like=True):
    """An event to append: its 16-byte id and the codec's bytes of the event."""

    id: bytes
    data: bytes


class AppendIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``store.append(stream, events, expected_version)``."""

    stream: str
    expected_version: int | str
    events: list[WireNew]


class AppendOut(msgspec.Struct, frozen=True):
    """``AppendResult`` on the wire."""

    stream: str
    positions: list[int]
    version: int
    deduplicated: bool


class WireRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A recorded event on the wire: the codec's bytes, decoded by the client."""

    position: int
    stream: str
    version: int
    recorded_at_us: int
    data: bytes


class ErrorOut(msgspec.Struct, frozen=True):
    """Every 4xx/5xx body: the HTTP status, a machine-readable kind and what went wrong."""

    status: int
    error: str
    """The kind of error: the library error's class name (``WrongExpectedVersion``,
    ``RunNotFound``, ...) or, for a refused request, ``bad_request``, ``not_found``..."""
    detail: str
    """A sentence naming the problem and what to do about it."""
    actual_version: int | None = None
    """For ``WrongExpectedVersion``: the stream's version when the append was refused."""
    stream: str | None = None
    """For ``WrongExpectedVersion``: the stream refused (an import names it only here)."""
    expected_version: int | str | None = None
    """For ``WrongExpectedVersion``: the version the refused write expected."""
