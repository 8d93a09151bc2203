"""Checking a stored log: the hash chain, positions, stream versions, times, payloads.

A check walks the events exactly as stored (``read_stored_pages``) and records a
``LogFault`` for each event that breaks a rule, in position order:

* ``missing``: a position is absent (an event was deleted, or the file lost its tail);
* ``hash``: the event's hash does not match its bytes and the hash before it (it was
  changed, moved or reordered after it was written);
* ``version``: a stream's versions do not go 0, 1, 2, ... along the log;
* ``time``: ``recorded_at`` went backwards;
* ``decode``: the payload is not an event this runlog can read;
* ``unreadable``: the database could not return the event at all.

A range of the log can be checked on its own (each event is checked against the
stored hash of the event before it, so ranges need no shared state) and the range
checks merged; that is how an audit uses several processes on a long log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from ._chain import GENESIS_HASH, chain_hash
from ._codec import EventCodec, default_codec
from ._errors import DecodeError, InvalidArgument, StoreError
from ._protocol import EventStore
from ._types import StoredEvent

__all__ = ["LogCheck", "LogFault", "RangeCheck", "check_log", "check_range", "merge_ranges"]

FaultKind = Literal["missing", "hash", "version", "time", "decode", "unreadable"]

_PAGE = 5000


class LogFault(msgspec.Struct, frozen=True):
    """One broken rule at one position of the log."""

    position: int
    kind: FaultKind
    detail: str


class LogCheck(msgspec.Struct, frozen=True):
    """The result of checking positions ``first_position..last_position`` of a log."""

    first_position: int
    last_position: int
    events: int
    """Events read and checked."""
    streams: int
    head_hash: str
    """Hex of the stored hash of the last event read: record it to detect a rewritten log."""
    faults: tuple[LogFault, ...]
    """The faults found, in position order (at most ``max_faults``)."""

    @property
    def ok(self) -> bool:
        """True when no fault was found."""
        return not self.faults

    @property
    def first_fault(self) -> LogFault | None:
        """The fault at the lowest position, None when the log is sound."""
        return self.faults[0] if self.faults else None


class StreamSpan(msgspec.Struct, frozen=True, array_like=True):
    """A stream's first and last version seen in one range, to join ranges."""

    first_version: int
    first_position: int
    last_version: int


class RangeCheck(msgspec.Struct, frozen=True):
    """A check of one range, with what ``merge_ranges`` needs to join it to its neighbours."""

    check: LogCheck
    spans: dict[str, StreamSpan]


class _Walker:
    """Checks pages of stored events in order; cheap per event, since audits read millions."""

    def __init__(
        self,
        codec: EventCodec,
        start: int,
        previous_hash: bytes | None,
        previous_time: int,
        max_faults: int,
        decode_from: int,
    ) -> None:
        self.codec = codec
        self.decode_from = decode_from
        self.expected = start
        self.previous_hash = previous_hash
        self.previous_time = previous_time
        self.max_faults = max_faults
        self.events = 0
        self.first_versions: dict[str, tuple[int, int]] = {}
        self.last_versions: dict[str, int] = {}
        self.faults: list[LogFault] = []
        self.names: dict[str, bytes] = {}

    @property
    def full(self) -> bool:
        return len(self.faults) >= self.max_faults

    def fault(self, position: int, kind: FaultKind, detail: str) -> None:
        if not self.full:
            self.faults.append(LogFault(position, kind, detail))

    def feed(self, page: Sequence[StoredEvent]) -> None:
        # State in locals: audits read millions of events, and a sound event takes no branch.
        decode = self.codec._decoder.decode
        last_versions = self.last_versions
        first_versions = self.first_versions
        names = self.names
        expected, previous, previous_time = self.expected, self.previous_hash, self.previous_time
        decode_from = self.decode_from
        for stored in page:
            position = stored.position
            try:
                stream = stored.stream
                version = stored.version
                recorded_at = stored.recorded_at_us
                data = stored.data
                if position != expected:
                    self._gap(expected, position)
                expected = position + 1
                name = names.get(stream)
                if name is None:
                    name = names[stream] = stream.encode()
                if previous is not None:
                    digest = chain_hash(
                        previous, position, version, recorded_at, stored.event_id_bytes, name, data
                    )
                    if digest != stored.hash:
                        self.fault(
                            position,
                            "hash",
                            "the event does not match its hash: it was changed, moved or "
                            "reordered after it was written",
                        )
                previous = stored.hash
                if recorded_at < previous_time:
                    self.fault(position, "time", "recorded_at is earlier than the event before it")
                previous_time = recorded_at
                last = last_versions.get(stream)
                if last is None:
                    first_versions[stream] = (version, position)
                elif version != last + 1:
                    self.fault(
                        position,
                        "version",
                        f"stream {stream!r} goes from version {last} to {version}",
                    )
                last_versions[stream] = version
                if position >= decode_from:  # below it, the caller decodes (an audit's replay)
                    try:
                        decode(data)
                    except Exception:
                        try:
                            self.codec.decode(data, position)  # the upcasters' slow path
                        except DecodeError as exc:
                            self.fault(position, "decode", str(exc))
            except Exception as exc:  # a column of the wrong type: the row itself is damaged
                expected = position + 1 if isinstance(position, int) else expected
                previous = stored.hash if isinstance(stored.hash, bytes) else None
                self.fault(
                    position if isinstance(position, int) else expected,
                    "unreadable",
                    f"the stored row cannot be checked ({type(exc).__name__}: {exc}); a "
                    "column holds a value of the wrong type",
                )
        self.expected, self.previous_hash, self.previous_time = expected, previous, previous_time
        self.events += len(page)

    def _gap(self, expected: int, position: int) -> None:
        if position > expected:
            missing = position - expected
            self.fault(
                expected,
                "missing",
                f"positions {expected}..{position - 1} are missing"
                if missing > 1
                else f"position {expected} is missing",
            )
        else:  # pragma: no cover - a primary key cannot repeat or go back
            self.fault(position, "missing", f"position {position} came out of order")

    def result(self, first: int, last: int) -> RangeCheck:
        spans = {
            stream: StreamSpan(version, position, self.last_versions[stream])
            for stream, (version, position) in self.first_versions.items()
        }
        check = LogCheck(
            first_position=first,
            last_position=last,
            events=self.events,
            streams=len(spans),
            head_hash=(self.previous_hash or b"").hex(),
            faults=tuple(self.faults),
        )
        return RangeCheck(check, spans)


