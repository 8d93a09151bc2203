"""The SQLite backend: one writer connection, one reader connection, WAL.

Each operation is one function run on its connection's thread (aiosqlite's worker), so
an append is a single round trip however many statements it takes (``_sqlite_writes``).
Everything else a store does is ``StoreCore``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio

from ._core import StoreCore, StoreOptions
from ._errors import StoreUnavailable
from ._hosting import ReadModelFactory
from ._location import StoreLocation
from ._sqlite_errors import translate_sqlite_error
from ._sqlite_runner import begin_immediate, busy_ms, run_on_thread
from ._sqlite_schema import check_header, ensure_schema
from ._sqlite_writes import SQLiteQueries

__all__ = ["SQLiteStore"]

_F = TypeVar("_F")


class SQLiteStore(StoreCore):
    """The embedded event store on one SQLite file (or in memory).

    Open it with ``eventstore.open_store``; this constructor does no I/O.
    """

    def __init__(self, location: StoreLocation, options: StoreOptions) -> None:
        super().__init__(
            location, str(location.path) if location.path else "the in-memory store", options
        )
        self._synchronous = {"normal": "NORMAL", "full": "FULL"}[options.durability]
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queries = SQLiteQueries(options.codec, self._where, self._lock_timeout, self._clock)

    def host_read_model(self, factory: ReadModelFactory[_F]) -> _F:
        """A read model in the same file, or in memory for an in-memory store."""
        if self.path is None:
            return factory.in_memory()
        return factory.sqlite_file(self.path, self._lock_timeout)

    async def _connect(self) -> None:
        path = self._location.path
        if path is not None:
            exists = await anyio.to_thread.run_sync(check_header, path)
            if not exists:
                if not self._options.create:
                    raise StoreUnavailable(
                        f"there is no runlog database at {path}; pass create=True to make one"
                    )
                await anyio.to_thread.run_sync(_make_parent, path)
        target = str(path) if path is not None else ":memory:"
        try:
            self._writer = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self._where) from exc
        await run_on_thread(self._writer, self._where, self._init_writer)
        if path is None:
            self._reader = self._writer  # an in-memory database exists only for its one connection
            return
        self._reader = await aiosqlite.connect(target, isolation_level=None)
        await run_on_thread(self._reader, self._where, self._init_reader)

    def _init_writer(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {busy_ms(self._lock_timeout)}")
        ensure_schema(db, self._where, lambda c: begin_immediate(c, self._lock_timeout))
        if self._location.path is not None:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")

    def _init_reader(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {int(self._lock_timeout * 1000)}")
        db.execute("PRAGMA query_only = 1")

    async def _disconnect(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    def _read(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return run_on_thread(self._connection(self._reader), self._where, fn, *args)

    def _write(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return run_on_thread(self._connection(self._writer), self._where, fn, *args)

    def _connection(self, conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        self._check_open()
        assert conn is not None  # open stores have both connections
        return conn


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the directory for {path}: {exc}") from exc
