"""The hub and its followers: every event exactly once, in order, whatever the pace."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import anyio.lowlevel

from api._server._fanout import Follower, Hub
from eventstore import Heartbeat, open_store


async def _take(follower: Follower, count: int) -> list[int]:
    with anyio.fail_after(30):
        return [(await follower.next()).position for _ in range(count)]


async def test_a_follower_catches_up_from_the_store_then_follows_the_hub(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store, anyio.create_task_group() as group:
        await store.append("run:p/a", [Heartbeat(incarnation=1)] * 2500)
        hub = Hub(store, buffer=10)
        await group.start(hub.run)
        follower = Follower(hub, 1)
        assert await _take(follower, 2500) == list(range(1, 2501))
        for _ in range(5):
            await store.append("run:p/a", [Heartbeat(incarnation=1)])
        assert await _take(follower, 5) == list(range(2501, 2506))
        assert hub.followers == 1  # caught up, it takes live events from the hub
        follower.close()
        group.cancel_scope.cancel()


async def test_a_slow_follower_is_dropped_and_still_misses_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store, anyio.create_task_group() as group:
        hub = Hub(store, buffer=5)
        await group.start(hub.run)
        fast, slow = Follower(hub, 1), Follower(hub, 1)
        await store.append("run:p/a", [Heartbeat(incarnation=1)])
        assert await _take(fast, 1) == [1]
        assert await _take(slow, 1) == [1]  # both joined the hub
        for _ in range(40):
            await store.append("run:p/a", [Heartbeat(incarnation=1)])
            await _take(fast, 1)  # the fast one keeps up; the slow one reads nothing
        assert hub.followers == 1  # the slow one's buffer filled: it was dropped
        assert await _take(slow, 40) == list(range(2, 42))
        await store.append("run:p/a", [Heartbeat(incarnation=1)])
        assert await _take(slow, 1) == [42]
        assert await _take(fast, 1) == [42]
        assert hub.followers == 2  # caught up from the store, it joined again
        fast.close()
        slow.close()
        group.cancel_scope.cancel()


async def test_cancelling_a_wait_loses_and_repeats_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store, anyio.create_task_group() as group:
        await store.append("run:p/a", [Heartbeat(incarnation=1)] * 1500)
        hub = Hub(store, buffer=50)
        await group.start(hub.run)
        follower = Follower(hub, 1)
        seen: list[int] = []

        async def writer() -> None:
            for _ in range(200):
                await store.append("run:p/a", [Heartbeat(incarnation=1)])
                await anyio.lowlevel.checkpoint()

        group.start_soon(writer)
        patience = itertools.cycle([0.0001, 0.001, 0.05])
        with anyio.fail_after(60):
            while len(seen) < 1700:
                # Waits cut short at every point: during reads from the store and
                # while waiting on the hub (the longest lets a page read finish).
                with anyio.move_on_after(next(patience)):
                    seen.append((await follower.next()).position)
        assert seen == list(range(1, 1701))
        follower.close()
        group.cancel_scope.cancel()
