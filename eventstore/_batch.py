"""Turning an append's events into ids and stored bytes, the same for every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from operator import attrgetter

from ._chain import GENESIS_HASH, chain_batch
from ._checks import satisfies
from ._codec import EventCodec, event_id_bytes
from ._errors import EventIdConflict, EventTooLarge, InvalidArgument, WrongExpectedVersion
from ._events import Event
from ._types import AppendResult, NewEvent, RecordedEvent

__all__ = ["AppendPlan", "StoredIds", "encode_batch", "retried_append"]

StoredIds = dict[bytes, tuple[int, int, str, bytes]]
"""Event id -> (position, version, stream, stored bytes) of ids a store already holds."""


def encode_batch(
    codec: EventCodec, events: Sequence[Event | NewEvent], limit: int
) -> tuple[list[bytes], list[bytes]]:
    """The ids and stored bytes of an append's events, checked: each is an event of
    ``codec``, serialisable and at most ``limit`` bytes; ids are the callers' or fresh."""
    if isinstance(events, (Event, NewEvent)) or not isinstance(events, Sequence):
        raise InvalidArgument("append takes a sequence of events, e.g. [event]")
    fast = _encode_uniform(codec, events, limit)
    if fast is not None:
        return fast
    known, encode = codec._known, codec._encoder.encode
    datas: list[bytes] = []
    given: dict[int, bytes] = {}  # index -> caller's event id, for NewEvent items
    for index, item in enumerate(events):
        event: object = item
        if type(item) is NewEvent:
            event = item.event
            event_id = item.event_id
            if isinstance(event_id, uuid.UUID):
                event_id = event_id.bytes
            elif not isinstance(event_id, bytes) or len(event_id) != 16:
                raise InvalidArgument(f"event #{index}: an event id is a UUID or 16 bytes")
            given[index] = event_id
        if type(event) not in known:
            codec.check(event, index)
        try:
            data = encode(event)
        except Exception:
            data = codec.encode(event)  # type: ignore[arg-type]  # raises InvalidEvent
        if len(data) > limit:
            raise EventTooLarge(
                f"event #{index} ({type(event).__name__}) is {len(data)} bytes encoded, over "
                f"the store's limit of {limit}; save large data as a file, or open the store "
                "with a larger max_event_bytes"
            )
        datas.append(data)
    if not given:
        return event_id_bytes(len(datas)), datas
    fresh = iter(event_id_bytes(len(datas) - len(given)))
    ids = [given[i] if i in given else next(fresh) for i in range(len(datas))]
    if len(set(ids)) != len(ids):
        raise InvalidArgument("the same event id appears twice in one append")
    return ids, datas


def _encode_uniform(
    codec: EventCodec, events: Sequence[Event | NewEvent], limit: int
) -> tuple[list[bytes], list[bytes]] | None:
    """``encode_batch``'s answer for the batches appends almost always get, all bare
    events or all ``NewEvent`` with 16-byte ids, in loops that run in C; None for any
    other batch, or one with something to report, which the checking loop then handles.

    Appends encode every event they write, so a Python-level loop per event here is a
    measurable share of the write path (issue 16).
    """
    kinds = set(map(type, events))
    if kinds == _NEW_EVENT:
        inner = list(map(_event_of, events))
        ids = list(map(_id_of, events))
        if set(map(type, ids)) != _BYTES or set(map(len, ids)) != _SIXTEEN:
            return None
        if len(set(ids)) != len(ids):
            return None
        kinds = set(map(type, inner))
    elif NewEvent in kinds:
        return None
    else:
        inner = events  # type: ignore[assignment]  # no NewEvent among them
        ids = []
    if not kinds <= codec._known:
        return None
    try:
        datas = list(map(codec._encoder.encode, inner))
    except Exception:
        return None
    if datas and max(map(len, datas)) > limit:
        return None
    return (ids or event_id_bytes(len(datas))), datas


_NEW_EVENT = {NewEvent}
_BYTES = {bytes}
_SIXTEEN = {16}
_event_of = attrgetter("event")
_id_of = attrgetter("event_id")


