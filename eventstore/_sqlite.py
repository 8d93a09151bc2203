"""The SQLite backend: one writer connection, one reader connection, WAL.

Each operation is one function run on its connection's thread (aiosqlite's worker),
so an append is a single round trip however many statements it takes: ``BEGIN
IMMEDIATE`` serialises writers across processes, the head is read under that lock
(which keeps positions gap-free and the hash chain linear), the rows go in as
multi-row ``INSERT`` statements, and ``COMMIT`` ends it.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import struct
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import aiosqlite
import anyio

from ._batch import StoredIds, encode_batch, retried_append
from ._chain import GENESIS_HASH
from ._codec import EventCodec
from ._errors import (
    CorruptStore,
    InvalidArgument,
    InvalidStreamName,
    NotARunlogDatabase,
    StoreBusy,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    WrongExpectedVersion,
)
from ._events import Event
from ._import import check_imported, plan_import
from ._location import StoreLocation
from ._sqlite_schema import check_header, ensure_schema
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

__all__ = ["SQLiteStore", "begin_immediate", "run_on_thread", "translate_sqlite_error"]

_T = TypeVar("_T")
_MAX_STREAM_NAME = 1024
_PAGE = 1000
_CHUNK = (
    128  # rows per INSERT statement; remainders use power-of-two sizes so statements stay cached
)
_COLUMNS = 7
_INSERT = {
    size: "INSERT INTO events (position, stream_id, version, event_id, recorded_at, data, hash) VALUES "
    + ",".join(["(?,?,?,?,?,?,?)"] * size)
    for size in (128, 64, 32, 16, 8, 4, 2, 1)
}
_HEADER = struct.Struct(">qqqH")  # must match _chain.chain_hash
_STATE = (
    "SELECT s.stream_id, s.version, h.position, h.recorded_at, h.hash FROM (SELECT 1) "
    "LEFT JOIN streams s ON s.name = ? "
    "LEFT JOIN (SELECT position, recorded_at, hash FROM events ORDER BY position DESC LIMIT 1) h"
)
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_UNAVAILABLE = {
    sqlite3.SQLITE_CANTOPEN: "cannot be opened (check the path and its permissions)",
    sqlite3.SQLITE_FULL: "is on a full disk; free space and retry",
    sqlite3.SQLITE_READONLY: "is read-only for this process; check its permissions",
    sqlite3.SQLITE_IOERR: "had an I/O error; check the disk",
    sqlite3.SQLITE_PERM: "is not accessible to this process; check its permissions",
}


def translate_sqlite_error(exc: sqlite3.Error, where: str) -> StoreError:
    """The runlog error for a ``sqlite3`` error raised while using the store at ``where``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _BUSY:
        return StoreBusy(
            f"{where} stayed locked by other writers; nothing was written. Retry, or raise "
            "lock_timeout when opening the store."
        )
    if primary == sqlite3.SQLITE_CORRUPT:
        return CorruptStore(
            f"{where} is damaged ({exc}); restore it from a backup or export what still reads."
        )
    if primary == sqlite3.SQLITE_NOTADB:
        return NotARunlogDatabase(f"{where} is not a database file ({exc}); it was left untouched.")
    if primary in _UNAVAILABLE:
        name = getattr(exc, "sqlite_errorname", "")
        return StoreUnavailable(f"{where} {_UNAVAILABLE[primary]} ({exc}; {name})")
    return StoreError(f"{where}: unexpected SQLite error {exc} (code {code})")


async def run_on_thread(
    conn: aiosqlite.Connection, where: str, fn: Callable[..., _T], *args: Any
) -> _T:
    """Run ``fn(sqlite3_connection, *args)`` on ``conn``'s thread, translating errors.

    aiosqlite runs every call on its connection's thread through ``_execute``; an
    operation of several statements runs as one call, so it costs one round trip.
    """
    try:
        execute = cast(Callable[..., Awaitable[_T]], conn._execute)
        return await execute(fn, conn._conn, *args)
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
            if exc.sqlite_errorcode & 0xFF not in _BUSY or time.monotonic() >= deadline:
                raise
        # SQLite's own busy handler already waited; jitter keeps waiting processes
        # from retrying in lockstep.
        time.sleep(delay * random.random())
        delay = min(delay * 2, 0.05)


