"""subscribe: catch up, then follow live appends, never skipping or repeating."""

from __future__ import annotations

import anyio
import pytest

from eventstore import EventStore, InvalidArgument, RecordedEvent

from ._events import steps


async def take(subscription: object, count: int) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    with anyio.fail_after(10):
        async for record in subscription:  # type: ignore[attr-defined]
            out.append(record)
            if len(out) == count:
                break
    return out


async def test_a_subscription_catches_up_from_the_start(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 5))
    async with store.subscribe() as subscription:
        records = await take(subscription, 5)
    assert [r.position for r in records] == [1, 2, 3, 4, 5]


async def test_a_subscription_starts_at_the_given_position(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 5))
    async with store.subscribe(4) as subscription:
        records = await take(subscription, 2)
    assert [r.position for r in records] == [4, 5]


async def test_a_subscription_follows_live_appends(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2))
    received: list[RecordedEvent] = []

    async def consume() -> None:
        async with store.subscribe(poll_interval=30) as subscription:
            received.extend(await take(subscription, 6))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        for start in range(2, 6):
            await anyio.sleep(0.01)
            await store.append("run:p/a", steps(start, 1))
    # poll_interval=30 proves in-process appends wake the subscriber at once.
    assert [r.position for r in received] == [1, 2, 3, 4, 5, 6]


async def test_a_subscription_crosses_page_boundaries_without_gaps(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2500))
    async with store.subscribe() as subscription:
        records = await take(subscription, 2500)
    assert [r.position for r in records] == list(range(1, 2501))


async def test_position_and_lag_report_progress(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 4))
    async with store.subscribe() as subscription:
        assert subscription.position == 0
        await take(subscription, 1)
        assert subscription.position == 1
        assert await subscription.lag() == 3


async def test_a_closed_subscription_stops_iterating(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 3))
    subscription = store.subscribe()
    await take(subscription, 1)
    await subscription.aclose()
    assert [r async for r in subscription] == []


async def test_a_negative_start_is_refused(store: EventStore) -> None:
    with pytest.raises(InvalidArgument):
        store.subscribe(-1)
