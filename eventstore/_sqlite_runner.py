"""Running work on a SQLite connection: one call on its thread, one round trip.

aiosqlite runs every call on its connection's thread through ``_execute``; an operation
of several statements runs as one call, so it costs one round trip. ``SQLiteRunner`` is
the public face of this for read models kept in a store's file (``host_read_model``).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
import anyio

from ._errors import CorruptStore
from ._sqlite_errors import is_busy, translate_sqlite_error

__all__ = ["SQLiteRunner", "begin_immediate", "busy_ms", "run_on_thread", "write_transaction"]

_T = TypeVar("_T")


async def run_on_thread(
    conn: aiosqlite.Connection, where: str, fn: Callable[..., _T], *args: Any
) -> _T:
    """Run ``fn(sqlite3_connection, *args)`` on ``conn``'s thread, translating errors.

    A caller cancelled meanwhile still waits for the thread to finish the call (the
    thread cannot be stopped): the thread hands its result to this event loop, and a
    loop closed before that (``asyncio.run`` ending while a store call was in flight)
    would make the thread die with a traceback instead.
    """
    try:
        execute = cast(Callable[..., Awaitable[_T]], conn._execute)
        call = asyncio.ensure_future(execute(fn, conn._conn, *args))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # Shielded, so anyio does not deliver the cancellation again at every turn
            # of the loop; a second plain task.cancel() still can, hence the loop.
            with anyio.CancelScope(shield=True):
                while not call.done():
                    try:
                        await asyncio.wait({call})
                    except asyncio.CancelledError:
                        continue
            if not call.cancelled():
                call.exception()  # retrieved: the caller was cancelled, not failed
            raise
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, where) from exc
    except UnicodeDecodeError as exc:  # text SQLite itself keeps (its schema) was damaged
        raise CorruptStore(
            f"{where} is damaged (text in it is not UTF-8: {exc}); restore it from a backup "
            "or export what still reads."
        ) from exc


def begin_immediate(db: sqlite3.Connection, lock_timeout: float) -> None:
    """``BEGIN IMMEDIATE``, retried with jitter until ``lock_timeout`` seconds have passed."""
    deadline = time.monotonic() + lock_timeout
    delay = 0.001
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        # SQLite's own busy handler already waited; jitter keeps waiting processes
        # from retrying in lockstep.
        time.sleep(delay * random.random())
        delay = min(delay * 2, 0.05)


def write_transaction(
    db: sqlite3.Connection, lock_timeout: float, fn: Callable[..., _T], *args: Any
) -> _T:
    """``fn(db, *args)`` in one write transaction: committed if it returns, else rolled back."""
    begin_immediate(db, lock_timeout)
    try:
        result = fn(db, *args)
        db.execute("COMMIT")
        return result
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


def busy_ms(lock_timeout: float) -> int:
    """SQLite's own busy wait: short, so that ``begin_immediate``'s jittered retries
    share the lock fairly and its deadline (``lock_timeout``) is what a caller waits."""
    return max(1, min(int(lock_timeout * 1000), 50))


class SQLiteRunner:
    """A connection of its own to a store's SQLite file, for a read model beside the log.

    Open it with ``await SQLiteRunner.open(path, where, lock_timeout)``.
    """

    def __init__(self, conn: aiosqlite.Connection, where: str, lock_timeout: float) -> None:
        self._conn: aiosqlite.Connection | None = conn
        self._lock_timeout = lock_timeout
        self.where = where

    @classmethod
    async def open(cls, path: Path, where: str, lock_timeout: float) -> SQLiteRunner:
        """Connect to the file at ``path`` (``where`` names it in error messages)."""
        try:
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, where) from exc
        return cls(conn, where, lock_timeout)

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(sqlite3_connection, *args)`` on the connection's thread."""
        assert self._conn is not None, f"{self.where} is closed"
        return await run_on_thread(self._conn, self.where, fn, *args)

    async def transaction(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(sqlite3_connection, *args)`` in one write transaction (``BEGIN IMMEDIATE``)."""
        return await self.run(write_transaction, self._lock_timeout, fn, *args)

    def begin(self, db: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE`` on ``db``, waiting up to the runner's lock timeout."""
        begin_immediate(db, self._lock_timeout)

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
