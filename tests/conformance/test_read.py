"""Reading: one stream, the whole log, stored bytes, stream listing, persistence."""

from __future__ import annotations

import uuid

import pytest

from eventstore import (
    GENESIS_HASH,
    EventStore,
    InvalidArgument,
    NewEvent,
    RunExited,
    RunInitialized,
    StoreClosed,
    read_streams,
)

from .._backends import StoreFactory
from ._events import step_numbers, steps


async def test_read_stream_returns_only_that_stream_in_version_order(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2))
    await store.append("run:p/b", steps(0, 5))
    await store.append("run:p/a", steps(2, 2))
    records = [r async for r in store.read_stream("run:p/a")]
    assert [r.stream for r in records] == ["run:p/a"] * 4
    assert step_numbers(records) == [0, 1, 2, 3]


async def test_read_stream_from_a_version(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 5))
    records = [r async for r in store.read_stream("run:p/a", from_version=3)]
    assert [r.version for r in records] == [3, 4]


async def test_read_stream_with_a_limit(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2500))
    records = [r async for r in store.read_stream("run:p/a", 100, limit=1500)]
    assert [r.version for r in records] == list(range(100, 1600))


async def test_read_stream_of_a_missing_stream_is_empty(store: EventStore) -> None:
    assert [r async for r in store.read_stream("run:p/none")] == []


async def test_read_all_pages_through_long_logs(store: EventStore) -> None:
    for start in range(0, 2500, 500):
        await store.append("run:p/a", steps(start, 500))
    positions = [r.position async for r in store.read_all()]
    assert positions == list(range(1, 2501))


async def test_read_all_between_positions(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 10))
    records = [r async for r in store.read_all(4, to_position=7)]
    assert [r.position for r in records] == [4, 5, 6, 7]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (0, -5)])
async def test_read_all_refuses_negative_positions(
    store: EventStore, start: int, end: int | None
) -> None:
    with pytest.raises(InvalidArgument):
        [r async for r in store.read_all(start, to_position=end)]


async def test_recorded_events_carry_their_envelope(store: EventStore) -> None:
    event_id = uuid.uuid4()
    init = RunInitialized(project="p", run_id="a", incarnation=1, resumed=False, starting_step=0)
    await store.append("run:p/a", [NewEvent(init, event_id)])
    [record] = [r async for r in store.read_all()]
    [stored] = [s async for s in store.read_stored()]
    assert record.event == init
    assert stored.event_id == event_id
    assert record.type == "RunInitialized"
    assert record.recorded_at.tzinfo is not None
    assert (record.position, record.stream, record.version) == (1, "run:p/a", 0)


async def test_every_event_type_round_trips(store: EventStore) -> None:
    from eventstore import default_codec

    from ..test_codec import example_events

    events = example_events()
    assert {type(e) for e in events} == set(default_codec.types)
    await store.append("all", events)
    assert [r.event async for r in store.read_all()] == events


async def test_stored_events_chain_their_hashes(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 3))
    await store.append("run:p/b", [RunExited(incarnation=1, exit_code=0)])
    previous = GENESIS_HASH
    async for stored in store.read_stored():
        expected = stored.expected_hash(previous)
        assert stored.hash == expected
        previous = stored.hash


async def test_streams_lists_names_versions_and_positions(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2))
    await store.append("sweep:s1", steps(0, 1))
    await store.append("run:p/b", steps(0, 3))
    await store.append("run:p/a", steps(2, 1))
    listed = await store.streams()
    assert [(s.name, s.version, s.first_position, s.last_position) for s in listed] == [
        ("run:p/a", 2, 1, 7),
        ("sweep:s1", 0, 3, 3),
        ("run:p/b", 2, 4, 6),
    ]
    assert [s.name for s in await store.streams(prefix="run:")] == ["run:p/a", "run:p/b"]
    assert await store.streams(prefix="nothing") == []


async def test_stream_version_of_a_missing_stream_is_minus_one(store: EventStore) -> None:
    assert await store.stream_version("run:p/none") == -1


async def test_events_survive_closing_and_reopening(persistent_factory: StoreFactory) -> None:
    async with persistent_factory.open() as store:
        await store.append("run:p/a", steps(0, 3))
    async with persistent_factory.open() as store:
        assert step_numbers([r async for r in store.read_all()]) == [0, 1, 2]
        assert (await store.append("run:p/a", steps(3, 1), 2)).positions == (4,)


