"""Turning an append's events into ids and stored bytes, the same for every backend."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ._codec import EventCodec, event_id_bytes
from ._errors import EventTooLarge, InvalidArgument
from ._events import Event
from ._types import NewEvent

__all__ = ["encode_batch"]


def encode_batch(
    codec: EventCodec, events: Sequence[Event | NewEvent], limit: int
) -> tuple[list[bytes], list[bytes]]:
    """The ids and stored bytes of an append's events, checked: each is an event of
    ``codec``, serialisable and at most ``limit`` bytes; ids are the callers' or fresh."""
    if isinstance(events, (Event, NewEvent)) or not isinstance(events, Sequence):
        raise InvalidArgument("append takes a sequence of events, e.g. [event]")
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