class SQLiteStore:
    """The embedded event store on one SQLite file (or in memory).

    Open it with ``eventstore.open_store``; this constructor does no I/O.
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
        self._codec = codec
        self._create = create
        self._lock_timeout = lock_timeout
        self._max_event_bytes = max_event_bytes
        self._synchronous = {"normal": "NORMAL", "full": "FULL"}[durability]
        self._poll_interval = poll_interval
        self._clock = clock
        self._state = "new"
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._names: dict[int, str] = {}
        self._appended = anyio.Event()
        self._where = str(location.path) if location.path else "the in-memory store"

    # --- lifetime -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where the store lives, as a URL."""
        return self._location.url

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded event this store accepts."""
        return self._max_event_bytes

    @property
    def path(self) -> Path | None:
        """The database file, None for an in-memory store."""
        return self._location.path

    async def _open(self) -> Self:
        if self._state != "new":
            raise StoreError("a store object is opened once; call open_store() again")
        path = self._location.path
        if path is not None:
            exists = await anyio.to_thread.run_sync(check_header, path)
            if not exists:
                if not self._create:
                    raise StoreUnavailable(
                        f"there is no runlog database at {path}; pass create=True to make one"
                    )
                await anyio.to_thread.run_sync(_make_parent, path)
        target = str(path) if path is not None else ":memory:"
        try:
            self._writer = await aiosqlite.connect(target, isolation_level=None)
            await self._run(self._writer, self._init_writer)
            if path is not None:
                self._reader = await aiosqlite.connect(target, isolation_level=None)
                await self._run(self._reader, self._init_reader)
            else:
                # An in-memory database exists only for its one connection.
                self._reader = self._writer
        except BaseException:
            await self._close_connections()
            raise
        self._state = "open"
        return self

    def _init_writer(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {_busy_ms(self._lock_timeout)}")
        ensure_schema(db, self._where, lambda c: begin_immediate(c, self._lock_timeout))
        if self._location.path is not None:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")

    def _init_reader(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {int(self._lock_timeout * 1000)}")
        db.execute("PRAGMA query_only = 1")

    async def aclose(self) -> None:
        """Close both connections; idempotent. Waits for operations already submitted."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._appended.set()
        with anyio.CancelScope(shield=True):
            await self._close_connections()

    async def _close_connections(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

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
                f"runlog store {self.url} was not closed; use 'async with open_store(...)' "
                "or 'await store.aclose()'",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.url} {self._state}>"

    async def _run(self, conn: aiosqlite.Connection, fn: Callable[..., _T], *args: Any) -> _T:
        return await run_on_thread(conn, self._where, fn, *args)

    def _connection(self, writer: bool) -> aiosqlite.Connection:
        conn = self._writer if writer else self._reader
        if self._state != "open" or conn is None:
            raise StoreClosed(
                f"the store {self.url} is {'closed' if self._state == 'closed' else 'not open'}; "
                "open it with 'async with open_store(...)'"
            )
        return conn

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
            StoreBusy: other writers held the lock for longer than ``lock_timeout``.
        """
        _check_stream(stream)
        expected = _check_expected(expected_version)
        conn = self._connection(writer=True)
        ids, datas = encode_batch(self._codec, events, self._max_event_bytes)
        result = await self._run(conn, self._append_tx, stream, ids, datas, expected)
        if result.positions and not result.deduplicated:
            self._appended.set()
            self._appended = anyio.Event()
        return result

    def _append_tx(
        self,
        db: sqlite3.Connection,
        stream: str,
        ids: list[bytes],
        datas: list[bytes],
        expected: int | str,
    ) -> AppendResult:
        begin_immediate(db, self._lock_timeout)
        try:
            # One statement for the stream's state and the log's head, read under the lock.
            stream_id, current, last, last_time, previous = db.execute(_STATE, (stream,)).fetchone()
            if current is None:
                current = -1
            if not _satisfies(expected, current):
                stored = self._find_stored(db, stream, ids, datas)
                if stored is not None:
                    return stored
                raise WrongExpectedVersion(stream, expected, current)
            if not datas:
                return AppendResult(stream, (), current)
            if last is None:
                last, last_time, previous = 0, 0, GENESIS_HASH
            # recorded_at never decreases along positions, even if clocks step back,
            # so "as of time t" is always a prefix of the log.
            now = max(int(self._clock() * 1_000_000), last_time)
            count = len(datas)
            if stream_id is None:
                cursor = db.execute(
                    "INSERT INTO streams (name, version, first_position, last_position) "
                    "VALUES (?, ?, ?, ?)",
                    (stream, count - 1, last + 1, last + count),
                )
                assert cursor.lastrowid is not None
                stream_id = cursor.lastrowid
            else:
                db.execute(
                    "UPDATE streams SET version = ?, last_position = ? WHERE stream_id = ?",
                    (current + count, last + count, stream_id),
                )
            rows = _chain_rows(stream, stream_id, last, current, now, previous, ids, datas)
            _insert(db, rows, count)
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            # Only a stored event id can collide here (positions and versions are
            # decided under the write lock): this is a retry of an earlier append.
            db.execute("ROLLBACK")
            db.execute("BEGIN")
            try:
                stored = self._find_stored(db, stream, ids, datas)
            finally:
                db.execute("ROLLBACK")
            if stored is None:
                raise CorruptStore(
                    f"{self._where}: the streams table disagrees with the events table about "
                    f"{stream!r}; restore the file from a backup"
                ) from None
            return stored
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        return AppendResult(stream, tuple(range(last + 1, last + count + 1)), current + count)

    def _find_stored(
        self, db: sqlite3.Connection, stream: str, ids: list[bytes], datas: list[bytes]
    ) -> AppendResult | None:
        """The original result if every event of the batch is already stored, else None."""
        return retried_append(stream, ids, datas, _stored_ids(db, ids))

    async def import_events(self, events: Sequence[StoredEvent]) -> ImportResult:
        """Append events read from another log, keeping their ids, bytes, versions and times.

        This is how an exported log is restored or shipped to another store exactly
        once: an event whose id is already stored (with the same stream, version and
        bytes) is skipped. Each new event goes at the end of this log with its original
        stream version, so the target stream must be exactly one version behind it.
        ``recorded_at`` is kept unless it is older than this log's last event, where it
        is raised to that time (times never decrease along positions). The batch is one
        transaction. Into an empty store, a whole exported log gets back its positions
        and therefore its hashes.

        Raises:
            EventIdConflict: an event id is stored here with other content.
            WrongExpectedVersion: a stream here is not one version behind the event.
            EventTooLarge: an event is over this store's ``max_event_bytes``.
        """
        rows = check_imported(events, self._max_event_bytes)
        result = await self._run(self._connection(writer=True), self._import_tx, rows)
        if result.added:
            self._appended.set()
            self._appended = anyio.Event()
        return result

    def _import_tx(self, db: sqlite3.Connection, rows: list[StoredEvent]) -> ImportResult:
        begin_immediate(db, self._lock_timeout)
        try:
            known = _stored_ids(db, [stored.event_id_bytes for stored in rows])
            head = db.execute(
                "SELECT position, recorded_at, hash FROM events ORDER BY position DESC LIMIT 1"
            ).fetchone()
            ids: dict[str, int] = {}
            versions: dict[str, int] = {}
            for name in {stored.stream for stored in rows}:
                row = db.execute(
                    "SELECT stream_id, version FROM streams WHERE name = ?", (name,)
                ).fetchone()
                if row is not None:
                    ids[name], versions[name] = row
            plan = plan_import(rows, known, versions, head)
            for name, (version, first, last) in plan.new_streams.items():
                cursor = db.execute(
                    "INSERT INTO streams (name, version, first_position, last_position) "
                    "VALUES (?, ?, ?, ?)",
                    (name, version, first, last),
                )
                assert cursor.lastrowid is not None
                ids[name] = cursor.lastrowid
            for name, (version, last) in plan.moved_streams.items():
                db.execute(
                    "UPDATE streams SET version = ?, last_position = ? WHERE stream_id = ?",
                    (version, last, ids[name]),
                )
            db.executemany(
                _INSERT[1],
                [
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
            )
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        return ImportResult(len(plan.rows), plan.skipped, plan.times_raised, plan.head)

    # --- reading -----------------------------------------------------------------------

    async def head(self) -> int:
        """The position of the last event, 0 when the log is empty."""
        return await self._run(self._connection(writer=False), _head)

    async def stream_version(self, stream: str) -> int:
        """The version of ``stream``'s last event, -1 when it has none."""
        _check_stream(stream)
        return await self._run(self._connection(writer=False), _stream_version, stream)

    async def streams(self, prefix: str = "") -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        return await self._run(self._connection(writer=False), _streams, prefix)

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
            page = await self._run(
                self._connection(writer=False), self._stream_page, stream, from_version, size
            )
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
            page = await self._run(self._connection(writer=False), self._page, position, size, last)
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
            page = await self._run(
                self._connection(writer=False), self._stored_page, position, size, last
            )
            if page:
                yield page
            if len(page) < size:
                return
            position = page[-1].position + 1

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it holds no event."""
        _check_stream(stream)
        return await self._run(self._connection(writer=False), _stream_info, stream)

    async def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's bytes once by content; return its digest and size.

        The file is read twice (to hash, then to store), a chunk at a time, so its size
        is not limited by memory. Storing content already stored writes nothing.
        """
        source = Path(path)
        digest, size = await anyio.to_thread.run_sync(_hash_file, source)
        await self._run(self._connection(writer=True), self._put_file, source, digest, size)
        return digest, size

    async def get_file(self, digest: str, path: str | os.PathLike[str]) -> int:
        """Write the stored file with ``digest`` to ``path`` (atomically); return its size.

        Raises:
            InvalidArgument: nothing is stored under ``digest``.
        """
        target = Path(path)
        return await self._run(
            self._connection(writer=False), _get_file, digest, target, self._where
        )

    def _put_file(self, db: sqlite3.Connection, source: Path, digest: str, size: int) -> None:
        if db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone():
            return
        begin_immediate(db, self._lock_timeout)
        try:
            if db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone() is None:
                hasher = hashlib.blake2b(digest_size=32)
                seq = 0
                with source.open("rb") as file:
                    while chunk := file.read(_BLOB_CHUNK):
                        hasher.update(chunk)
                        db.execute("INSERT INTO blob_chunks VALUES (?, ?, ?)", (digest, seq, chunk))
                        seq += 1
                if _BLOB_PREFIX + hasher.hexdigest() != digest:
                    raise InvalidArgument(
                        f"{source} changed while it was being saved; save it again"
                    )
                db.execute("INSERT INTO blobs VALUES (?, ?, ?)", (digest, size, seq))
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at ``positions``, in the order given; a missing position raises.

        Raises:
            InvalidArgument: a position is below 1 or beyond the head.
        """
        wanted = list(positions)
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in wanted):
            raise InvalidArgument("positions are integers >= 1")
        return await self._run(self._connection(writer=False), self._at_positions, wanted)

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us`` (0 if none was).

        ``recorded_at`` never decreases along positions, so this is where the log stood
        at that time.
        """
        return await self._run(self._connection(writer=False), _position_at, recorded_at_us)

    def subscribe(
        self, from_position: int = 0, *, poll_interval: float | None = None
    ) -> Subscription:
        """Catch up from ``from_position``, then follow new appends from any process.

        Appends through this store object wake the subscription at once; appends by
        other processes are seen within ``poll_interval`` seconds.
        """
        self._connection(writer=False)
        return Subscription(self, from_position, poll_interval or self._poll_interval)

    async def _read_page(self, from_position: int, limit: int) -> list[RecordedEvent]:
        return await self._run(
            self._connection(writer=False), self._page, from_position, limit, None
        )

    async def _wait_for_append(self, patience: float) -> None:
        if self._state != "open":
            return
        with anyio.move_on_after(patience):
            await self._appended.wait()

    def _name(self, db: sqlite3.Connection, stream_id: int) -> str:
        name = self._names.get(stream_id)
        if name is None:
            row = db.execute(
                "SELECT name FROM streams WHERE stream_id = ?", (stream_id,)
            ).fetchone()
            if row is None:
                raise CorruptStore(
                    f"{self._where}: events refer to stream id {stream_id}, which is missing"
                )
            name = self._names[stream_id] = row[0]
        return name

    def _page(
        self, db: sqlite3.Connection, position: int, limit: int, last: int | None
    ) -> list[RecordedEvent]:
        # Positions are gap-free, so rows in [position, position + limit) are those
        # positions in order, and the column need not be fetched (a replay reads
        # millions). A short page is checked against max(position) in the same
        # snapshot, so a damaged log raises instead of being mislabelled.
        end = position + limit if last is None else min(position + limit, last + 1)
        db.execute("BEGIN")
        try:
            rows = db.execute(
                "SELECT stream_id, version, recorded_at, data FROM events "
                "WHERE position >= ? AND position < ? ORDER BY position",
                (position, end),
            ).fetchall()
            if len(rows) < end - position:
                found = db.execute(
                    "SELECT count(*), max(position) FROM events WHERE position >= ? AND position < ?",
                    (position, end),
                ).fetchone()
                if found[0] and found[1] != position + found[0] - 1:
                    raise CorruptStore(
                        f"{self._where}: the log has a gap between positions {position} and "
                        f"{found[1]}; events were deleted outside runlog. Restore from a backup."
                    )
        finally:
            db.execute("COMMIT")
        names = self._names
        fast = self._codec._decoder.decode
        out: list[RecordedEvent] = []
        append = out.append
        for stream_id, version, recorded_at, data in rows:
            name = names.get(stream_id) or self._name(db, stream_id)
            try:
                event = fast(data)
            except Exception:
                event = self._codec.decode(data, position)
            append(RecordedEvent(position, name, version, recorded_at, event))
            position += 1
        return out

    def _stream_page(
        self, db: sqlite3.Connection, stream: str, from_version: int, limit: int
    ) -> list[RecordedEvent]:
        row = db.execute("SELECT stream_id FROM streams WHERE name = ?", (stream,)).fetchone()
        if row is None:
            return []
        rows = db.execute(
            "SELECT position, version, recorded_at, data FROM events "
            "WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?",
            (row[0], from_version, limit),
        ).fetchall()
        decode = self._codec.decode
        return [
            RecordedEvent(position, stream, version, recorded_at, decode(data, position))
            for position, version, recorded_at, data in rows
        ]

    def _at_positions(self, db: sqlite3.Connection, wanted: list[int]) -> list[RecordedEvent]:
        found: dict[int, RecordedEvent] = {}
        decode = self._codec.decode
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for position, stream_id, version, recorded_at, data in db.execute(
                "SELECT position, stream_id, version, recorded_at, data FROM events "
                f"WHERE position IN ({marks})",
                chunk,
            ):
                found[position] = RecordedEvent(
                    position,
                    self._name(db, stream_id),
                    version,
                    recorded_at,
                    decode(data, position),
                )
        missing = [p for p in wanted if p not in found]
        if missing:
            raise InvalidArgument(f"no event at position {missing[0]}; the head is {_head(db)}")
        return [found[p] for p in wanted]

    def _stored_page(
        self, db: sqlite3.Connection, position: int, limit: int, last: int | None
    ) -> list[StoredEvent]:
        columns = (
            "SELECT position, stream_id, version, event_id, recorded_at, data, hash FROM events"
        )
        if last == position:
            # A lookup, not a range scan, which would read on into the next page: an audit
            # of a damaged file reads single events to find where the damage starts.
            rows = db.execute(f"{columns} WHERE position = ?", (position,)).fetchall()
        else:
            rows = db.execute(
                f"{columns} WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?",
                (position, last if last is not None else _MAX_POSITION, limit),
            ).fetchall()
        names = self._names
        return [
            StoredEvent(p, names.get(s) or self._name(db, s), v, e, r, d, h)
            for p, s, v, e, r, d, h in rows
        ]


