"""Planning ``import_events``: which events to add, where, with which hashes.

Pure: a backend reads what it needs under its append lock (the stored ids of the
batch, its streams' versions, the head), asks for a plan, and writes the plan.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ._batch import StoredIds
from ._chain import GENESIS_HASH, chain_hash
from ._checks import check_stream
from ._errors import EventIdConflict, EventTooLarge, InvalidArgument, WrongExpectedVersion
from ._types import ImportResult, StoredEvent

__all__ = ["ImportPlan", "NewRow", "check_imported", "plan_import"]


class NewRow(msgspec.Struct, frozen=True, array_like=True):
    """An event to insert: its new position, time and hash, the rest as imported."""

    position: int
    stream: str
    version: int
    event_id: bytes
    recorded_at_us: int
    data: bytes
    hash: bytes


class ImportPlan(msgspec.Struct, frozen=True):
    """What an import writes: rows, streams to create and to move, and its result."""

    rows: list[NewRow]
    new_streams: dict[str, tuple[int, int, int]]
    """name -> (version, first position, last position) of streams the batch creates."""
    moved_streams: dict[str, tuple[int, int]]
    """name -> (version, last position) of existing streams the batch extends."""
    skipped: int
    times_raised: int
    head: int

    def records(
        self, stream_ids: dict[str, int]
    ) -> list[tuple[int, int, int, bytes, int, bytes, bytes]]:
        """The rows to insert, with each stream's name replaced by its id."""
        return [
            (
                r.position,
                stream_ids[r.stream],
                r.version,
                r.event_id,
                r.recorded_at_us,
                r.data,
                r.hash,
            )
            for r in self.rows
        ]

    def result(self) -> ImportResult:
        """What the import returns once committed."""
        return ImportResult(len(self.rows), self.skipped, self.times_raised, self.head)


def check_imported(events: Sequence[StoredEvent], max_event_bytes: int) -> list[StoredEvent]:
    """The batch as a list, after the checks that need no database."""
    rows = list(events)
    for stored in rows:
        if not isinstance(stored, StoredEvent):
            raise InvalidArgument("import_events takes StoredEvent items (from read_stored)")
        check_stream(stored.stream)
        if len(stored.event_id_bytes) != 16:
            raise InvalidArgument(f"event at position {stored.position} has no 16-byte id")
        if len(stored.data) > max_event_bytes:
            raise EventTooLarge(
                f"event at position {stored.position} is {len(stored.data)} bytes, over the "
                f"store's limit of {max_event_bytes}; open the store with a larger "
                "max_event_bytes"
            )
    return rows


def plan_import(
    events: Sequence[StoredEvent],
    known: StoredIds,
    versions: dict[str, int],
    head: tuple[int, int, bytes] | None,
) -> ImportPlan:
    """Decide a batch: ``known`` holds the batch's ids the store already has,
    ``versions`` the batch's existing streams to their versions, ``head`` is the last
    event's (position, recorded_at, hash) or None for an empty log.

    Raises:
        EventIdConflict: an id is stored with other content.
        WrongExpectedVersion: a stream is not one version behind its next event.
    """
    last, last_time, previous = head if head is not None else (0, 0, GENESIS_HASH)
    current = dict(versions)
    seen = {event_id: (name, version, data) for event_id, (_, version, name, data) in known.items()}
    rows: list[NewRow] = []
    new_streams: dict[str, tuple[int, int, int]] = {}
    moved: dict[str, tuple[int, int]] = {}
    skipped = raised = 0
    for stored in events:
        found = seen.get(stored.event_id_bytes)
        if found is not None:
            if found != (stored.stream, stored.version, stored.data):
                raise EventIdConflict(
                    f"event id {stored.event_id} (source position {stored.position}) is already "
                    "stored here with other content; this log and the imported one have diverged"
                )
            skipped += 1
            continue
        version = current.get(stored.stream, -1)
        if stored.version != version + 1:
            raise WrongExpectedVersion(stored.stream, stored.version - 1, version)
        position = last + 1
        recorded_at = stored.recorded_at_us
        if recorded_at < last_time:
            # Times never decrease along positions ("as of t" is a prefix of the log).
            recorded_at, raised = last_time, raised + 1
        previous = chain_hash(
            previous,
            position,
            stored.version,
            recorded_at,
            stored.event_id_bytes,
            stored.stream.encode(),
            stored.data,
        )
        rows.append(
            NewRow(
                position,
                stored.stream,
                stored.version,
                stored.event_id_bytes,
                recorded_at,
                stored.data,
                previous,
            )
        )
        if stored.stream in versions:
            moved[stored.stream] = (stored.version, position)
        elif stored.stream in new_streams:
            first = new_streams[stored.stream][1]
            new_streams[stored.stream] = (stored.version, first, position)
        else:
            new_streams[stored.stream] = (stored.version, position, position)
        current[stored.stream] = stored.version
        seen[stored.event_id_bytes] = (stored.stream, stored.version, stored.data)
        last, last_time = position, recorded_at
    return ImportPlan(rows, new_streams, moved, skipped, raised, last)
