"""``import_events``: events from another log, with their ids, bytes, versions and times."""

from __future__ import annotations

import pytest

from eventstore import (
    EventIdConflict,
    EventStore,
    StoredEvent,
    WrongExpectedVersion,
    open_store,
)

from .._backends import StoreFactory
from ._events import steps


async def exported(count: int = 6) -> list[StoredEvent]:
    """A small log of two streams, as another store holds it."""
    async with open_store(":memory:") as source:
        await source.append("run:p/a", steps(0, count // 2))
        await source.append("run:p/b", steps(0, count - count // 2))
        return [s async for s in source.read_stored()]


async def test_into_an_empty_store_a_log_keeps_positions_and_hashes(store: EventStore) -> None:
    events = await exported()
    result = await store.import_events(events)
    assert (result.added, result.skipped, result.times_raised) == (6, 0, 0)
    assert [s async for s in store.read_stored()] == events


async def test_importing_again_skips_every_event(store: EventStore) -> None:
    events = await exported()
    await store.import_events(events)
    again = await store.import_events(events)
    assert (again.added, again.skipped) == (0, 6)
    assert await store.head() == 6


async def test_imported_events_go_after_what_the_store_has(store: EventStore) -> None:
    await store.append("run:p/other", steps(0, 2))
    events = await exported()
    result = await store.import_events(events)
    assert result.head == 8
    stored = [s async for s in store.read_stored(3)]
    assert [(s.stream, s.version, s.event_id, s.data) for s in stored] == [
        (s.stream, s.version, s.event_id, s.data) for s in events
    ]
    assert [s.position for s in stored] == list(range(3, 9))


async def test_a_time_older_than_the_head_is_raised_to_it(store: EventStore) -> None:
    events = await exported()
    await store.append("run:p/late", steps(0, 1))  # recorded after the export's events
    head_time = [s async for s in store.read_stored()][-1].recorded_at_us
    result = await store.import_events(events)
    assert result.times_raised == 6
    assert [s.recorded_at_us async for s in store.read_stored(2)] == [head_time] * 6


async def test_an_id_stored_with_other_content_is_a_conflict_and_nothing_is_written(
    store: EventStore,
) -> None:
    events = await exported()
    await store.import_events(events[:2])
    changed = [events[2], StoredEvent(**{**_fields(events[1]), "data": events[0].data})]
    with pytest.raises(EventIdConflict):
        await store.import_events(changed)
    assert await store.head() == 2


async def test_a_stream_not_one_version_behind_is_refused(store: EventStore) -> None:
    events = await exported()
    with pytest.raises(WrongExpectedVersion):
        await store.import_events(events[1:])  # run:p/a would start at version 1
    assert await store.head() == 0


async def test_imports_survive_a_reopen(persistent_factory: StoreFactory) -> None:
    events = await exported()
    async with persistent_factory.open() as store:
        await store.import_events(events)
    async with persistent_factory.open() as store:
        assert [s async for s in store.read_stored()] == events


def _fields(stored: StoredEvent) -> dict[str, object]:
    return {name: getattr(stored, name) for name in stored.__struct_fields__}