_MAX_POSITION = (1 << 63) - 1


def _busy_ms(lock_timeout: float) -> int:
    # Short, so that begin_immediate's jittered retries share the lock fairly and
    # its deadline (lock_timeout) is what the caller waits at most.
    return max(1, min(int(lock_timeout * 1000), 50))


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the directory for {path}: {exc}") from exc


def _chain_rows(
    stream: str,
    stream_id: int,
    last: int,
    current: int,
    now: int,
    previous: bytes,
    ids: list[bytes],
    datas: list[bytes],
) -> list[object]:
    # chain_hash() inlined: this loop is the append hot path.
    name = stream.encode()
    pack, blake2b, join = _HEADER.pack, hashlib.blake2b, b"".join
    rows: list[object] = []
    extend = rows.extend
    position, version = last, current
    for event_id, data in zip(ids, datas, strict=True):
        position += 1
        version += 1
        previous = blake2b(
            join((previous, pack(position, version, now, len(name)), event_id, name, data)),
            digest_size=32,
        ).digest()
        extend((position, stream_id, version, event_id, now, data, previous))
    return rows


def _insert(db: sqlite3.Connection, rows: list[object], count: int) -> None:
    start = 0
    while count:
        size = _CHUNK if count >= _CHUNK else 1 << (count.bit_length() - 1)
        end = start + size * _COLUMNS
        db.execute(_INSERT[size], rows[start:end])
        start = end
        count -= size


