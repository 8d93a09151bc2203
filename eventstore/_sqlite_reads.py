"""The SQLite backend's reads: each a function of the connection, run on its thread."""

from __future__ import annotations

import operator
import os
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import compress, count, pairwise, repeat
from pathlib import Path
from typing import Any

from ._batch import StoredIds
from ._core import Queries
from ._errors import CorruptStore, DecodeError, InvalidArgument
from ._events import Event
from ._files import BLOB_PREFIX, new_digest
from ._inline import InlineProjection, StoredHead, StreamHead, fold_head
from ._types import RecordedEvent, StoredEvent, StreamInfo

__all__ = ["MAX_POSITION", "SQLiteReads", "stored_ids"]

MAX_POSITION = (1 << 63) - 1


class SQLiteReads(Queries):
    """The read queries of one store."""

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

    def page(
        self, db: sqlite3.Connection, position: int, limit: int, last: int | None
    ) -> list[RecordedEvent]:
        """Decoded events from ``position`` on, at most ``limit``, none after ``last``."""
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
        for stream_id in {row[0] for row in rows}.difference(names):
            self._name(db, stream_id)
        fast = self._codec._decoder.decode
        try:
            # One comprehension, no branch per event: a replay reads millions.
            return [
                RecordedEvent(p, names[s], v, t, fast(d))
                for p, (s, v, t, d) in zip(count(position), rows)
            ]
        except Exception:  # a payload needs the upcasters, or is damaged: one at a time
            decode = self._codec.decode
            return [
                RecordedEvent(p, names[s], v, t, decode(d, p))
                for p, (s, v, t, d) in zip(count(position), rows)
            ]

    def stream_page(
        self, db: sqlite3.Connection, stream: str, from_version: int, limit: int
    ) -> list[RecordedEvent]:
        """Decoded events of ``stream`` from ``from_version`` on, at most ``limit``."""
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

    def at_positions(self, db: sqlite3.Connection, wanted: list[int]) -> list[RecordedEvent]:
        """The events at ``wanted``, in that order; a missing one raises."""
        found: dict[int, RecordedEvent] = {}
        names = self._names
        fast = self._codec._decoder.decode
        decode = self._codec.decode
        ranges, single = _segments(sorted(set(wanted)))
        db.execute("BEGIN")  # one snapshot for all the segments
        try:
            for low, high, chosen in ranges:
                # A dense stretch (a run's full history) is one range scan on the primary
                # key; rows between the wanted ones are skipped without being decoded.
                for position, stream_id, version, recorded_at, data in db.execute(
                    "SELECT position, stream_id, version, recorded_at, data FROM events "
                    "WHERE position >= ? AND position <= ?",
                    (low, high),
                ):
                    if chosen is not None and position not in chosen:
                        continue
                    name = names.get(stream_id) or self._name(db, stream_id)
                    try:
                        event = fast(data)
                    except Exception:
                        event = decode(data, position)
                    found[position] = RecordedEvent(position, name, version, recorded_at, event)
            for position, stream_id, version, recorded_at, data in _rows_in(
                db,
                "SELECT position, stream_id, version, recorded_at, data FROM events "
                "WHERE position IN ({})",
                single,
            ):
                name = names.get(stream_id) or self._name(db, stream_id)
                found[position] = RecordedEvent(
                    position, name, version, recorded_at, decode(data, position)
                )
            missing = [p for p in wanted if p not in found]
            if missing:
                raise InvalidArgument(
                    f"no event at position {missing[0]}; the head is {self.head(db)}"
                )
        finally:
            db.execute("COMMIT")
        return [found[p] for p in wanted]

    def events_at(self, db: sqlite3.Connection, wanted: list[int]) -> tuple[list[int], list[Event]]:
        """``recorded_at`` and the event at each of ``wanted``, in that order, as two
        lists; a missing one raises."""
        ordered = sorted(set(wanted))
        ranges, single = _segments(ordered)
        fast = self._codec._decoder.decode
        decode = self._codec.decode
        found: dict[int, tuple[int, Event]] = {}
        pieces: list[tuple[int, list[int], list[Event]]] = []
        db.execute("BEGIN")  # one snapshot for all the segments
        try:
            for low, high, chosen in ranges:
                if chosen is None:
                    # Wanted whole: if the range holds high - low + 1 rows (positions are
                    # unique), they are low..high in order, and only two columns are
                    # read; transposed and decoded by map, with no Python frame per row.
                    dense = db.execute(
                        "SELECT recorded_at, data FROM events "
                        "WHERE position >= ? AND position <= ? ORDER BY position",
                        (low, high),
                    ).fetchall()
                    if len(dense) == high - low + 1:
                        dense_times, datas = zip(*dense, strict=True)
                        try:
                            events = list(map(fast, datas))
                        except Exception:  # one needs the upcasters, or is damaged
                            events = list(map(decode, datas, range(low, high + 1)))
                        pieces.append((low, list(dense_times), events))
                        continue
                rows = db.execute(
                    "SELECT position, recorded_at, data FROM events "
                    "WHERE position >= ? AND position <= ? ORDER BY position",
                    (low, high),
                ).fetchall()
                for position, recorded_at, data in rows:
                    if chosen is None or position in chosen:
                        found[position] = (recorded_at, decode(data, position))
            for position, recorded_at, data in _rows_in(
                db, "SELECT position, recorded_at, data FROM events WHERE position IN ({})", single
            ):
                found[position] = (recorded_at, decode(data, position))
            if len(found) + sum(len(piece[1]) for piece in pieces) < len(ordered):
                missing = next(p for p in wanted if p not in found)
                raise InvalidArgument(
                    f"no event at position {missing}; the head is {self.head(db)}"
                )
        finally:
            db.execute("COMMIT")
        if len(pieces) == 1 and not found and wanted == ordered:
            return pieces[0][1], pieces[0][2]  # one dense stretch, in order: no look-ups
        for low, piece_times, piece_events in pieces:
            found.update(
                zip(
                    range(low, low + len(piece_times)),
                    zip(piece_times, piece_events, strict=True),
                    strict=True,
                )
            )
        picked = [found[p] for p in wanted]
        return [t for t, _ in picked], [e for _, e in picked]

    def stored_page(
        self, db: sqlite3.Connection, position: int, limit: int, last: int | None
    ) -> list[StoredEvent]:
        """Undecoded events from ``position`` on, with their ids and hashes."""
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
                (position, last if last is not None else MAX_POSITION, limit),
            ).fetchall()
        names = self._names
        return [
            StoredEvent(p, names.get(s) or self._name(db, s), v, e, r, d, h)
            for p, s, v, e, r, d, h in rows
        ]

    def stream_records(
        self, db: sqlite3.Connection, stream_id: int, stream: str, first: int, last: int
    ) -> list[RecordedEvent]:
        """Decoded events of one stream with versions ``first`` to ``last``."""
        if first > last:
            return []
        decode = self._codec.decode
        return [
            RecordedEvent(position, stream, version, recorded_at, decode(data, position))
            for position, version, recorded_at, data in db.execute(
                "SELECT position, version, recorded_at, data FROM events "
                "WHERE stream_id = ? AND version >= ? AND version <= ? ORDER BY version",
                (stream_id, first, last),
            )
        ]

    def stream_head(
        self, db: sqlite3.Connection, inline: InlineProjection, stream: str
    ) -> StreamHead | None:
        """The stream's head as of its last event (None if it has no event), with any
        events the stored head does not reflect folded in, all read in one snapshot."""
        db.execute("BEGIN")
        try:
            row = db.execute(
                "SELECT s.stream_id, s.version, s.first_position, s.last_position, h.version, h.state "
                "FROM streams s LEFT JOIN stream_heads h ON h.stream_id = s.stream_id "
                "WHERE s.name = ?",
                (stream,),
            ).fetchone()
            if row is None:
                return None
            stream_id, version, first, last, head_version, state = row
            if head_version is None or head_version > version:
                head_version, state = -1, None
            missing = self.stream_records(db, stream_id, stream, head_version + 1, version)
            try:
                state = fold_head(inline, stream, state, missing)
            except DecodeError:
                raise
            except Exception:
                # A stored head that does not decode is damage to derived data: fold the
                # whole stream instead (the next append stores the good head again).
                everything = self.stream_records(db, stream_id, stream, 0, version)
                state = fold_head(inline, stream, None, everything)
        finally:
            db.execute("COMMIT")
        return StreamHead(StreamInfo(stream, version, first, last), state)

    @staticmethod
    def stored_heads(db: sqlite3.Connection) -> list[StoredHead]:
        """Every stored head, in stream order."""
        return [
            StoredHead(name, version, state)
            for name, version, state in db.execute(
                "SELECT s.name, h.version, h.state FROM stream_heads h "
                "JOIN streams s ON s.stream_id = h.stream_id ORDER BY s.stream_id"
            )
        ]

    @staticmethod
    def head(db: sqlite3.Connection) -> int:
        """The last position, 0 for an empty log."""
        row = db.execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def position_at(self, db: sqlite3.Connection, recorded_at_us: int) -> int:
        """The last position recorded at or before ``recorded_at_us``."""
        # Binary search on the primary key: recorded_at is monotonic along positions,
        # so this costs ~log2(n) row look-ups and needs no index on time.
        low, high = 0, self.head(db)
        while low < high:
            middle = (low + high + 1) // 2
            row = db.execute(
                "SELECT recorded_at FROM events WHERE position = ?", (middle,)
            ).fetchone()
            if row is not None and row[0] <= recorded_at_us:
                low = middle
            else:
                high = middle - 1
        return low

    @staticmethod
    def stream_info(db: sqlite3.Connection, stream: str) -> StreamInfo | None:
        """The stream's version and positions, None if it has none."""
        row = db.execute(
            "SELECT name, version, first_position, last_position FROM streams WHERE name = ?",
            (stream,),
        ).fetchone()
        return StreamInfo(*row) if row else None

    @staticmethod
    def stream_version(db: sqlite3.Connection, stream: str) -> int:
        """The stream's version, -1 if it has none."""
        row = db.execute("SELECT version FROM streams WHERE name = ?", (stream,)).fetchone()
        return int(row[0]) if row else -1

    @staticmethod
    def streams(db: sqlite3.Connection, prefix: str) -> list[StreamInfo]:
        """The streams whose names start with ``prefix``, in order of creation."""
        # Range scan on the UNIQUE(name) index; LIKE would need escaping and case rules.
        upper = prefix + "\U0010ffff"
        rows = db.execute(
            "SELECT name, version, first_position, last_position FROM streams "
            "WHERE name >= ? AND name < ? ORDER BY first_position",
            (prefix, upper),
        ).fetchall()
        return [StreamInfo(name, version, first, last) for name, version, first, last in rows]

    def get_file(self, db: sqlite3.Connection, digest: str, target: Path) -> int:
        """Write the stored file ``digest`` to ``target`` atomically; its size."""
        row = db.execute("SELECT size, chunks FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise InvalidArgument(f"no file with digest {digest} is stored in {self._where}")
        size, chunks = row
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.runlog-partial")
        hasher = new_digest()
        with partial.open("wb") as file:
            for seq in range(chunks):
                (data,) = db.execute(
                    "SELECT data FROM blob_chunks WHERE digest = ? AND seq = ?", (digest, seq)
                ).fetchone()
                hasher.update(data)
                file.write(data)
        if BLOB_PREFIX + hasher.hexdigest() != digest:
            partial.unlink()
            raise CorruptStore(f"{self._where}: the stored file {digest} does not match its digest")
        os.replace(partial, target)
        return int(size)


def stored_ids(db: sqlite3.Connection, ids: list[bytes]) -> StoredIds:
    """Which of ``ids`` are stored, and where."""
    found: StoredIds = {}
    for event_id, position, version, name, data in _rows_in(
        db,
        "SELECT e.event_id, e.position, e.version, s.name, e.data FROM events e "
        "JOIN streams s ON s.stream_id = e.stream_id WHERE e.event_id IN ({})",
        ids,
    ):
        found[event_id] = (position, version, name, data)
    return found


_GAP = 32
"""Wanted positions at most this far apart are read by one range scan, not looked up."""


def _segments(
    positions: list[int],
) -> tuple[list[tuple[int, int, set[int] | None]], list[int]]:
    """Sorted ``positions`` split into dense stretches to scan (first, last, the wanted
    positions or None for all of them) and the lone positions to look up one by one."""
    count = len(positions)
    if not count:
        return [], []
    if count > 3 and positions[-1] - positions[0] == count - 1:
        return [(positions[0], positions[-1], None)], []  # one gap-free stretch
    # Where a gap wider than _GAP starts a new stretch, found by map in C (a run's
    # history reads back thousands of positions per call).
    gaps = map(operator.sub, positions[1:], positions[:-1])
    cuts = [0, *compress(range(1, count), map(operator.gt, gaps, repeat(_GAP))), count]
    ranges: list[tuple[int, int, set[int] | None]] = []
    single: list[int] = []
    for start, end in pairwise(cuts):
        if end - start < 4:
            single.extend(positions[start:end])
            continue
        low, high = positions[start], positions[end - 1]
        dense = high - low == end - start - 1
        ranges.append((low, high, None if dense else set(positions[start:end])))
    return ranges, single


def _rows_in(db: sqlite3.Connection, sql: str, values: Sequence[object]) -> Iterator[Any]:
    """The rows of ``sql`` whose ``IN ({})`` lists ``values``, 500 at a time (SQLite
    limits the parameters of one statement)."""
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        yield from db.execute(sql.format(",".join("?" * len(chunk))), chunk)