async def test_a_closed_store_refuses_use(factory: StoreFactory) -> None:
    async with factory.open() as store:
        pass
    with pytest.raises(StoreClosed, match="open_store"):
        await store.append("run:p/a", steps(0, 1))
    with pytest.raises(StoreClosed):
        await store.head()


async def test_closing_twice_is_harmless(factory: StoreFactory) -> None:
    async with factory.open() as store:
        await store.aclose()
    await store.aclose()


async def test_read_positions_returns_events_in_the_order_asked(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 3))
    await store.append("run:p/b", steps(0, 3))
    records = await store.read_positions([5, 1, 3])
    assert [(r.position, r.stream, r.version) for r in records] == [
        (5, "run:p/b", 1),
        (1, "run:p/a", 0),
        (3, "run:p/a", 2),
    ]


@pytest.mark.parametrize("positions", [[0], [4], [-1]])
async def test_read_positions_refuses_positions_outside_the_log(
    store: EventStore, positions: list[int]
) -> None:
    await store.append("run:p/a", steps(0, 3))
    with pytest.raises(InvalidArgument):
        await store.read_positions(positions)


async def test_position_at_finds_where_the_log_stood_at_a_time(
    clocked_factory: StoreFactory,
) -> None:
    times = iter([100.0, 200.0, 200.0, 300.0])
    async with clocked_factory.open(clock=lambda: next(times)) as store:
        for start in range(4):
            await store.append("run:p/a", steps(start, 2))
        assert await store.position_at(99_000_000) == 0
        assert await store.position_at(100_000_000) == 2
        assert await store.position_at(250_000_000) == 6
        assert await store.position_at(10**18) == 8


async def test_position_at_of_an_empty_log_is_zero(store: EventStore) -> None:
    assert await store.position_at(10**18) == 0


async def test_read_all_pages_gives_the_log_in_pages_of_at_most_size(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 25))
    await store.append("run:p/b", steps(0, 10))
    pages = [page async for page in store.read_all_pages(3, to_position=30, size=7)]
    assert [len(page) for page in pages] == [7, 7, 7, 7]
    flat = [record for page in pages for record in page]
    assert flat == [r async for r in store.read_all(3, to_position=30)]


async def test_read_stored_pages_gives_the_stored_log_in_pages(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 12))
    pages = [page async for page in store.read_stored_pages(size=5)]
    assert [len(page) for page in pages] == [5, 5, 2]
    assert [s for page in pages for s in page] == [s async for s in store.read_stored()]


async def test_pages_of_an_empty_range_are_none(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 3))
    assert [page async for page in store.read_all_pages(4)] == []
    assert [page async for page in store.read_stored_pages(2, to_position=1)] == []


@pytest.mark.parametrize("size", [0, -1, 1.5])
async def test_a_page_size_must_be_a_positive_int(store: EventStore, size: object) -> None:
    with pytest.raises(InvalidArgument):
        async for _ in store.read_all_pages(size=size):  # type: ignore[arg-type]
            pass
    with pytest.raises(InvalidArgument):
        async for _ in store.read_stored_pages(size=size):  # type: ignore[arg-type]
            pass


async def test_check_log_finds_a_sound_log_and_names_its_head_hash(store: EventStore) -> None:
    from eventstore import check_log

    await store.append("run:p/a", steps(0, 7))
    await store.append("run:p/b", steps(0, 3))
    check = await check_log(store)
    assert check.ok
    assert (check.events, check.streams, check.first_position, check.last_position) == (
        10,
        2,
        1,
        10,
    )
    [last] = [s async for s in store.read_stored(10)]
    assert check.head_hash == last.hash.hex()


async def test_several_streams_read_as_one_in_log_order(store: EventStore) -> None:
    for stream in ("run:p/a", "run:p/b", "run:p/a", "sweep:s", "run:p/b", "run:p/a"):
        await store.append(stream, steps(0, 1))
    read = [(r.position, r.stream) async for r in read_streams(store, ["run:p/b", "run:p/a"])]
    assert read == [(1, "run:p/a"), (2, "run:p/b"), (3, "run:p/a"), (5, "run:p/b"), (6, "run:p/a")]
    window = read_streams(store, {"run:p/a": 2, "sweep:s": 0}, after=3, until=5)
    assert [(r.position, r.stream) async for r in window] == [(4, "sweep:s")]
    from_version = read_streams(store, {"run:p/a": 1})
    assert [r.position async for r in from_version] == [3, 6]
