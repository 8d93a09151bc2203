"""Idempotent retries: an event id already stored is never stored twice."""

from __future__ import annotations

import pytest

from eventstore import NO_STREAM, EventIdConflict, EventStore, NewEvent, StepLogged

from ._events import steps


def wrapped(start: int, count: int) -> list[NewEvent]:
    return [NewEvent(e) for e in steps(start, count)]


async def test_retrying_a_committed_batch_returns_the_original_positions(store: EventStore) -> None:
    batch = wrapped(0, 3)
    first = await store.append("run:p/a", batch)
    await store.append("run:p/b", steps(0, 2))
    again = await store.append("run:p/a", batch)
    assert again.positions == first.positions
    assert again.version == first.version
    assert again.deduplicated
    assert await store.head() == 5


async def test_a_retry_with_the_original_expected_version_is_not_a_conflict(
    store: EventStore,
) -> None:
    batch = wrapped(0, 2)
    first = await store.append("run:p/a", batch, NO_STREAM)
    again = await store.append("run:p/a", batch, NO_STREAM)
    assert again.positions == first.positions
    assert again.deduplicated


async def test_a_retry_after_later_appends_still_deduplicates(store: EventStore) -> None:
    batch = wrapped(0, 2)
    first = await store.append("run:p/a", batch, NO_STREAM)
    await store.append("run:p/a", steps(2, 3))
    again = await store.append("run:p/a", batch, NO_STREAM)
    assert again.positions == first.positions
    assert [r.version async for r in store.read_stream("run:p/a")] == [0, 1, 2, 3, 4]


async def test_a_stored_id_with_different_content_is_a_conflict(store: EventStore) -> None:
    [original] = wrapped(0, 1)
    await store.append("run:p/a", [original])
    forged = NewEvent(StepLogged(incarnation=1, step=99, metrics={}), original.event_id)
    with pytest.raises(EventIdConflict, match="different content"):
        await store.append("run:p/a", [forged])
    assert await store.head() == 1


async def test_a_stored_id_in_another_stream_is_a_conflict(store: EventStore) -> None:
    batch = wrapped(0, 1)
    await store.append("run:p/a", batch)
    with pytest.raises(EventIdConflict, match="in stream 'run:p/a'"):
        await store.append("run:p/b", batch)
    assert await store.stream_version("run:p/b") == -1


async def test_a_batch_that_is_only_partly_stored_is_a_conflict(store: EventStore) -> None:
    batch = wrapped(0, 3)
    await store.append("run:p/a", batch[:1])
    with pytest.raises(EventIdConflict, match="1 of the 3 events"):
        await store.append("run:p/a", batch)
    assert await store.head() == 1


async def test_the_same_id_twice_in_one_batch_is_refused(store: EventStore) -> None:
    [event] = wrapped(0, 1)
    with pytest.raises(ValueError, match="twice"):
        await store.append("run:p/a", [event, event])


async def test_bare_events_get_fresh_ids_each_time(store: EventStore) -> None:
    batch = steps(0, 2)
    await store.append("run:p/a", batch)
    second = await store.append("run:p/a", batch)
    assert not second.deduplicated
    assert await store.head() == 4
    ids = [s.event_id async for s in store.read_stored()]
    assert len(set(ids)) == 4
