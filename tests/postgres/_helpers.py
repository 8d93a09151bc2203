"""Waiting for server-side states the tests provoke (a session blocked on a lock)."""

from __future__ import annotations

import anyio
import asyncpg


async def wait_for(admin: asyncpg.Connection, sql: str, *args: object, at_least: int = 1) -> int:
    """Poll ``sql`` (a count) on the server until it reaches ``at_least``; return it.

    Lock waits are server state with nothing to await on the client, so polling is
    the only way to see them; the 20 s limit only bounds a failing test.
    """
    with anyio.fail_after(20):
        while True:
            count = int(await admin.fetchval(sql, *args))
            if count >= at_least:
                return count
            await anyio.sleep(0.01)


WAITING_ON_APPEND_LOCK = (
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = $1 "
    "AND a.application_name = 'runlog'"
)
WAITING_ON_A_ROW = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'runlog' "
    "AND wait_event_type = 'Lock' AND wait_event = 'transactionid'"
)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]
