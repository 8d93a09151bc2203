"""append: atomic batches, positions, versions, expected-version checks, validation."""

from __future__ import annotations

import pytest

from eventstore import (
    ANY,
    EXISTS,
    NO_STREAM,
    EventStore,
    EventTooLarge,
    InvalidArgument,
    InvalidEvent,
    InvalidStreamName,
    StepLogged,
    WrongExpectedVersion,
)

from .._backends import StoreFactory
from ._events import steps


async def test_first_append_creates_the_stream_at_version_zero(store: EventStore) -> None:
    result = await store.append("run:p/a", steps(0, 1))
    assert result.positions == (1,)
    assert result.version == 0
    assert await store.stream_version("run:p/a") == 0


async def test_a_batch_gets_consecutive_positions_and_versions(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2))
    result = await store.append("run:p/a", steps(2, 3))
    assert result.positions == (3, 4, 5)
    assert result.version == 4
    versions = [r.version async for r in store.read_stream("run:p/a")]
    assert versions == [0, 1, 2, 3, 4]


async def test_positions_are_global_across_streams(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2))
    b = await store.append("run:p/b", steps(0, 2))
    c = await store.append("run:p/a", steps(2, 1))
    assert b.positions == (3, 4)
    assert c.positions == (5,)
    assert [r.position async for r in store.read_all()] == [1, 2, 3, 4, 5]


async def test_head_is_zero_for_an_empty_log_and_the_last_position_after(store: EventStore) -> None:
    assert await store.head() == 0
    await store.append("run:p/a", steps(0, 3))
    assert await store.head() == 3


async def test_no_stream_accepts_a_new_stream(store: EventStore) -> None:
    result = await store.append("run:p/a", steps(0, 1), NO_STREAM)
    assert result.version == 0


async def test_no_stream_refuses_an_existing_stream(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1))
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append("run:p/a", steps(1, 1), NO_STREAM)
    assert caught.value.stream == "run:p/a"
    assert caught.value.expected == NO_STREAM
    assert caught.value.actual == 0
    assert "run:p/a" in str(caught.value)


async def test_exists_refuses_a_missing_stream(store: EventStore) -> None:
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append("run:p/a", steps(0, 1), EXISTS)
    assert caught.value.actual == -1


async def test_exists_accepts_an_existing_stream(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1))
    result = await store.append("run:p/a", steps(1, 1), EXISTS)
    assert result.version == 1


async def test_any_accepts_both(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1), ANY)
    result = await store.append("run:p/a", steps(1, 1), ANY)
    assert result.version == 1


async def test_exact_version_must_match(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 3))
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append("run:p/a", steps(3, 1), 1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    result = await store.append("run:p/a", steps(3, 1), 2)
    assert result.version == 3


async def test_minus_one_means_no_stream(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1), -1)
    with pytest.raises(WrongExpectedVersion):
        await store.append("run:p/a", steps(1, 1), -1)


async def test_a_refused_append_writes_nothing(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1))
    with pytest.raises(WrongExpectedVersion):
        await store.append("run:p/a", steps(1, 5), NO_STREAM)
    assert await store.head() == 1
    assert await store.stream_version("run:p/a") == 0


async def test_a_batch_with_a_bad_event_writes_nothing(store: EventStore) -> None:
    bad = [*steps(0, 2), StepLogged(incarnation=1, step=2, metrics={"x": object()})]
    with pytest.raises(InvalidEvent, match="cannot be serialised"):
        await store.append("run:p/a", bad)
    assert await store.head() == 0


async def test_an_empty_append_checks_the_version_and_writes_nothing(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 1))
    result = await store.append("run:p/a", [], 0)
    assert (result.positions, result.version) == ((), 0)
    with pytest.raises(WrongExpectedVersion):
        await store.append("run:p/a", [], NO_STREAM)
    assert await store.head() == 1


@pytest.mark.parametrize("expected", ["maybe", -2, 1.5, None, True])
async def test_an_unknown_expected_version_is_refused(store: EventStore, expected: object) -> None:
    with pytest.raises(InvalidArgument, match="expected_version"):
        await store.append("run:p/a", steps(0, 1), expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "x" * 1025, "a\x00b", 42])
async def test_invalid_stream_names_are_refused(store: EventStore, name: object) -> None:
    with pytest.raises(InvalidStreamName):
        await store.append(name, steps(0, 1))  # type: ignore[arg-type]


async def test_a_non_event_is_refused_with_its_index(store: EventStore) -> None:
    with pytest.raises(InvalidEvent, match="event #1 is a dict"):
        await store.append("run:p/a", [*steps(0, 1), {"step": 1}])  # type: ignore[list-item]


async def test_a_single_event_instead_of_a_list_is_refused(store: EventStore) -> None:
    with pytest.raises(InvalidArgument, match="sequence"):
        await store.append("run:p/a", steps(0, 1)[0])  # type: ignore[arg-type]


async def test_an_oversized_event_is_refused(factory: StoreFactory) -> None:
    async with factory.open(max_event_bytes=200) as store:
        big = StepLogged(incarnation=1, step=0, metrics={"blob": "x" * 500})
        with pytest.raises(EventTooLarge, match="over the store's limit of 200"):
            await store.append("run:p/a", [big])
        assert await store.head() == 0


async def test_numpy_like_scalars_are_stored_as_numbers(store: EventStore) -> None:
    class Scalar:  # what numpy.float32 and a 0-d torch tensor look like to the codec
        def item(self) -> float:
            return 0.25

    await store.append("run:p/a", [StepLogged(incarnation=1, step=0, metrics={"loss": Scalar()})])
    [record] = [r async for r in store.read_all()]
    assert isinstance(record.event, StepLogged)
    assert record.event.metrics == {"loss": 0.25}


async def test_recorded_at_never_decreases_even_if_the_clock_steps_back(
    clocked_factory: StoreFactory,
) -> None:
    times = iter([1000.0, 999.0, 1001.0])
    async with clocked_factory.open(clock=lambda: next(times)) as store:
        for step in range(3):
            await store.append("run:p/a", steps(step, 1))
        stamps = [r.recorded_at_us async for r in store.read_all()]
    assert stamps == [1_000_000_000, 1_000_000_000, 1_001_000_000]


async def test_all_events_of_one_batch_share_recorded_at(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 5))
    stamps = {r.recorded_at_us async for r in store.read_all()}
    assert len(stamps) == 1


async def test_large_batches_cross_the_statement_chunk_boundaries(store: EventStore) -> None:
    # 1000 = 7 x 128 + 64 + 32 + 8: every insert statement size is used.
    await store.append("run:p/a", steps(0, 1000))
    records = [r async for r in store.read_stream("run:p/a")]
    assert [r.version for r in records] == list(range(1000))
    assert [r.position for r in records] == list(range(1, 1001))
