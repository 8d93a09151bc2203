"""Inline projections: per-stream state kept current in the append's own transaction.

A read model that folds the log after the fact lags behind it, and catching up a
backlog of a million events takes seconds. Some questions cannot wait for that (may
this run resume, from which step?), so a store can be given one *inline projection*:
a pure fold of one stream's events whose result, the stream's *head*, is stored in the
``stream_heads`` table by every append, inside the append's transaction (what Marten
calls an inline projection). Reading a head is then one indexed row, whatever the
shared read model's lag.

A head records the stream version it reflects. Appends made without the projection
(a store opened without it, an older runlog) leave heads behind; whoever next appends
to that stream or reads its head folds the missing events in, so a head read through a
store that has the projection is always the fold of the whole stream. Heads are
derived data: ``rebuild_heads`` recomputes them from the log, and a head written by
another version of the fold (its ``name`` differs) is thrown away when the store opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from ._types import RecordedEvent, StreamInfo

if TYPE_CHECKING:
    from ._codec import EventCodec
    from ._import import NewRow

__all__ = ["InlineProjection", "StoredHead", "StreamHead"]


@runtime_checkable
class InlineProjection(Protocol):
    """A pure fold of one stream's events to bytes, kept by the store per stream.

    ``fold`` must be deterministic and read nothing but its arguments: the same events
    always give the same bytes, whether folded in one call or in many.
    """

    name: str
    """Names the fold and its version; heads stored under another name are recomputed."""

    def applies_to(self, stream: str) -> bool:
        """Whether the store keeps a head for ``stream``."""
        ...

    def fold(self, stream: str, state: bytes | None, events: Sequence[RecordedEvent]) -> bytes:
        """The head after ``events`` (consecutive versions of ``stream``), given the head
        before them (None before the stream's first event)."""
        ...


class StreamHead(msgspec.Struct, frozen=True):
    """A stream's head: its inline projection's state as of the stream's last event."""

    info: StreamInfo
    """The stream as it was when read; the state reflects all of it (``info.version``)."""
    state: bytes
    """What the inline projection's ``fold`` returned."""


class StoredHead(msgspec.Struct, frozen=True):
    """A head exactly as stored, for audits: it may lag behind its stream."""

    stream: str
    version: int
    """The stream version the stored state reflects."""
    state: bytes


def fold_head(
    projection: InlineProjection,
    stream: str,
    state: bytes | None,
    events: Sequence[RecordedEvent],
) -> bytes:
    """``projection.fold``; called even with no events, so a stored head that no longer
    decodes raises here instead of being handed out."""
    return projection.fold(stream, state, events)


def imported_streams(
    projection: InlineProjection, rows: Sequence[NewRow], codec: EventCodec
) -> dict[str, list[RecordedEvent] | None]:
    """The imported events of each stream ``projection`` keeps a head for, decoded, in
    version order (None for a stream with an event that does not decode): an import
    keeps heads current as an append does."""
    by_stream: dict[str, list[RecordedEvent] | None] = {}
    wanted: dict[str, bool] = {}
    decode = codec.decode
    for row in rows:
        keep = wanted.get(row.stream)
        if keep is None:
            keep = wanted[row.stream] = projection.applies_to(row.stream)
        if not keep:
            continue
        events = by_stream.setdefault(row.stream, [])
        if events is None:
            continue
        try:
            event = decode(row.data)
        except Exception:
            by_stream[row.stream] = None  # its head is dropped; readers report the damage
            continue
        events.append(
            RecordedEvent(row.position, row.stream, row.version, row.recorded_at_us, event)
        )
    return by_stream
