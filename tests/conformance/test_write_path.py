"""The append path's fast cases (issue 16) keep every guarantee of the slow ones:
generated ids are unique and time-ordered, callers' ids are kept, retries deduplicate,
big batches are gap-free and chained exactly as ``chain_hash`` defines."""

from __future__ import annotations

import uuid

import pytest

from eventstore import (
    GENESIS_HASH,
    EventStore,
    InvalidArgument,
    InvalidEvent,
    NewEvent,
    StepLogged,
    StoredEvent,
)

from ._events import steps


async def stored(store: EventStore) -> list[StoredEvent]:
    return [event async for event in store.read_stored()]


async def test_generated_ids_are_distinct_uuid7_in_position_order(store: EventStore) -> None:
    for start in range(0, 3000, 1000):
        await store.append("run:p/a", steps(start, 1000))
        await store.append("run:p/b", steps(start, 7))
    ids = [event.event_id_bytes for event in await stored(store)]
    assert len(set(ids)) == len(ids) == 3021
    assert {uuid.UUID(bytes=i).version for i in ids} == {7}
    # Time-ordered: each id sorts after the one before it, so the unique index on
    # event ids grows at its right edge instead of splitting pages at random.
    assert ids == sorted(ids)


async def test_callers_ids_in_a_batch_of_new_events_are_stored_as_given(
    store: EventStore,
) -> None:
    batch = [NewEvent(event, uuid.uuid4().bytes) for event in steps(0, 300)]
    await store.append("run:p/a", batch)
    assert [e.event_id_bytes for e in await stored(store)] == [n.event_id for n in batch]


async def test_callers_uuid_ids_are_stored_as_their_bytes(store: EventStore) -> None:
    batch = [NewEvent(event, uuid.uuid4()) for event in steps(0, 3)]
    await store.append("run:p/a", batch)
    assert [e.event_id for e in await stored(store)] == [n.event_id for n in batch]


async def test_a_retried_batch_of_many_new_events_is_stored_once(store: EventStore) -> None:
    batch = [NewEvent(event) for event in steps(0, 2500)]
    first = await store.append("run:p/a", batch)
    again = await store.append("run:p/a", batch)
    assert again.deduplicated
    assert again.positions == first.positions
    assert await store.head() == 2500


async def test_an_id_twice_in_one_batch_of_new_events_is_refused(store: EventStore) -> None:
    twice = uuid.uuid4().bytes
    batch = [NewEvent(event, twice) for event in steps(0, 2)]
    with pytest.raises(InvalidArgument, match="twice"):
        await store.append("run:p/a", batch)
    assert await store.head() == 0


async def test_an_unserialisable_event_in_a_batch_of_steps_is_refused(
    store: EventStore,
) -> None:
    bad = StepLogged(incarnation=1, step=5, metrics={"x": object()})
    with pytest.raises(InvalidEvent, match="objects of type object cannot be stored"):
        await store.append("run:p/a", [*steps(0, 5), bad])
    assert await store.head() == 0


@pytest.mark.parametrize("count", [1, 1023, 1024, 1025, 3001])
async def test_a_large_append_is_gap_free_and_chained(store: EventStore, count: int) -> None:
    await store.append("run:p/warm", steps(0, 3))
    result = await store.append("run:p/a", steps(0, count))
    assert result.positions == tuple(range(4, 4 + count))
    events = await stored(store)
    assert [e.position for e in events] == list(range(1, 4 + count))
    assert [e.version for e in events[3:]] == list(range(count))
    previous = GENESIS_HASH
    for event in events:
        assert event.hash == event.expected_hash(previous)
        previous = event.hash
