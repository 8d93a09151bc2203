"""The PostgreSQL backend's reads: each a coroutine function of a pooled connection."""

from __future__ import annotations

from pathlib import Path

from ._batch import StoredIds
from ._core import Queries
from ._errors import CorruptStore, DecodeError, InvalidArgument
from ._events import Event
from ._inline import InlineProjection, StoredHead, StreamHead, fold_head
from ._postgres_files import restore_file
from ._postgres_schema import Connection
from ._types import RecordedEvent, StoredEvent, StreamInfo

__all__ = ["PostgresReads", "stored_ids"]

_MAX_POSITION = (1 << 63) - 1


class PostgresReads(Queries):
    """The read queries of one store."""

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

    async def page(
        self, conn: Connection, position: int, limit: int, last: int | None
    ) -> list[RecordedEvent]:
        """Decoded events from ``position`` on, at most ``limit``, none after ``last``."""
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

    async def stream_page(
        self, conn: Connection, stream: str, from_version: int, limit: int
    ) -> list[RecordedEvent]:
        """Decoded events of ``stream`` from ``from_version`` on, at most ``limit``."""
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

    async def at_positions(self, conn: Connection, wanted: list[int]) -> list[RecordedEvent]:
        """The events at ``wanted``, in that order; a missing one raises."""
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
                f"no event at position {missing[0]}; the head is {await self.head(conn)}"
            )
        return [found[p] for p in wanted]

    async def events_at(self, conn: Connection, wanted: list[int]) -> tuple[list[int], list[Event]]:
        """``recorded_at`` and the event at each of ``wanted``, in that order, as two
        lists; a missing one raises."""
        rows = await conn.fetch(
            "SELECT position, recorded_at, data FROM events WHERE position = ANY($1::bigint[])",
            wanted,
        )
        decode = self._codec.decode
        found = {
            position: (recorded_at, decode(data, position)) for position, recorded_at, data in rows
        }
        missing = [p for p in wanted if p not in found]
        if missing:
            raise InvalidArgument(
                f"no event at position {missing[0]}; the head is {await self.head(conn)}"
            )
        picked = [found[p] for p in wanted]
        return [t for t, _ in picked], [e for _, e in picked]

    async def stored_page(
        self, conn: Connection, position: int, limit: int, last: int | None
    ) -> list[StoredEvent]:
        """Undecoded events from ``position`` on, with their ids and hashes."""
        rows = await conn.fetch(
            "SELECT position, stream_id, version, event_id, recorded_at, data, hash FROM events "
            "WHERE position >= $1 AND position <= $2 ORDER BY position LIMIT $3",
            position,
            last if last is not None else _MAX_POSITION,
            limit,
        )
        names = await self._names_of(conn, {row[1] for row in rows})
        return [StoredEvent(p, names[s], v, e, r, d, h) for p, s, v, e, r, d, h in rows]

    async def stream_records(
        self, conn: Connection, stream_id: int, stream: str, first: int, last: int
    ) -> list[RecordedEvent]:
        """Decoded events of one stream with versions ``first`` to ``last``."""
        if first > last:
            return []
        rows = await conn.fetch(
            "SELECT position, version, recorded_at, data FROM events "
            "WHERE stream_id = $1 AND version >= $2 AND version <= $3 ORDER BY version",
            stream_id,
            first,
            last,
        )
        decode = self._codec.decode
        return [
            RecordedEvent(position, stream, version, recorded_at, decode(data, position))
            for position, version, recorded_at, data in rows
        ]

    async def stream_head(
        self, conn: Connection, inline: InlineProjection, stream: str
    ) -> StreamHead | None:
        """The stream's head as of its last event (None if it has no event), with any
        events the stored head does not reflect folded in, all read in one snapshot."""
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(
                "SELECT s.stream_id, s.version, s.first_position, s.last_position, h.version, h.state "
                "FROM streams s LEFT JOIN stream_heads h ON h.stream_id = s.stream_id "
                "WHERE s.name = $1",
                stream,
            )
            if row is None:
                return None
            stream_id, version, first, last, head_version, state = row
            if head_version is None or head_version > version:
                head_version, state = -1, None
            missing = await self.stream_records(conn, stream_id, stream, head_version + 1, version)
            try:
                state = fold_head(inline, stream, state, missing)
            except DecodeError:
                raise
            except Exception:
                # A stored head that does not decode: fold the whole stream (see SQLite).
                everything = await self.stream_records(conn, stream_id, stream, 0, version)
                state = fold_head(inline, stream, None, everything)
        return StreamHead(StreamInfo(stream, version, first, last), state)

    @staticmethod
    async def stored_heads(conn: Connection) -> list[StoredHead]:
        """Every stored head, in stream order."""
        return [
            StoredHead(name, version, state)
            for name, version, state in await conn.fetch(
                "SELECT s.name, h.version, h.state FROM stream_heads h "
                "JOIN streams s ON s.stream_id = h.stream_id ORDER BY s.stream_id"
            )
        ]

    @staticmethod
    async def head(conn: Connection) -> int:
        """The last position, 0 for an empty log."""
        return int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))

    @staticmethod
    async def stream_version(conn: Connection, stream: str) -> int:
        """The stream's version, -1 if it has none."""
        version = await conn.fetchval("SELECT version FROM streams WHERE name = $1", stream)
        return int(version) if version is not None else -1

    @staticmethod
    async def stream_info(conn: Connection, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it has none."""
        row = await conn.fetchrow(
            "SELECT name, version, first_position, last_position FROM streams WHERE name = $1",
            stream,
        )
        return StreamInfo(*row) if row else None

    @staticmethod
    async def streams(conn: Connection, prefix: str) -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        # starts_with, not a range on the index: text ranges depend on the collation.
        rows = await conn.fetch(
            "SELECT name, version, first_position, last_position FROM streams "
            "WHERE starts_with(name, $1) ORDER BY first_position",
            prefix,
        )
        return [StreamInfo(name, version, first, last) for name, version, first, last in rows]

    async def position_at(self, conn: Connection, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us``."""
        # Binary search on the primary key: recorded_at is monotonic along positions, so
        # this costs ~log2(n) index look-ups and needs no index on time.
        low, high = 0, await self.head(conn)
        while low < high:
            middle = (low + high + 1) // 2
            at = await conn.fetchval("SELECT recorded_at FROM events WHERE position = $1", middle)
            if at is not None and at <= recorded_at_us:
                low = middle
            else:
                high = middle - 1
        return low

    async def get_file(self, conn: Connection, digest: str, target: Path) -> int:
        """Write the stored file ``digest`` to ``target`` atomically; its size."""
        return await restore_file(conn, digest, target, self._where)


async def stored_ids(conn: Connection, ids: list[bytes]) -> StoredIds:
    """Which of ``ids`` are stored, and where."""
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
