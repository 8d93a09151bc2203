"""The database itself: schema versions, foreign databases, append-only guards, errors."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from eventstore import (
    CorruptStore,
    IncompatibleSchema,
    NewEvent,
    NotARunlogDatabase,
    PostgresStore,
    StoreBusy,
    StoreError,
    StoreUnavailable,
    open_store,
)
from eventstore._postgres_errors import translate_postgres_error
from eventstore._postgres_schema import SCHEMA_VERSION

from ..conformance._events import steps


async def test_open_store_gives_a_postgres_store_for_both_schemes(url: str) -> None:
    async with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        assert store.url == url
    async with open_store(url.replace("postgresql://", "postgres://", 1)) as store:
        assert isinstance(store, PostgresStore)


async def test_the_schema_version_is_recorded(url: str) -> None:
    async with open_store(url):
        pass
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SELECT value FROM runlog_meta WHERE key = 'schema_version'")
    finally:
        await conn.close()
    assert version == str(SCHEMA_VERSION)


async def test_a_newer_schema_is_refused_and_left_untouched(url: str) -> None:
    async with open_store(url) as store:
        await store.append("run:p/a", steps(0, 2))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE runlog_meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(IncompatibleSchema, match="newer runlog"):
            await open_store(url)
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
        assert (
            await conn.fetchval("SELECT value FROM runlog_meta WHERE key = 'schema_version'")
            == "99"
        )
    finally:
        await conn.close()


async def test_a_database_of_another_application_is_refused_and_left_untouched(url: str) -> None:
    async with open_store(url):  # creates the database
        pass
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE runlog_meta, events, streams, blobs, blob_chunks, stream_heads CASCADE")
        await conn.execute("CREATE TABLE invoices (id int PRIMARY KEY)")
        with pytest.raises(NotARunlogDatabase, match="invoices"):
            await open_store(url)
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert [row[0] for row in tables] == ["invoices"]


async def test_stored_events_refuse_update_delete_and_truncate(url: str) -> None:
    async with open_store(url) as store:
        await store.append("run:p/a", steps(0, 2))
    conn = await asyncpg.connect(url)
    try:
        for statement in (
            "UPDATE events SET data = ''::bytea",
            "DELETE FROM events",
            "TRUNCATE events CASCADE",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
    finally:
        await conn.close()


async def test_concurrent_opens_of_a_fresh_database_create_the_schema_once(url: str) -> None:
    import anyio

    opened: list[int] = []

    async def open_one() -> None:
        async with open_store(url) as store:
            opened.append(await store.head())

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(open_one)
    assert opened == [0] * 6


async def test_a_subscription_in_another_store_is_woken_by_notify(url: str) -> None:
    import anyio

    async with open_store(url) as writer, open_store(url) as reader:
        await writer.append("run:p/a", steps(0, 1))
        received: list[int] = []

        async def follow() -> None:
            # poll_interval=30: only a notification can deliver within the test's limit.
            async with reader.subscribe(poll_interval=30) as subscription:
                async for record in subscription:
                    received.append(record.position)
                    if record.position == 4:
                        return

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                for start in range(1, 4):
                    await anyio.sleep(0.05)
                    await writer.append("run:p/a", steps(start, 1))
    assert received == [1, 2, 3, 4]


async def test_a_lost_notification_delays_an_event_but_never_loses_it(
    url: str, admin: asyncpg.Connection
) -> None:
    import anyio

    name = url.rsplit("/", 1)[1]
    async with open_store(url) as writer, open_store(url) as reader:
        received: list[int] = []
        started = anyio.Event()

        async def follow() -> None:
            async with reader.subscribe(poll_interval=0.2) as subscription:
                started.set()
                async for record in subscription:
                    received.append(record.position)
                    if record.position == 3:
                        return

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await writer.append("run:p/a", steps(0, 1))
                await started.wait()
                # Kill the listening session: notifications sent now reach nobody.
                from ._helpers import wait_for

                listening = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                    "AND application_name = 'runlog-listen'"
                )
                await wait_for(admin, listening, name)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
                    "AND application_name = 'runlog-listen'",
                    name,
                )
                await writer.append("run:p/a", steps(1, 2))
    assert received == [1, 2, 3]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.LockNotAvailableError("lock timeout"), StoreBusy),
        (asyncpg.QueryCanceledError("statement timeout"), StoreBusy),
        (asyncpg.InvalidCatalogNameError("no such database"), StoreUnavailable),
        (asyncpg.InvalidPasswordError("bad password"), StoreUnavailable),
        (asyncpg.InsufficientPrivilegeError("denied"), StoreUnavailable),
        (asyncpg.TooManyConnectionsError("too many"), StoreUnavailable),
        (asyncpg.ConnectionDoesNotExistError("closed"), StoreUnavailable),
        (asyncpg.AdminShutdownError("terminating"), StoreUnavailable),
        (ConnectionRefusedError("refused"), StoreUnavailable),
        (asyncpg.DataCorruptedError("bad page"), CorruptStore),
        (asyncpg.RestrictViolationError("runlog events are append-only"), StoreError),
    ],
)
def test_each_driver_error_relied_on_is_translated(
    error: BaseException, expected: type[StoreError]
) -> None:
    translated = translate_postgres_error(error, "the database x")
    assert type(translated) is expected
    assert "the database x" in str(translated)


async def test_the_same_appends_chain_to_the_same_hashes_as_on_sqlite(
    url: str, tmp_path: Path
) -> None:
    events = [NewEvent(e) for e in steps(0, 5)] + [NewEvent(e) for e in steps(5, 3)]
    stored = []
    for target in (str(tmp_path / "log.db"), url):
        times = iter(range(1_700_000_000, 1_700_000_100))
        clock = lambda times=times: float(next(times))  # noqa: E731
        async with open_store(target, clock=clock) as store:
            await store.append("run:p/a", events[:5], "no_stream")
            await store.append("run:p/b", events[5:])
            stored.append([s async for s in store.read_stored()])
    sqlite, postgres = stored
    assert [s.hash for s in postgres] == [s.hash for s in sqlite]
    assert postgres == sqlite  # positions, versions, ids, times, bytes: all the same
