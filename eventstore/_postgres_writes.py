"""The PostgreSQL backend's writes: append, import and files, each one transaction.

Every append takes one transaction-level advisory lock before it reads the head and
holds it until its transaction ends, so positions are gap-free in commit order (see
``_postgres``'s docstring); each notifies ``CHANNEL`` inside its transaction, so the
notification is sent on commit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg

from ._batch import AppendPlan, retried_append
from ._checks import satisfies
from ._codec import EventCodec
from ._errors import CorruptStore, WrongExpectedVersion
from ._events import Event
from ._import import plan_import
from ._inline import InlineProjection, fold_head, imported_streams
from ._postgres_files import store_file
from ._postgres_reads import PostgresReads, stored_ids
from ._postgres_schema import APPEND_LOCK, Connection
from ._types import AppendResult, ImportResult, RecordedEvent, StoredEvent

__all__ = ["CHANNEL", "PostgresQueries"]

CHANNEL = "runlog_appended"
"""The LISTEN/NOTIFY channel every append notifies on, with its last position."""
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
_NEW_STREAM = (
    "INSERT INTO streams (name, version, first_position, last_position) "
    "VALUES ($1, $2, $3, $4) RETURNING stream_id"
)
_MOVE_STREAM = "UPDATE streams SET version = $1, last_position = $2 WHERE stream_id = $3"
_HEAD = "SELECT version, state FROM stream_heads WHERE stream_id = $1"
_PUT_HEAD = (
    "INSERT INTO stream_heads (stream_id, version, state) VALUES ($1, $2, $3) "
    "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state"
)


class PostgresQueries(PostgresReads):
    """Every query of one PostgreSQL store, reads and writes."""

    def __init__(self, codec: EventCodec, where: str, clock: Callable[[], float]) -> None:
        super().__init__(codec, where)
        self._clock = clock
        self.inline: InlineProjection | None = None
        """The projection whose heads appends keep current, if the store has one."""

    async def append(
        self,
        conn: Connection,
        stream: str,
        ids: list[bytes],
        datas: list[bytes],
        expected: int | str,
        objects: list[Event] | None = None,
    ) -> AppendResult:
        """One append, committed or not at all; safe to run again after a lost connection."""
        if expected != "any":
            # Versions only grow, so a stream already past what the caller expects
            # fails now as it would under the lock: a losing writer of a contended
            # stream (racing agents' claims) need not queue for the append lock.
            current = await self.stream_version(conn, stream)
            if not satisfies(expected, current):
                stored = retried_append(stream, ids, datas, await stored_ids(conn, ids))
                if stored is not None:
                    return stored
                raise WrongExpectedVersion(stream, expected, current)
        try:
            async with conn.transaction():
                # The lock that keeps positions gap-free in commit order.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                state = await conn.fetchrow(_STATE, stream)
                assert state is not None  # one row, whatever the tables hold
                plan = AppendPlan(stream, expected, tuple(state), ids, datas, self._clock)
                if plan.refused:
                    return plan.refuse(expected, ids, datas, await stored_ids(conn, ids))
                if not plan.count:
                    return AppendResult(stream, (), plan.current)
                await self._write_batch(conn, plan, ids, datas, objects)
        except asyncpg.UniqueViolationError:
            # Positions and versions are decided under the lock, so only a stored event
            # id can collide: this is a retry of an earlier append (perhaps our own,
            # after a connection broke during its commit).
            stored = retried_append(stream, ids, datas, await stored_ids(conn, ids))
            if stored is None:
                raise CorruptStore(
                    f"{self._where}: the streams table disagrees with the events table about "
                    f"{stream!r}; restore the database from a backup"
                ) from None
            return stored
        return plan.result()

    async def _write_batch(
        self,
        conn: Connection,
        plan: AppendPlan,
        ids: list[bytes],
        datas: list[bytes],
        objects: list[Event] | None,
    ) -> None:
        stream_id = plan.stream_id
        if stream_id is None:
            stream_id = await conn.fetchval(
                _NEW_STREAM, plan.stream, plan.version, plan.first, plan.last
            )
        else:
            await conn.execute(_MOVE_STREAM, plan.version, plan.last, stream_id)
        first, version, now = plan.first, plan.current + 1, plan.now
        if plan.count >= _COPY_FROM:
            records = [
                (first + i, stream_id, version + i, ids[i], now, datas[i], h)
                for i, h in enumerate(plan.hashes)
            ]
            await conn.copy_records_to_table("events", records=records, columns=_COLUMNS)
        else:
            await conn.execute(
                _INSERT, first - 1, stream_id, version - 1, now, ids, datas, plan.hashes
            )
        inline = self.inline
        if inline is not None and objects is not None:
            await self._fold_into_head(
                conn, inline, stream_id, plan.stream, plan.records(objects)
            )
        # Sent when (and only if) the transaction commits.
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(plan.last))

    async def _fold_into_head(
        self,
        conn: Connection,
        inline: InlineProjection,
        stream_id: int,
        stream: str,
        events: list[RecordedEvent],
    ) -> None:
        """Fold ``events``, the stream's newest, into its head (see _sqlite_writes)."""
        before = events[0].version - 1
        row = await conn.fetchrow(_HEAD, stream_id)
        version, state = (row[0], row[1]) if row is not None else (-1, None)
        if version > before:
            version, state = -1, None  # a head from the future is damage: recompute it
        try:
            async with conn.transaction():  # a savepoint: a failed read spoils no append
                missing = await self.stream_records(conn, stream_id, stream, version + 1, before)
            state = fold_head(inline, stream, state, missing + events if missing else events)
        except Exception:
            # Derived data must not stop the log from taking appends (see _sqlite_writes).
            await conn.execute("DELETE FROM stream_heads WHERE stream_id = $1", stream_id)
            return
        await conn.execute(_PUT_HEAD, stream_id, events[-1].version, state)

    async def adopt(self, conn: Connection, inline: InlineProjection) -> None:
        """Make ``inline`` the projection appends keep; heads another fold wrote are dropped."""
        found = await conn.fetchval("SELECT value FROM runlog_meta WHERE key = 'inline'")
        if found != inline.name:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                found = await conn.fetchval("SELECT value FROM runlog_meta WHERE key = 'inline'")
                if found != inline.name:
                    await conn.execute("DELETE FROM stream_heads")
                    await conn.execute(
                        "INSERT INTO runlog_meta (key, value) VALUES ('inline', $1) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        inline.name,
                    )
        self.inline = inline

    async def put_heads(
        self, conn: Connection, inline: InlineProjection, heads: list[tuple[str, int, bytes]]
    ) -> None:
        """Store recomputed heads, each with what was appended since folded in (one
        transaction, under the append lock so no append moves a stream meanwhile)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            for stream, version, state in heads:
                found = await conn.fetchrow(
                    "SELECT stream_id, version FROM streams WHERE name = $1", stream
                )
                if found is None:
                    continue
                stream_id, current = found
                missing = await self.stream_records(conn, stream_id, stream, version + 1, current)
                await conn.execute(
                    _PUT_HEAD, stream_id, current, fold_head(inline, stream, state, missing)
                )

    async def import_rows(self, conn: Connection, rows: list[StoredEvent]) -> ImportResult:
        """One import of checked events, committed or not at all."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            known = await stored_ids(conn, [stored.event_id_bytes for stored in rows])
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
                ids[name] = await conn.fetchval(_NEW_STREAM, name, version, first, last)
            moved = [(v, last, ids[n]) for n, (v, last) in plan.moved_streams.items()]
            if moved:
                await conn.executemany(_MOVE_STREAM, moved)
            if plan.rows:
                await conn.copy_records_to_table(
                    "events", records=plan.records(ids), columns=_COLUMNS
                )
                if self.inline is not None:
                    imported = imported_streams(self.inline, plan.rows, self._codec)
                    for name, events in imported.items():
                        if events is None:
                            await conn.execute(
                                "DELETE FROM stream_heads WHERE stream_id = $1", ids[name]
                            )
                        else:
                            await self._fold_into_head(conn, self.inline, ids[name], name, events)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(plan.head))
        return plan.result()

    @staticmethod
    async def put_file(conn: Connection, source: Path, digest: str, size: int) -> None:
        """Store ``source`` under ``digest`` unless it is stored already (one transaction)."""
        await store_file(conn, source, digest, size)
