"""Connection loss: a broken connection is retried without duplicates; a lasting one is clear."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from eventstore import (
    AppendResult,
    NewEvent,
    StoreBusy,
    StoreUnavailable,
    open_store,
)
from eventstore._postgres_schema import APPEND_LOCK

from ..conformance._events import steps
from ._helpers import WAITING_ON_A_ROW, WAITING_ON_APPEND_LOCK, database_name, wait_for

KILL_WAITING = (
    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = $1 "
    "AND a.application_name = 'runlog'"
)
KILL_ROW_WAITER = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
    "AND application_name = 'runlog' AND wait_event_type = 'Lock' AND wait_event = 'transactionid'"
)


async def test_a_connection_killed_while_waiting_to_append_is_retried(
    url: str, admin: asyncpg.Connection
) -> None:
    name = database_name(url)
    events = [NewEvent(e) for e in steps(0, 5)]
    async with open_store(url) as store:
        await store.append("run:p/a", steps(0, 1))
        holder = await asyncpg.connect(url)
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
        results: list[AppendResult] = []

        async def append() -> None:
            results.append(await store.append("run:p/a", events, 0))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(append)
                await wait_for(admin, WAITING_ON_APPEND_LOCK, name)
                assert await admin.fetchval(KILL_WAITING, name) is True
                # The store reconnects and waits for the lock again on a new session.
                await wait_for(admin, WAITING_ON_APPEND_LOCK, name)
                await holding.commit()
        await holder.close()
        assert results[0].positions == (2, 3, 4, 5, 6)
        stored = [s async for s in store.read_stored()]
    assert len(stored) == 6
    assert len({s.event_id for s in stored}) == 6


async def test_a_connection_killed_inside_its_append_transaction_leaves_no_partial_batch(
    url: str, admin: asyncpg.Connection
) -> None:
    name = database_name(url)
    async with open_store(url) as store:
        await store.append("run:p/a", steps(0, 1))
        blocker = await asyncpg.connect(url)
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("SELECT 1 FROM streams WHERE name = 'run:p/a' FOR UPDATE")
        results: list[AppendResult] = []

        async def append() -> None:
            results.append(await store.append("run:p/a", steps(1, 300)))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(append)
                # Inside its transaction: holding the append lock, stuck on the row.
                await wait_for(admin, WAITING_ON_A_ROW, name)
                assert await admin.fetchval(KILL_ROW_WAITER, name) is True
                await wait_for(admin, WAITING_ON_A_ROW, name)  # the retry got as far
                await holding.rollback()
        await blocker.close()
        assert results[0].positions == tuple(range(2, 302))
        assert not results[0].deduplicated
        versions = [r.version async for r in store.read_stream("run:p/a")]
    assert versions == list(range(301))


async def test_a_retry_after_an_unclear_outcome_returns_the_stored_positions(url: str) -> None:
    # What the store does when a connection breaks during COMMIT: the same events, the
    # same ids, again. The first attempt's commit wins; nothing is stored twice.
    events = [NewEvent(e) for e in steps(0, 3)]
    async with open_store(url) as store:
        first = await store.append("run:p/a", events, "no_stream")
        again = await store.append("run:p/a", events, "no_stream")
        assert again.positions == first.positions
        assert again.deduplicated
        assert await store.head() == 3


async def test_a_server_that_stays_away_raises_a_clear_error_and_loses_nothing(
    url: str, admin: asyncpg.Connection
) -> None:
    name = database_name(url)
    async with open_store(url, lock_timeout=2) as store:
        acknowledged = await store.append("run:p/a", steps(0, 10))
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            with pytest.raises(StoreUnavailable) as caught:
                await store.append("run:p/a", steps(10, 1))
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert name in str(caught.value)
        # The same store object works again once the server is back.
        assert await store.head() == acknowledged.positions[-1]
    async with open_store(url) as store:
        assert [r.version async for r in store.read_stream("run:p/a")] == list(range(10))


async def test_an_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        await open_store("postgresql://runlog@127.0.0.1:1/runlog", lock_timeout=2)


async def test_a_missing_database_is_refused_without_create(url: str) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await open_store(url, create=False)


async def test_an_append_lock_held_past_lock_timeout_is_store_busy(url: str) -> None:
    async with open_store(url, lock_timeout=0.5) as store:
        await store.append("run:p/a", steps(0, 1))
        holder = await asyncpg.connect(url)
        try:
            async with holder.transaction():
                await holder.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                with pytest.raises(StoreBusy, match="lock_timeout"):
                    await store.append("run:p/a", steps(1, 1))
        finally:
            await holder.close()
        await store.append("run:p/a", steps(1, 1))  # nothing was written; a retry works
        assert [r.version async for r in store.read_stream("run:p/a")] == [0, 1]