def retried_append(
    stream: str, ids: list[bytes], datas: list[bytes], found: StoredIds
) -> AppendResult | None:
    """The original result if ``found`` shows the whole batch stored before (a retry),
    None if none of it is.

    Raises:
        EventIdConflict: part of the batch is stored, or an id holds other content.
    """
    if not found:
        return None
    if len(found) < len(ids):
        sample = next(iter(found))
        raise EventIdConflict(
            f"{len(found)} of the {len(ids)} events in this append are already stored (event "
            f"id {uuid.UUID(bytes=sample)} at position {found[sample][0]}) and the rest are not. "
            "An append is all-or-nothing, so a retry resends exactly the same batch; give new "
            "events fresh ids."
        )
    for event_id, data in zip(ids, datas, strict=True):
        position, _, name, stored = found[event_id]
        if name != stream:
            raise EventIdConflict(
                f"event id {uuid.UUID(bytes=event_id)} is already stored in stream {name!r} at "
                f"position {position}, not in {stream!r}; give the new event a fresh id"
            )
        if stored != data:
            raise EventIdConflict(
                f"event id {uuid.UUID(bytes=event_id)} is already stored at position {position} "
                "with different content; give the new event a fresh id (new_event_id())"
            )
    return AppendResult(
        stream,
        tuple(found[event_id][0] for event_id in ids),
        max(found[event_id][1] for event_id in ids),
        deduplicated=True,
    )


class AppendPlan:
    """An append decided under the store's lock from the stream's state and the head:
    the backends differ only in how they read that state and write the rows.

    ``refused`` means the stream is not at ``expected``: the backend then looks the
    batch's ids up (a retry of an append that did commit) and calls ``refuse``.
    """

    __slots__ = ("current", "first", "hashes", "now", "refused", "stream", "stream_id")

    def __init__(
        self,
        stream: str,
        expected: int | str,
        state: tuple[int | None, int | None, int | None, int | None, bytes | None],
        ids: list[bytes],
        datas: list[bytes],
        clock: Callable[[], float],
    ) -> None:
        stream_id, current, last, last_time, previous = state
        self.stream = stream
        self.stream_id = stream_id
        self.current = -1 if current is None else current
        self.refused = not satisfies(expected, self.current)
        self.first = (last or 0) + 1
        self.now = 0
        self.hashes: list[bytes] = []
        if self.refused or not datas:
            return
        # recorded_at never decreases along positions, even if clocks step back or
        # differ between machines, so "as of time t" is always a prefix of the log.
        self.now = max(int(clock() * 1_000_000), last_time or 0)
        self.hashes = chain_batch(
            previous if last is not None and previous is not None else GENESIS_HASH,
            stream,
            self.first,
            self.current + 1,
            self.now,
            ids,
            datas,
        )

    @property
    def count(self) -> int:
        """How many events the append writes."""
        return len(self.hashes)

    @property
    def last(self) -> int:
        """The position of the batch's last event."""
        return self.first + len(self.hashes) - 1

    @property
    def version(self) -> int:
        """The stream's version after the append."""
        return self.current + len(self.hashes)

    def records(self, events: list[Event]) -> list[RecordedEvent]:
        """The batch's ``events`` as they will read back: positions, versions, time."""
        stream, first, start, now = self.stream, self.first, self.current + 1, self.now
        return [
            RecordedEvent(first + i, stream, start + i, now, event)
            for i, event in enumerate(events)
        ]

    def result(self) -> AppendResult:
        """What the append returns once committed."""
        return AppendResult(self.stream, tuple(range(self.first, self.last + 1)), self.version)

    def refuse(
        self, expected: int | str, ids: list[bytes], datas: list[bytes], found: StoredIds
    ) -> AppendResult:
        """The original result if the refused batch is a retry of a stored one, else raise.

        Raises:
            WrongExpectedVersion: the stream is not at ``expected``.
            EventIdConflict: part of the batch is stored, or an id holds other content.
        """
        stored = retried_append(self.stream, ids, datas, found)
        if stored is None:
            raise WrongExpectedVersion(self.stream, expected, self.current)
        return stored
