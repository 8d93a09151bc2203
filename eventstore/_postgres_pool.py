"""The PostgreSQL backend's connections: a pool, and a runner that outlives lost ones.

Every operation is retried on a fresh connection when the server connection breaks (a
restart, a failover, ``pg_terminate_backend``), for up to ``lock_timeout`` seconds. That
is safe because every operation is a read, or an append made idempotent by its event
ids: if the first attempt did commit, the retry finds its events and returns their
positions instead of writing them again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg

from ._errors import StoreClosed, StoreUnavailable
from ._postgres_errors import (
    CAUGHT,
    DRIVER_ERRORS,
    broken,
    discard,
    is_transient,
    translate_postgres_error,
)

__all__ = ["POOL_SIZE", "PoolRunner", "display", "dsn"]

_T = TypeVar("_T")
POOL_SIZE = 4


def display(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def dsn(url: str) -> str:
    """The URL asyncpg takes (it knows no ``+asyncpg`` driver suffix)."""
    scheme, sep, rest = url.partition("://")
    return ("postgresql" + sep + rest) if scheme == "postgresql+asyncpg" else url


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    asyncpg's default reset costs a round trip per operation (``RESET ALL``,
    ``UNLISTEN *``, ...) to undo session state this store never sets; the pool still
    rolls back a transaction left open (a cancelled operation) before this runs.
    """


class PoolRunner:
    """A store's connection pool; ``run`` is the ``ConnectionRunner`` read models use."""

    def __init__(self, url: str, where: str, lock_timeout: float, settings: dict[str, str]) -> None:
        self.dsn = dsn(url)
        self._shown = display(url)
        self._where = where
        self._lock_timeout = lock_timeout
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self.closed = False

    @property
    def where(self) -> str:
        """The database as error messages name it (without its password)."""
        return self._where

    async def open(self, create: bool) -> None:
        """Create the pool, and the database first if it is missing and ``create``."""
        try:
            self._pool = await self._create_pool()
        except asyncpg.InvalidCatalogNameError:
            if not create:
                raise
            await self._create_database()
            self._pool = await self._create_pool()

    async def _create_pool(self) -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=POOL_SIZE,
            server_settings=self._settings,
            timeout=max(1.0, min(self._lock_timeout, 30.0)),
            reset=_keep_session,
        )
        assert pool is not None
        return pool

    async def _create_database(self) -> None:
        parts = urlsplit(self.dsn)
        name = parts.path.lstrip("/")
        if not name:
            raise StoreUnavailable(f"{self._where} names no database; add one: .../dbname")
        maintenance = urlunsplit(parts._replace(path="/postgres"))
        conn = await asyncpg.connect(maintenance, server_settings={"application_name": "runlog"})
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # another process created it first (or at the same moment)
        finally:
            await conn.close()

    async def close(self) -> None:
        """Close the pool (forcibly after 10 s); idempotent."""
        self.closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                with anyio.fail_after(10):
                    await pool.close()
            except DRIVER_ERRORS:
                pool.terminate()

    def _checked_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreClosed(
                f"the store {self._shown} is {'closed' if self.closed else 'not open'}; "
                "open it with 'async with open_store(...)'"
            )
        return self._pool

    async def run(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run ``fn(connection, *args)`` on a pooled connection, translating errors.

        A broken connection is replaced and ``fn`` run again, for up to ``lock_timeout``
        seconds: ``fn`` must be a read, or a write made idempotent (one transaction).
        """
        deadline = time.monotonic() + self._lock_timeout
        delay = 0.05
        while True:
            pool = self._checked_pool()
            try:
                async with pool.acquire() as conn:
                    try:
                        return await fn(conn, *args)
                    except CAUGHT as exc:
                        # Whatever asyncpg calls it, an error that leaves the connection
                        # closed is a lost connection; an idle one killed by the server
                        # can also surface as an InternalClientError (a protocol state
                        # error) on its next use. Drop it, so the pool makes a new one.
                        if (
                            is_transient(exc)
                            or isinstance(exc, asyncpg.InternalClientError)
                            or broken(conn)
                        ):
                            discard(conn)
                            raise ConnectionResetError(f"{type(exc).__name__}: {exc}") from exc
                        raise
            except CAUGHT as exc:
                if not is_transient(exc):
                    raise translate_postgres_error(exc, self._where) from exc
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(
                        f"{self._where}: lost the connection ({exc}) and "
                        f"could not get it back within lock_timeout ({self._lock_timeout:g} s). "
                        "Check that the server is up. Everything acknowledged before is stored; "
                        "an append that raised this may or may not be, so retry it with the "
                        "same NewEvent ids."
                    ) from exc
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
