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
import contextlib
import hashlib
import os
import struct
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg

from ._batch import StoredIds, encode_batch, retried_append
from ._chain import GENESIS_HASH
from ._codec import EventCodec
from ._errors import (
    CorruptStore,
    InvalidArgument,
    StoreBusy,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    WrongExpectedVersion,
)
from ._events import Event
from ._import import check_imported, plan_import
from ._location import StoreLocation
from ._postgres_files import restore_file, store_file
from ._postgres_schema import APPEND_LOCK, Connection, ensure_schema
from ._sqlite import (
    _check_expected,
    _check_range,
    _check_size,
    _check_stream,
    _hash_file,
    _satisfies,
)
from ._subscription import Subscription
from ._types import (
    AppendResult,
    ExpectedVersion,
    ImportResult,
    NewEvent,
    RecordedEvent,
    StoredEvent,
    StreamInfo,
)

__all__ = ["CHANNEL", "PostgresStore", "is_transient", "translate_postgres_error"]

_T = TypeVar("_T")
_PAGE = 1000
_POOL_SIZE = 4
CHANNEL = "runlog_appended"
"""The LISTEN/NOTIFY channel every append notifies on, with its last position."""
_HEADER = struct.Struct(">qqqH")  # must match _chain.chain_hash
_STATE = (
    "SELECT s.stream_id, s.version, h.position, h.recorded_at, h.hash FROM (SELECT 1) AS one "
    "LEFT JOIN streams s ON s.name = $1 "
    "LEFT JOIN (SELECT position, recorded_at, hash FROM events ORDER BY position DESC LIMIT 1) h "
    "ON true"
)
# One round trip for the whole batch: positions and versions follow the array index.
_INSERT = (
    "INSERT INTO events (position, stream_id, version, event_id, recorded_at, data, hash) "
    "SELECT $1::bigint + i, $2::bigint, $3::bigint + i, e, $4::bigint, d, h "
    "FROM unnest($5::bytea[], $6::bytea[], $7::bytea[]) WITH ORDINALITY AS t(e, d, h, i)"
)
_COPY_FROM = 256  # batches this large go in by binary COPY, which is faster still
_COLUMNS = ("position", "stream_id", "version", "event_id", "recorded_at", "data", "hash")