def _head(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT max(position) FROM events").fetchone()
    return int(row[0] or 0)


def _position_at(db: sqlite3.Connection, recorded_at_us: int) -> int:
    # Binary search on the primary key: recorded_at is monotonic along positions,
    # so this costs ~log2(n) row look-ups and needs no index on time.
    low, high = 0, _head(db)
    while low < high:
        middle = (low + high + 1) // 2
        row = db.execute("SELECT recorded_at FROM events WHERE position = ?", (middle,)).fetchone()
        if row is not None and row[0] <= recorded_at_us:
            low = middle
        else:
            high = middle - 1
    return low


_BLOB_CHUNK = 1 << 20
_BLOB_PREFIX = "blake2b-256:"


def _hash_file(path: Path) -> tuple[str, int]:
    hasher = hashlib.blake2b(digest_size=32)
    size = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(_BLOB_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from exc
    return _BLOB_PREFIX + hasher.hexdigest(), size


def _get_file(db: sqlite3.Connection, digest: str, target: Path, where: str) -> int:
    row = db.execute("SELECT size, chunks FROM blobs WHERE digest = ?", (digest,)).fetchone()
    if row is None:
        raise InvalidArgument(f"no file with digest {digest} is stored in {where}")
    size, chunks = row
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.runlog-partial")
    hasher = hashlib.blake2b(digest_size=32)
    with partial.open("wb") as file:
        for seq in range(chunks):
            (data,) = db.execute(
                "SELECT data FROM blob_chunks WHERE digest = ? AND seq = ?", (digest, seq)
            ).fetchone()
            hasher.update(data)
            file.write(data)
    if _BLOB_PREFIX + hasher.hexdigest() != digest:
        partial.unlink()
        raise CorruptStore(f"{where}: the stored file {digest} does not match its digest")
    os.replace(partial, target)
    return int(size)


def _stream_info(db: sqlite3.Connection, stream: str) -> StreamInfo | None:
    row = db.execute(
        "SELECT name, version, first_position, last_position FROM streams WHERE name = ?",
        (stream,),
    ).fetchone()
    return StreamInfo(*row) if row else None


def _stream_version(db: sqlite3.Connection, stream: str) -> int:
    row = db.execute("SELECT version FROM streams WHERE name = ?", (stream,)).fetchone()
    return int(row[0]) if row else -1


def _streams(db: sqlite3.Connection, prefix: str) -> list[StreamInfo]:
    # Range scan on the UNIQUE(name) index; LIKE would need escaping and case rules.
    upper = prefix + "\U0010ffff"
    rows = db.execute(
        "SELECT name, version, first_position, last_position FROM streams "
        "WHERE name >= ? AND name < ? ORDER BY first_position",
        (prefix, upper),
    ).fetchall()
    return [StreamInfo(name, version, first, last) for name, version, first, last in rows]


def _check_stream(stream: object) -> None:
    if not isinstance(stream, str):
        raise InvalidStreamName(f"a stream name is a string, not {type(stream).__name__}")
    if not stream or len(stream) > _MAX_STREAM_NAME or "\x00" in stream:
        raise InvalidStreamName(
            f"stream names are 1 to {_MAX_STREAM_NAME} characters without NUL; got {stream!r:.80}"
        )


def _check_expected(expected: object) -> int | str:
    if isinstance(expected, bool) or not isinstance(expected, (int, str)):
        raise InvalidArgument(
            f"expected_version is 'any', 'no_stream', 'exists' or a version number, not {expected!r}"
        )
    if isinstance(expected, str):
        if expected not in ("any", "no_stream", "exists"):
            raise InvalidArgument(
                f"expected_version {expected!r} is unknown; use 'any', 'no_stream', 'exists' or "
                "a version number"
            )
        return expected
    if expected < -1:
        raise InvalidArgument(f"expected_version must be >= -1, got {expected}")
    return expected


def _satisfies(expected: int | str, current: int) -> bool:
    if expected == "any":
        return True
    if expected == "no_stream":
        return current == -1
    if expected == "exists":
        return current >= 0
    return expected == current


def _check_range(from_position: int, to_position: int | None) -> tuple[int, int | None]:
    if from_position < 0:
        raise InvalidArgument(f"from_position must be >= 0, got {from_position}")
    if to_position is not None and to_position < 0:
        raise InvalidArgument(f"to_position must be >= 0, got {to_position}")
    return max(from_position, 1), to_position


def _check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InvalidArgument(f"size must be a positive int, got {size!r}")
    return size


def _stored_ids(db: sqlite3.Connection, ids: list[bytes]) -> StoredIds:
    found: StoredIds = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for event_id, position, version, name, data in db.execute(
            "SELECT e.event_id, e.position, e.version, s.name, e.data FROM events e "
            f"JOIN streams s ON s.stream_id = e.stream_id WHERE e.event_id IN ({marks})",
            chunk,
        ):
            found[event_id] = (position, version, name, data)
    return found
