"""A store call runs on its connection's thread, which cannot be stopped: a caller
cancelled meanwhile waits for it, so the thread never hands a result to a closed loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import aiosqlite
import pytest

from eventstore._sqlite_runner import run_on_thread

pytestmark = pytest.mark.anyio


async def test_a_cancelled_call_returns_only_once_its_thread_is_done() -> None:
    finished = threading.Event()

    def slow(db: sqlite3.Connection) -> None:
        time.sleep(0.2)
        finished.set()

    conn = await aiosqlite.connect(":memory:")
    try:
        call = asyncio.create_task(run_on_thread(conn, "a test database", slow))
        await asyncio.sleep(0.02)  # the thread has the call
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert finished.is_set()
    finally:
        await conn.close()