async def check_range(
    store: EventStore,
    first: int,
    last: int,
    *,
    codec: EventCodec | None = None,
    progress: Callable[[int], None] | None = None,
    max_faults: int = 20,
    decode_from: int = 1,
) -> RangeCheck:
    """Check positions ``first..last`` (inclusive) of ``store``'s log.

    ``progress`` is called with the number of events read after each page. Payloads at
    positions below ``decode_from`` are not decoded (for callers that decode them anyway).
    """
    if first < 1 or last < first - 1:
        raise InvalidArgument(f"cannot check positions {first}..{last}")
    previous_hash: bytes | None = GENESIS_HASH
    previous_time = 0
    if first > 1:
        before = [s async for s in store.read_stored(first - 1, to_position=first - 1)]
        # Without the event before, the first hash cannot be checked; the range
        # before reports the missing position.
        previous_hash = before[0].hash if before else None
        previous_time = before[0].recorded_at_us if before else 0
    walker = _Walker(
        codec or default_codec, first, previous_hash, previous_time, max_faults, decode_from
    )
    position = first
    while position <= last and not walker.full:
        try:
            async for page in store.read_stored_pages(position, to_position=last, size=_PAGE):
                walker.feed(page)
                position = page[-1].position + 1
                if progress is not None:
                    progress(len(page))
                if walker.full:
                    break
            else:
                break
        except StoreError as exc:
            bad = await _first_unreadable(store, walker, position, last, exc)
            walker.fault(bad, "unreadable", f"the database cannot return this event ({exc})")
            break
    stopped = bool(walker.faults) and walker.faults[-1].kind == "unreadable"
    if walker.expected <= last and not stopped and not walker.full:
        walker.fault(
            walker.expected,
            "missing",
            f"the log ends at position {walker.expected - 1} but reached {last}",
        )
    return walker.result(first, last)


async def _first_unreadable(
    store: EventStore, walker: _Walker, position: int, last: int, error: StoreError
) -> int:
    """Read one event at a time from ``position`` until one fails; feed the good ones."""
    while position <= last:
        try:
            page = [s async for s in store.read_stored(position, to_position=position)]
        except StoreError:
            return position
        if not page:
            return position
        walker.feed(page)
        position += 1
    return position  # pragma: no cover - the page read failed, so one event must


def merge_ranges(ranges: Sequence[RangeCheck], *, max_faults: int = 20) -> LogCheck:
    """Join checks of consecutive ranges into one check of the whole span."""
    if not ranges:
        raise InvalidArgument("nothing to merge")
    faults = [fault for r in ranges for fault in r.check.faults]
    last_versions: dict[str, int] = {}
    for part in ranges:
        for stream, span in part.spans.items():
            before = last_versions.get(stream, -1)
            if span.first_version != before + 1:
                faults.append(
                    LogFault(
                        span.first_position,
                        "version",
                        f"stream {stream!r} goes from version {before} to {span.first_version}"
                        if before >= 0
                        else f"stream {stream!r} starts at version {span.first_version}, not 0",
                    )
                )
            last_versions[stream] = span.last_version
    faults.sort(key=lambda fault: fault.position)
    head_hash = next((r.check.head_hash for r in reversed(ranges) if r.check.events), "")
    return LogCheck(
        first_position=ranges[0].check.first_position,
        last_position=ranges[-1].check.last_position,
        events=sum(r.check.events for r in ranges),
        streams=len(last_versions),
        head_hash=head_hash,
        faults=tuple(faults[:max_faults]),
    )


async def check_log(
    store: EventStore,
    *,
    to_position: int | None = None,
    codec: EventCodec | None = None,
    progress: Callable[[int], None] | None = None,
    max_faults: int = 20,
) -> LogCheck:
    """Check the whole log up to ``to_position`` (default: the head) in this process."""
    last = await store.head() if to_position is None else to_position
    part = await check_range(store, 1, last, codec=codec, progress=progress, max_faults=max_faults)
    return merge_ranges([part], max_faults=max_faults)