# Errors after which a new connection may well succeed: the connection broke, the
# server is restarting or shed the session.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    *_TRANSIENT,
)
_CAUGHT: tuple[type[BaseException], ...] = (*_DRIVER_ERRORS, asyncpg.InternalClientError)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` is a broken or refused connection that a retry may get past."""
    if isinstance(exc, _TRANSIENT):
        return True
    # asyncpg reports use of a connection the server already closed this way.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def translate_postgres_error(exc: BaseException, where: str) -> StoreError:
    """The runlog error for an asyncpg (or socket) error raised while using ``where``."""
    if isinstance(exc, (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError)):
        return StoreBusy(
            f"{where}: other writers held the append lock for longer than lock_timeout; nothing "
            "was written. Retry, or raise lock_timeout when opening the store."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StoreUnavailable(
            f"{where} does not exist ({exc}); create it (CREATE DATABASE) or open the store "
            "with create=True and a user allowed to create databases"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return StoreUnavailable(
            f"{where} refused the login ({exc}); check the user and password in the URL, "
            "PGPASSWORD or ~/.pgpass, and the server's pg_hba.conf"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StoreUnavailable(
            f"{where}: permission denied ({exc}); grant the user access to the database"
        )
    if isinstance(exc, asyncpg.InsufficientResourcesError):
        return StoreUnavailable(f"{where}: the server is out of resources ({exc}); retry later")
    if isinstance(exc, asyncpg.InternalServerError):
        return CorruptStore(f"{where}: the server reports damage ({exc}); restore from a backup")
    if isinstance(exc, asyncpg.ObjectNotInPrerequisiteStateError):
        return StoreUnavailable(f"{where} does not accept connections now ({exc}); retry later")
    if is_transient(exc):
        return StoreUnavailable(
            f"{where} cannot be reached ({type(exc).__name__}: {exc}); check that the server "
            "is running and the URL's host and port. Nothing unacknowledged was kept; "
            "retrying an append with the same NewEvent ids is safe."
        )
    if isinstance(exc, asyncpg.RestrictViolationError):
        return StoreError(f"{where}: {exc}")
    return StoreError(f"{where}: unexpected PostgreSQL error {type(exc).__name__}: {exc}")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    asyncpg's default reset costs a round trip per operation (``RESET ALL``,
    ``UNLISTEN *``, ...) to undo session state this store never sets; the pool still
    rolls back a transaction left open (a cancelled operation) before this runs.
    """


def _broken(conn: Connection) -> bool:
    """True if ``conn`` was closed under us (the pool then takes it back by itself)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


def _discard(conn: Connection) -> None:
    """Close ``conn`` so the pool replaces it; harmless if it is closed already."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def _display(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _dsn(url: str) -> str:
    """The URL asyncpg takes (it knows no ``+asyncpg`` driver suffix)."""
    scheme, sep, rest = url.partition("://")
    return ("postgresql" + sep + rest) if scheme == "postgresql+asyncpg" else url


class PostgresStore:
    """The event store in a PostgreSQL database, shared by any number of processes.

    Open it with ``eventstore.open_store("postgresql://user@host/db")``; this
    constructor does no I/O.
    """

    def __init__(
        self,
        location: StoreLocation,
        *,
        codec: EventCodec,
        create: bool,
        lock_timeout: float,
        max_event_bytes: int,
        durability: str,
        poll_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._location = location
        self._dsn = _dsn(location.url)
        self._codec = codec
        self._create = create
        self._lock_timeout = lock_timeout
        self._max_event_bytes = max_event_bytes
        self._durability = durability
        self._poll_interval = poll_interval
        self._clock = clock
        self._state = "new"
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._names: dict[int, str] = {}
        # asyncio, not anyio: asyncpg's notification callbacks run outside any task.
        self._appended = asyncio.Event()
        self._where = f"the PostgreSQL database {_display(location.url)}"

    # --- lifetime -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where the store lives, as a URL (with its password, if it has one)."""
        return self._location.url

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded event this store accepts."""
        return self._max_event_bytes

    @property
    def path(self) -> None:
        """Always None: the log lives on a server, not in a file."""
        return None

    def _settings(self) -> dict[str, str]:
        settings = {
            "application_name": "runlog",
            # Bounds the wait for the append lock (advisory locks obey it too).
            "lock_timeout": str(max(1, int(self._lock_timeout * 1000))),
        }
        if self._durability == "full":
            settings["synchronous_commit"] = "on"
        return settings

    async def _open(self) -> Self:
        if self._state != "new":
            raise StoreError("a store object is opened once; call open_store() again")
        try:
            try:
                self._pool = await self._create_pool()
            except asyncpg.InvalidCatalogNameError:
                if not self._create:
                    raise
                await self._create_database()
                self._pool = await self._create_pool()
            async with self._pool.acquire() as conn:
                await ensure_schema(conn, self._where)
        except BaseException as exc:
            await self._close_connections()
            if isinstance(exc, _DRIVER_ERRORS):
                raise translate_postgres_error(exc, self._where) from exc
            raise
        self._state = "open"
        return self

    async def _create_pool(self) -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=_POOL_SIZE,
            server_settings=self._settings(),
            timeout=max(1.0, min(self._lock_timeout, 30.0)),
            reset=_keep_session,
        )
        assert pool is not None
        return pool

    async def _create_database(self) -> None:
        parts = urlsplit(self._dsn)
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

    async def aclose(self) -> None:
        """Close the connections; idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._wake()
        with anyio.CancelScope(shield=True):
            await self._close_connections()

    async def _close_connections(self) -> None:
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()
        if pool is not None:
            try:
                with anyio.fail_after(10):
                    await pool.close()
            except _DRIVER_ERRORS:
                pool.terminate()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._state == "open":
            warnings.warn(
                f"runlog store {_display(self.url)} was not closed; use 'async with "
                "open_store(...)' or 'await store.aclose()'",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"<PostgresStore {_display(self.url)} {self._state}>"

    def _checked_pool(self) -> asyncpg.Pool:
        if self._state != "open" or self._pool is None:
            raise StoreClosed(
                f"the store {_display(self.url)} is "
                f"{'closed' if self._state == 'closed' else 'not open'}; "
                "open it with 'async with open_store(...)'"
            )
        return self._pool

    async def _run(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run ``fn(connection, *args)`` on a pooled connection, translating errors.

        A broken connection is replaced and ``fn`` run again, for up to ``lock_timeout``
        seconds: every operation is a read, or an append made idempotent by its event ids.
        """
        deadline = time.monotonic() + self._lock_timeout
        delay = 0.05
        while True:
            pool = self._checked_pool()
            try:
                async with pool.acquire() as conn:
                    try:
                        return await fn(conn, *args)
                    except _CAUGHT as exc:
                        # Whatever asyncpg calls it, an error that leaves the connection
                        # closed is a lost connection; an idle one killed by the server
                        # can also surface as an InternalClientError (a protocol state
                        # error) on its next use. Drop it, so the pool makes a new one.
                        if (
                            is_transient(exc)
                            or isinstance(exc, asyncpg.InternalClientError)
                            or _broken(conn)
                        ):
                            _discard(conn)
                            raise ConnectionResetError(f"{type(exc).__name__}: {exc}") from exc
                        raise
            except _CAUGHT as exc:
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

    # --- writing -----------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event | NewEvent],
        expected_version: ExpectedVersion = "any",
    ) -> AppendResult:
        """Append ``events`` to ``stream`` atomically, after checking ``expected_version``.

        Raises:
            WrongExpectedVersion: the stream is not at the expected version.
            EventIdConflict: an event id is already stored with other content, or only
                part of a retried batch is stored.
            InvalidEvent: an event cannot be stored (not an event type, unserialisable,
                larger than ``max_event_bytes``).
            InvalidStreamName: ``stream`` is not a valid stream name.
            StoreBusy: other writers held the append lock for longer than ``lock_timeout``.
            StoreUnavailable: the server could not be reached for ``lock_timeout`` seconds;
                the append may or may not have been stored, so retry it with the same ids.
        """
        _check_stream(stream)
        expected = _check_expected(expected_version)
        self._checked_pool()
        ids, datas = encode_batch(self._codec, events, self._max_event_bytes)
        result = await self._run(self._append_tx, stream, ids, datas, expected)
        if result.positions and not result.deduplicated:
            self._wake()
        return result

    async def _append_tx(
        self,
        conn: Connection,
        stream: str,
        ids: list[bytes],
        datas: list[bytes],
        expected: int | str,
    ) -> AppendResult:
        if expected != "any":
            # Versions only grow, so a stream already past what the caller expects
            # fails now as it would under the lock: a losing writer of a contended
            # stream (racing agents' claims) need not queue for the append lock.
            current = await _stream_version(conn, stream)
            if not _satisfies(expected, current):
                stored = await self._find_stored(conn, stream, ids, datas)
                if stored is not None:
                    return stored
                raise WrongExpectedVersion(stream, expected, current)
        try:
            async with conn.transaction():
                # The lock that keeps positions gap-free in commit order (module docstring).
                await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                state = await conn.fetchrow(_STATE, stream)
                assert state is not None  # one row, whatever the tables hold
                stream_id, current, last, last_time, previous = state
                if current is None:
                    current = -1
                if not _satisfies(expected, current):
                    stored = await self._find_stored(conn, stream, ids, datas)
                    if stored is not None:
                        return stored
                    raise WrongExpectedVersion(stream, expected, current)
                if not datas:
                    return AppendResult(stream, (), current)
                if last is None:
                    last, last_time, previous = 0, 0, GENESIS_HASH
                # recorded_at never decreases along positions, even if clocks step back
                # or differ between machines, so "as of time t" is always a prefix.
                now = max(int(self._clock() * 1_000_000), last_time)
                count = len(datas)
                if stream_id is None:
                    stream_id = await conn.fetchval(
                        "INSERT INTO streams (name, version, first_position, last_position) "
                        "VALUES ($1, $2, $3, $4) RETURNING stream_id",
                        stream,
                        count - 1,
                        last + 1,
                        last + count,
                    )
                else:
                    await conn.execute(
                        "UPDATE streams SET version = $1, last_position = $2 WHERE stream_id = $3",
                        current + count,
                        last + count,
                        stream_id,
                    )
                hashes = _chain(stream, last, current, now, previous, ids, datas)
                if count >= _COPY_FROM:
                    await conn.copy_records_to_table(
                        "events",
                        records=[
                            (last + 1 + i, stream_id, current + 1 + i, ids[i], now, datas[i], h)
                            for i, h in enumerate(hashes)
                        ],
                        columns=_COLUMNS,
                    )
                else:
                    await conn.execute(_INSERT, last, stream_id, current, now, ids, datas, hashes)
                # Sent when (and only if) the transaction commits.
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(last + count))
        except asyncpg.UniqueViolationError:
            # Positions and versions are decided under the lock, so only a stored event
            # id can collide: this is a retry of an earlier append (perhaps our own,
            # after a connection broke during its commit).
            stored = await self._find_stored(conn, stream, ids, datas)
            if stored is None:
                raise CorruptStore(
                    f"{self._where}: the streams table disagrees with the events table about "
                    f"{stream!r}; restore the database from a backup"
                ) from None
            return stored
        return AppendResult(stream, tuple(range(last + 1, last + count + 1)), current + count)

    async def _find_stored(
        self, conn: Connection, stream: str, ids: list[bytes], datas: list[bytes]
    ) -> AppendResult | None:
        """The original result if every event of the batch is already stored, else None."""
        return retried_append(stream, ids, datas, await _stored_ids(conn, ids))

    async def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's bytes in the database once by content; return its digest and size.

        The file is read twice (to hash, then to store), a chunk at a time, so its size
        is not limited by memory. Storing content already stored writes nothing.

        Raises:
            InvalidArgument: the file cannot be read, or changed while it was stored.
        """
        source = Path(path)
        digest, size = await anyio.to_thread.run_sync(_hash_file, source)
        await self._run(store_file, source, digest, size)
        return digest, size

    async def get_file(self, digest: str, path: str | os.PathLike[str]) -> int:
        """Write the stored file with ``digest`` to ``path`` (atomically); return its size.

        Raises:
            InvalidArgument: nothing is stored under ``digest``.
            CorruptStore: the stored bytes do not match the digest.
        """
        return await self._run(restore_file, digest, Path(path), self._where)

    # --- reading -----------------------------------------------------------------------

    async def head(self) -> int:
        """The position of the last event, 0 when the log is empty."""
        return await self._run(_head)

    async def stream_version(self, stream: str) -> int:
        """The version of ``stream``'s last event, -1 when it has none."""
        _check_stream(stream)
        return await self._run(_stream_version, stream)

    async def streams(self, prefix: str = "") -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        return await self._run(_streams, prefix)

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it holds no event."""
        _check_stream(stream)
        return await self._run(_stream_info, stream)

    async def read_stream(
        self, stream: str, from_version: int = 0, *, limit: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """The events of ``stream`` from ``from_version`` on, in version order.

        A stream that does not exist yields nothing.
        """
        _check_stream(stream)
        if from_version < 0:
            raise InvalidArgument(f"from_version must be >= 0, got {from_version}")
        if limit is not None and limit < 0:
            raise InvalidArgument(f"limit must be >= 0, got {limit}")
        remaining = limit
        while remaining is None or remaining > 0:
            size = _PAGE if remaining is None else min(_PAGE, remaining)
            page = await self._run(self._stream_page, stream, from_version, size)
            for event in page:
                yield event
            if len(page) < size:
                return
            from_version = page[-1].version + 1
            if remaining is not None:
                remaining -= len(page)

    async def read_all(
        self, from_position: int = 0, *, to_position: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` to ``to_position`` (inclusive), page by page."""
        async for page in self.read_all_pages(from_position, to_position=to_position):
            for event in page:
                yield event

    async def read_all_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = _PAGE
    ) -> AsyncIterator[list[RecordedEvent]]:
        """``read_all`` a page of up to ``size`` events at a time, for bulk consumers."""
        position, last = _check_range(from_position, to_position)
        size = _check_size(size)
        while True:
            page = await self._run(self._page, position, size, last)
            if page:
                yield page
            if len(page) < size:
                return
            position = page[-1].position + 1

    async def read_stored(
        self, from_position: int = 0, *, to_position: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Like ``read_all`` but undecoded, with each event's stored bytes and hash."""
        async for page in self.read_stored_pages(from_position, to_position=to_position):
            for event in page:
                yield event

    async def read_stored_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = _PAGE
    ) -> AsyncIterator[list[StoredEvent]]:
        """``read_stored`` a page of up to ``size`` events at a time, for bulk consumers."""
        position, last = _check_range(from_position, to_position)
        size = _check_size(size)
        while True:
            page = await self._run(self._stored_page, position, size, last)
            if page:
                yield page
            if len(page) < size:
                return
            position = page[-1].position + 1

    async def import_events(self, events: Sequence[StoredEvent]) -> ImportResult:
        """Append events read from another log, keeping their ids, bytes, versions and times.

        The same rules as ``SQLiteStore.import_events``: ids already stored with the same
        content are skipped, each stream must be one version behind its next event, a
        time older than the head is raised to it, and the batch is one transaction.

        Raises:
            EventIdConflict: an event id is stored here with other content.
            WrongExpectedVersion: a stream here is not one version behind the event.
            EventTooLarge: an event is over this store's ``max_event_bytes``.
        """
        rows = check_imported(events, self._max_event_bytes)
        # A retry after a lost connection is safe: the ids make the batch idempotent.
        return await self._run(self._import_tx, rows)

    async def _import_tx(self, conn: Connection, rows: list[StoredEvent]) -> ImportResult:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            known = await _stored_ids(conn, [stored.event_id_bytes for stored in rows])
            head = await conn.fetchrow(
                "SELECT position, recorded_at, hash FROM events ORDER BY position DESC LIMIT 1"
            )
            ids: dict[str, int] = {}
            versions: dict[str, int] = {}
            for stream_id, name, version in await conn.fetch(
                "SELECT stream_id, name, version FROM streams WHERE name = ANY($1::text[])",
                sorted({stored.stream for stored in rows}),
            ):
                ids[name], versions[name] = stream_id, version
            plan = plan_import(rows, known, versions, tuple(head) if head else None)
            for name, (version, first, last) in plan.new_streams.items():
                ids[name] = await conn.fetchval(
                    "INSERT INTO streams (name, version, first_position, last_position) "
                    "VALUES ($1, $2, $3, $4) RETURNING stream_id",
                    name,
                    version,
                    first,
                    last,
                )
            for name, (version, last) in plan.moved_streams.items():
                await conn.execute(
                    "UPDATE streams SET version = $1, last_position = $2 WHERE stream_id = $3",
                    version,
                    last,
                    ids[name],
                )
            if plan.rows:
                await conn.copy_records_to_table(
                    "events",
                    records=[
                        (
                            r.position,
                            ids[r.stream],
                            r.version,
                            r.event_id,
                            r.recorded_at_us,
                            r.data,
                            r.hash,
                        )
                        for r in plan.rows
                    ],
                    columns=_COLUMNS,
                )
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(plan.head))
        return ImportResult(len(plan.rows), plan.skipped, plan.times_raised, plan.head)

    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at ``positions``, in the order given; a missing position raises.

        Raises:
            InvalidArgument: a position is below 1 or beyond the head.
        """
        wanted = list(positions)
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in wanted):
            raise InvalidArgument("positions are integers >= 1")
        return await self._run(self._at_positions, wanted)

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us`` (0 if none was).

        ``recorded_at`` never decreases along positions, so this is where the log stood
        at that time.
        """
        return await self._run(_position_at, recorded_at_us)

    def subscribe(
        self, from_position: int = 0, *, poll_interval: float | None = None
    ) -> Subscription:
        """Catch up from ``from_position``, then follow new appends from any process.

        Appends through this store object wake the subscription at once, appends by
        other processes as soon as their NOTIFY arrives, and in any case within
        ``poll_interval`` seconds (a lost notification delays an event, never loses it).
        """
        self._checked_pool()
        return Subscription(self, from_position, poll_interval or self._poll_interval)

    async def _read_page(self, from_position: int, limit: int) -> list[RecordedEvent]:
        return await self._run(self._page, from_position, limit, None)

    async def _wait_for_append(self, patience: float) -> None:
        if self._state != "open":
            return
        appended = self._appended
        if not await self._ensure_listener():
            return  # just started listening: read again before waiting
        with anyio.move_on_after(patience):
            await appended.wait()

    async def _ensure_listener(self) -> bool:
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
                        self._dsn, server_settings={"application_name": "runlog-listen"}
                    )
                    await conn.add_listener(CHANNEL, self._on_notify)
            except _DRIVER_ERRORS:  # TimeoutError is an OSError
                self._listener = None
                return True  # poll until a later wait manages to listen
            if self._state != "open":
                conn.terminate()
                return True
            self._listener = conn
            return False

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake()

    def _wake(self) -> None:
        self._appended.set()
        self._appended = asyncio.Event()

    async def _names_of(self, conn: Connection, stream_ids: set[int]) -> dict[int, str]:
        names = self._names
        missing = [s for s in stream_ids if s not in names]
        if missing:
            for stream_id, name in await conn.fetch(
                "SELECT stream_id, name FROM streams WHERE stream_id = ANY($1::bigint[])", missing
            ):
                names[stream_id] = name
            absent = [s for s in missing if s not in names]
            if absent:
                raise CorruptStore(
                    f"{self._where}: events refer to stream id {absent[0]}, which is missing"
                )
        return names

    async def _page(
        self, conn: Connection, position: int, limit: int, last: int | None
    ) -> list[RecordedEvent]:
        end = position + limit if last is None else min(position + limit, last + 1)
        rows = await conn.fetch(
            "SELECT position, stream_id, version, recorded_at, data FROM events "
            "WHERE position >= $1 AND position < $2 ORDER BY position",
            position,
            end,
        )
        if rows and (rows[0][0] != position or rows[-1][0] != position + len(rows) - 1):
            # Appends are serialised, so a visible row implies every row before it.
            raise CorruptStore(
                f"{self._where}: the log has a gap after position {position}; events were "
                "deleted outside runlog. Restore from a backup."
            )
        names = await self._names_of(conn, {row[1] for row in rows})
        fast = self._codec._decoder.decode
        out: list[RecordedEvent] = []
        append = out.append
        for at, stream_id, version, recorded_at, data in rows:
            try:
                event = fast(data)
            except Exception:
                event = self._codec.decode(data, at)
            append(RecordedEvent(at, names[stream_id], version, recorded_at, event))
        return out

    async def _stream_page(
        self, conn: Connection, stream: str, from_version: int, limit: int
    ) -> list[RecordedEvent]:
        rows = await conn.fetch(
            "SELECT e.position, e.version, e.recorded_at, e.data FROM streams s "
            "JOIN events e ON e.stream_id = s.stream_id "
            "WHERE s.name = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3",
            stream,
            from_version,
            limit,
        )
        decode = self._codec.decode
        return [
            RecordedEvent(position, stream, version, recorded_at, decode(data, position))
            for position, version, recorded_at, data in rows
        ]

    async def _at_positions(self, conn: Connection, wanted: list[int]) -> list[RecordedEvent]:
        rows = await conn.fetch(
            "SELECT position, stream_id, version, recorded_at, data FROM events "
            "WHERE position = ANY($1::bigint[])",
            wanted,
        )
        names = await self._names_of(conn, {row[1] for row in rows})
        decode = self._codec.decode
        found = {
            position: RecordedEvent(
                position, names[stream_id], version, recorded_at, decode(data, position)
            )
            for position, stream_id, version, recorded_at, data in rows
        }
        missing = [p for p in wanted if p not in found]
        if missing:
            raise InvalidArgument(
                f"no event at position {missing[0]}; the head is {await _head(conn)}"
            )
        return [found[p] for p in wanted]

    async def _stored_page(
        self, conn: Connection, position: int, limit: int, last: int | None
    ) -> list[StoredEvent]:
        rows = await conn.fetch(
            "SELECT position, stream_id, version, event_id, recorded_at, data, hash FROM events "
            "WHERE position >= $1 AND position <= $2 ORDER BY position LIMIT $3",
            position,
            last if last is not None else _MAX_POSITION,
            limit,
        )
        names = await self._names_of(conn, {row[1] for row in rows})
        return [StoredEvent(p, names[s], v, e, r, d, h) for p, s, v, e, r, d, h in rows]


