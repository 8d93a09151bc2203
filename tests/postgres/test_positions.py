"""Positions under concurrent appenders: a subscriber never skips one.

With positions from a sequence, an appender whose transaction stays open keeps its
position invisible while later appenders commit theirs; a subscriber reading past the
later ones skips it for good. PostgresStore serialises appends with an advisory lock
instead, so the later appenders wait for the held-open one, and what a reader sees is
always a gap-free prefix of the log.
"""

from __future__ import annotations

import anyio
import asyncpg

from eventstore import GENESIS_HASH, open_store

from ..conformance._events import steps
from ._helpers import WAITING_ON_A_ROW, WAITING_ON_APPEND_LOCK, database_name, wait_for


async def test_a_held_open_append_keeps_later_ones_behind_it(
    url: str, admin: asyncpg.Connection
) -> None:
    name = database_name(url)
    later = 3
    async with open_store(url) as slow, open_store(url) as fast, open_store(url) as reader:
        await slow.append("run:p/slow", steps(0, 1))  # position 1
        # Hold the slow appender's transaction open: it will have taken the append lock
        # and numbered its event 2 when it blocks on this row lock.
        blocker = await asyncpg.connect(url)
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("SELECT 1 FROM streams WHERE name = 'run:p/slow' FOR UPDATE")
        received: list[int] = []
        total = 2 + later * 2

        async def subscribe() -> None:
            async with reader.subscribe(poll_interval=0.01) as subscription:
                async for record in subscription:
                    received.append(record.position)
                    if record.position == total:
                        return

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscribe)
                tg.start_soon(slow.append, "run:p/slow", steps(1, 1))
                await wait_for(admin, WAITING_ON_A_ROW, name)
                for i in range(later):
                    tg.start_soon(fast.append, f"run:p/fast{i}", steps(0, 2))
                # The later appenders queue behind the open transaction instead of
                # committing positions a subscriber could read past it.
                assert await wait_for(admin, WAITING_ON_APPEND_LOCK, name, at_least=later) == later
                assert await reader.head() == 1
                assert [r.position async for r in reader.read_all()] == [1]
                await holding.rollback()  # let the slow one commit
                await blocker.close()
        assert received == list(range(1, total + 1))
        stored = [s async for s in reader.read_stored()]
    assert [s.stream for s in stored[:2]] == ["run:p/slow", "run:p/slow"]
    previous = GENESIS_HASH
    for s in stored:
        assert s.hash == s.expected_hash(previous)
        previous = s.hash
    times = [s.recorded_at_us for s in stored]
    assert times == sorted(times)


async def test_many_connections_appending_at_once_leave_no_gap(url: str) -> None:
    writers, rounds = 8, 25
    async with open_store(url) as reader:
        received: list[int] = []
        total = writers * rounds * 3

        async def subscribe() -> None:
            async with reader.subscribe(poll_interval=0.05) as subscription:
                async for record in subscription:
                    received.append(record.position)
                    if len(received) == total:
                        return

        async def write(index: int) -> None:
            async with open_store(url) as store:
                for r in range(rounds):
                    await store.append(f"run:p/w{index}", steps(r * 3, 3))

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscribe)
                for index in range(writers):
                    tg.start_soon(write, index)
        assert received == list(range(1, total + 1))
        for index in range(writers):
            versions = [r.version async for r in reader.read_stream(f"run:p/w{index}")]
            assert versions == list(range(rounds * 3))
