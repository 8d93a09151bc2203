"""The PostgreSQL backend, through asyncpg: one log shared by processes on many machines.

Positions. A global position must be gap-free *in commit order*: a subscriber that has
seen position p must already be able to see every event before p. Positions drawn from
a sequence do not give that: two transactions draw 7 and 8, the one holding 8 commits
first, a subscriber reads 8 and moves on, and 7 appears later behind its back. So every
append takes one transaction-level advisory lock (``pg_advisory_xact_lock``) before it
reads the head, and holds it until its transaction ends. Appends are serialised across
every process and connection; each reads the head left by the last committed append
(PostgreSQL makes a commit visible before it releases the transaction's locks, and
under READ COMMITTED each statement after the lock sees it) and numbers its events
``head + 1, head + 2, ...``. A row at position p is therefore never visible before every
row below p, so a reader can page through positions without ever skipping one. The
hash chain and the never-decreasing ``recorded_at`` rest on the same lock. One append
of a batch is one short transaction, so the lock costs throughput only for very small
batches from many writers at once, which group commit in ``api`` avoids.

Live subscriptions are woken by LISTEN/NOTIFY (each append notifies inside its
transaction, so the notification is sent on commit) but never delivered by it: a
subscription reads the table, and polls every ``poll_interval`` seconds whatever
happens to notifications.

Connection loss. Every operation is retried on a fresh connection when the server
connection breaks (a restart, a failover, ``pg_terminate_backend``), for up to
``lock_timeout`` seconds. An append is retried with the same event ids: if the first
attempt did commit, the retry finds its events and returns their positions
(``deduplicated=True``) instead of writing them again. When the server stays away, the
call raises ``StoreUnavailable``; nothing it acknowledged before is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import asyncpg

from ._core import StoreCore, StoreOptions
from ._hosting import ReadModelFactory
from ._location import StoreLocation
from ._postgres_errors import DRIVER_ERRORS, translate_postgres_error
from ._postgres_pool import PoolRunner, display
from ._postgres_schema import ensure_schema
from ._postgres_writes import CHANNEL, PostgresQueries

__all__ = ["CHANNEL", "PostgresStore"]

_F = TypeVar("_F")


class PostgresStore(StoreCore):
    """The event store in a PostgreSQL database, shared by any number of processes.

    Open it with ``eventstore.open_store("postgresql://user@host/db")``; this
    constructor does no I/O.
    """

    def __init__(self, location: StoreLocation, options: StoreOptions) -> None:
        shown = display(location.url)
        super().__init__(location, f"the PostgreSQL database {shown}", options, shown)
        settings = {
            "application_name": "runlog",
            # Bounds the wait for the append lock (advisory locks obey it too).
            "lock_timeout": str(max(1, int(self._lock_timeout * 1000))),
        }
        if options.durability == "full":
            settings["synchronous_commit"] = "on"
        self._runner = PoolRunner(location.url, self._where, self._lock_timeout, settings)
        self._queries = PostgresQueries(options.codec, self._where, self._clock)
        self._listener: asyncpg.Connection | None = None
        self._listener_lock = asyncio.Lock()

    @property
    def path(self) -> None:
        """Always None: the log lives on a server, not in a file."""
        return None

    @property
    def runner(self) -> PoolRunner:
        """Runs functions on the store's pooled connections, retrying lost ones."""
        return self._runner

    def host_read_model(self, factory: ReadModelFactory[_F]) -> _F:
        """A read model in the same database, on the store's connections."""
        return factory.postgres(self._runner)

    async def _connect(self) -> None:
        try:
            await self._runner.open(self._options.create)
            await self._runner.run(ensure_schema, self._where)
        except DRIVER_ERRORS as exc:
            raise translate_postgres_error(exc, self._where) from exc

    async def _disconnect(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()
        await self._runner.close()

    def _read(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return self._runner.run(fn, *args)

    _write = _read

    async def _listen(self) -> bool:
        """Listen for other processes' appends; False if the listener was just started.

        Failing to listen is not an error: subscriptions then rely on polling alone.
        """
        if self._listener is not None and not self._listener.is_closed():
            return True
        async with self._listener_lock:
            if self._listener is not None and not self._listener.is_closed():
                return True
            if self._state != "open":
                return True
            try:
                with anyio.fail_after(max(1.0, min(self._lock_timeout, 10.0))):
                    conn = await asyncpg.connect(
                        self._runner.dsn, server_settings={"application_name": "runlog-listen"}
                    )
                    await conn.add_listener(CHANNEL, self._on_notify)
            except DRIVER_ERRORS:  # TimeoutError is an OSError
                self._listener = None
                return True  # poll until a later wait manages to listen
            if self._state != "open":
                conn.terminate()
                return True
            self._listener = conn
            return False

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake()