_MAX_POSITION = (1 << 63) - 1


async def _stored_ids(conn: Connection, ids: list[bytes]) -> StoredIds:
    if not ids:
        return {}
    return {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in await conn.fetch(
            "SELECT e.event_id, e.position, e.version, s.name, e.data FROM events e "
            "JOIN streams s ON s.stream_id = e.stream_id WHERE e.event_id = ANY($1::bytea[])",
            ids,
        )
    }


def _chain(
    stream: str,
    last: int,
    current: int,
    now: int,
    previous: bytes,
    ids: list[bytes],
    datas: list[bytes],
) -> list[bytes]:
    """The hashes of a batch; ``_chain.chain_hash`` inlined, as this is the append hot path."""
    name = stream.encode()
    pack, blake2b, join = _HEADER.pack, hashlib.blake2b, b"".join
    hashes: list[bytes] = []
    position, version = last, current
    for event_id, data in zip(ids, datas, strict=True):
        position += 1
        version += 1
        previous = blake2b(
            join((previous, pack(position, version, now, len(name)), event_id, name, data)),
            digest_size=32,
        ).digest()
        hashes.append(previous)
    return hashes


async def _head(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))


async def _stream_version(conn: Connection, stream: str) -> int:
    version = await conn.fetchval("SELECT version FROM streams WHERE name = $1", stream)
    return int(version) if version is not None else -1


async def _stream_info(conn: Connection, stream: str) -> StreamInfo | None:
    row = await conn.fetchrow(
        "SELECT name, version, first_position, last_position FROM streams WHERE name = $1",
        stream,
    )
    return StreamInfo(*row) if row else None


async def _streams(conn: Connection, prefix: str) -> list[StreamInfo]:
    # starts_with, not a range on the index: text ranges depend on the collation.
    rows = await conn.fetch(
        "SELECT name, version, first_position, last_position FROM streams "
        "WHERE starts_with(name, $1) ORDER BY first_position",
        prefix,
    )
    return [StreamInfo(name, version, first, last) for name, version, first, last in rows]


async def _position_at(conn: Connection, recorded_at_us: int) -> int:
    # Binary search on the primary key: recorded_at is monotonic along positions, so
    # this costs ~log2(n) index look-ups and needs no index on time.
    low, high = 0, await _head(conn)
    while low < high:
        middle = (low + high + 1) // 2
        at = await conn.fetchval("SELECT recorded_at FROM events WHERE position = $1", middle)
        if at is not None and at <= recorded_at_us:
            low = middle
        else:
            high = middle - 1
    return low
