"""Bulk reads: ``read_events_at`` (columns of events at positions) and read-ahead paging."""

from __future__ import annotations

import gc
import warnings

import pytest

from eventstore import EventStore, InvalidArgument

from ._events import steps


async def _three_streams(store: EventStore) -> None:
    """Positions 1..300: three streams in stretches of 50, interleaved."""
    for start in range(0, 100, 50):
        for name in ("run:p/a", "run:p/b", "run:p/c"):
            await store.append(name, steps(start, 50))


async def _as_positions_read(
    store: EventStore, positions: list[int]
) -> tuple[list[int], list[object]]:
    records = await store.read_positions(positions)
    return [r.recorded_at_us for r in records], [r.event for r in records]


@pytest.mark.parametrize(
    "positions",
    [
        list(range(1, 301)),  # the whole log: one dense stretch
        list(range(51, 101)),  # one stream's stretch
        list(range(1, 301, 3)),  # dense with holes: scanned, the holes skipped
        [7, 150, 299],  # lone positions: looked up
        [5, 6, 7, 8, 9, 200, 1, 2, 250, 251, 252, 253],  # mixed, out of order
        [40, 40, 41, 42, 43, 44],  # a position asked for twice
        list(range(300, 0, -1)),  # the whole log backwards
    ],
    ids=["all", "stretch", "every-third", "lone", "mixed", "repeated", "backwards"],
)
async def test_read_events_at_gives_what_read_positions_gives_in_the_order_asked(
    store: EventStore, positions: list[int]
) -> None:
    await _three_streams(store)
    times, events = await store.read_events_at(positions)
    assert (times, events) == await _as_positions_read(store, positions)
    assert len(events) == len(positions)


async def test_read_events_at_of_no_positions_is_empty(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 3))
    assert await store.read_events_at([]) == ([], [])


@pytest.mark.parametrize("positions", [[0], [4], [-1], [1, 2, 3, 4], [True]])
async def test_read_events_at_refuses_positions_outside_the_log(
    store: EventStore, positions: list[int]
) -> None:
    await store.append("run:p/a", steps(0, 3))
    with pytest.raises(InvalidArgument):
        await store.read_events_at(positions)


async def test_read_all_pages_stopped_early_leaves_the_store_usable(store: EventStore) -> None:
    # The store reads the next page ahead while the consumer holds this one; a consumer
    # that stops must not leave that read behind as an error or a warning.
    await store.append("run:p/a", steps(0, 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        taken = []
        async for page in store.read_all_pages(1, size=100):
            taken.append(page)
            break  # the generator is closed with a read of the next page under way
        gc.collect()
        assert [r.position for r in taken[0]] == list(range(1, 101))
        positions = [r.position async for r in store.read_all()]
    assert positions == list(range(1, 1001))


async def test_read_all_pages_in_full_pages_up_to_a_last_position(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1000))
    sizes = [len(page) async for page in store.read_all_pages(1, to_position=300, size=100)]
    assert sizes == [100, 100, 100]
    stored = [len(page) async for page in store.read_stored_pages(1, to_position=250, size=100)]
    assert stored == [100, 100, 50]
