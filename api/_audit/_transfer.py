"""``runlog export`` / ``runlog import``: the log as JSON Lines, lossless and verifiable.

An export file is a header line, one line per event (the stored payload bytes, id,
stream, version, time, its hash and the hash before it), the files the exported
events saved (in parts), and an end line with the counts. Every event line can be
checked on its own against its hash, and consecutive ones against each other, so an
import first checks the whole file and writes nothing if any line is wrong.

Importing keeps ids, bytes, stream versions and times; events already in the target
(by id) are skipped, so importing a file twice adds nothing, and an offline log can
be shipped to a shared store exactly once. Into an empty store a whole-log export
gets back its positions and hashes, byte for byte.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import anyio
import msgspec

from eventstore import (
    GENESIS_HASH,
    EventStore,
    FileSaved,
    StoredEvent,
    default_codec,
)

from .._errors import ExportFileError
from .._library._stores import StoreArg, existing_store, opened_store

__all__ = ["ExportFileError", "ExportSummary", "ImportSummary", "export_log", "import_log"]

FORMAT = 1
_PART = 1 << 20  # bytes of a file per line (before base64)
_BATCH = 5000


class Header(msgspec.Struct, frozen=True, tag="runlog-export", tag_field="kind"):
    format: int
    source: str
    created_by: str
    streams: list[str] | None
    """The stream filters the export was made with, None for the whole log."""
    head: int
    """The source log's head when the export began."""


class EventLine(msgspec.Struct, frozen=True, tag="event", tag_field="kind"):
    position: int
    stream: str
    version: int
    id: str
    recorded_at_us: int
    type: str
    data: bytes
    """The stored payload bytes (base64 in the file)."""
    hash: str
    prev: str
    """Hex of the hash of the event before this one in the source log."""


class FilePart(msgspec.Struct, frozen=True, tag="file", tag_field="kind"):
    digest: str
    size: int
    part: int
    parts: int
    data: bytes


class End(msgspec.Struct, frozen=True, tag="end", tag_field="kind"):
    events: int
    files: int
    last_hash: str


Line = Header | EventLine | FilePart | End
_encode = msgspec.json.Encoder().encode
_decode_line = msgspec.json.Decoder(Line).decode


class ExportSummary(msgspec.Struct, frozen=True):
    """What an export wrote."""

    events: int
    files: int
    first_position: int | None
    last_position: int | None
    head: int


class ImportSummary(msgspec.Struct, frozen=True):
    """What an import did."""

    events: int
    """Event lines in the file."""
    added: int
    skipped: int
    """Events the target already had (same id and content)."""
    times_raised: int
    files: int
    head: int
    """The target's head afterwards."""


def _matches(stream: str, filters: Sequence[str] | None) -> bool:
    if filters is None:
        return True
    return any(stream.startswith(f[:-1]) if f.endswith("*") else stream == f for f in filters)


async def export_log(
    out: IO[bytes],
    *,
    store: StoreArg = None,
    streams: Sequence[str] | None = None,
    files: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write the log (or the streams matching ``streams``; ``NAME*`` matches a prefix)
    to ``out`` as JSON Lines, with the files its events saved unless ``files`` is False."""
    filters = list(streams) if streams else None
    async with existing_store(store) as opened:
        head = await opened.head()
        header = _encode(Header(FORMAT, opened.url, f"runlog {version('runlog')}", filters, head))
        await _write(out, header + b"\n")
        decode = default_codec.decode
        digests: dict[str, int] = {}
        count = 0
        first: int | None = None
        last: int | None = None
        previous = GENESIS_HASH
        last_hash = ""
        done = 0
        async for page in opened.read_stored_pages(1, to_position=head, size=_BATCH):
            lines: list[bytes] = []
            for stored in page:
                if _matches(stored.stream, filters):
                    event = decode(stored.data, stored.position)
                    if isinstance(event, FileSaved):
                        digests.setdefault(event.digest, event.size)
                    lines.append(_encode(_event_line(stored, previous, type(event).__name__)))
                    count += 1
                    first = stored.position if first is None else first
                    last = stored.position
                    last_hash = stored.hash.hex()
                previous = stored.hash
            if lines:
                await _write(out, b"\n".join(lines) + b"\n")
            done += len(page)
            if progress is not None:
                progress(done, head)
        written = 0
        if files:
            for digest in sorted(digests):
                await _export_file(opened, digest, out)
                written += 1
        await _write(out, _encode(End(count, written, last_hash)) + b"\n")
        await anyio.to_thread.run_sync(out.flush)
    return ExportSummary(count, written, first, last, head)


def _event_line(stored: StoredEvent, previous: bytes, type_name: str) -> EventLine:
    return EventLine(
        position=stored.position,
        stream=stored.stream,
        version=stored.version,
        id=str(stored.event_id),
        recorded_at_us=stored.recorded_at_us,
        type=type_name,
        data=stored.data,
        hash=stored.hash.hex(),
        prev=previous.hex(),
    )


async def _write(out: IO[bytes], data: bytes) -> None:
    """Write to ``out`` on a worker thread: a pipe or a slow disk never stalls the loop."""
    await anyio.to_thread.run_sync(out.write, data)


async def _export_file(store: EventStore, digest: str, out: IO[bytes]) -> None:
    scratch = await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "runlog-export-")
    try:
        path = Path(scratch) / "file"
        size = await store.get_file(digest, path)
        parts = max(1, -(-size // _PART))

        def copy() -> None:  # reading and writing a file's parts: one trip to a thread
            with path.open("rb") as file:
                for part in range(parts):
                    chunk = file.read(_PART)
                    out.write(_encode(FilePart(digest, size, part, parts, chunk)) + b"\n")

        await anyio.to_thread.run_sync(copy)
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)


async def import_log(
    path: str | os.PathLike[str],
    *,
    store: StoreArg = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Check the export file at ``path`` whole, then add its files and events to the store.

    Raises:
        ExportFileError: the file is not a runlog export, or a line is damaged or
            missing; nothing was written.
        EventIdConflict, WrongExpectedVersion: the target's log has diverged from the
            file's (an event id or a stream version disagrees); the batches before the
            conflicting one were imported, and a rerun skips them.
    """
    source = Path(path)
    events = await anyio.to_thread.run_sync(_check_file, source)
    added = skipped = raised = 0
    head = 0
    async with opened_store(store) as opened:
        files = await _import_files(opened, source)
        done = 0
        async for lines in _read(source, EventLine, _BATCH):
            batch = [_stored(line) for line in lines]  # type: ignore[arg-type]
            result = await opened.import_events(batch)
            added, skipped = added + result.added, skipped + result.skipped
            raised, head = raised + result.times_raised, result.head
            done += len(batch)
            if progress is not None and len(batch) == _BATCH:
                progress(done, events)
        if progress is not None:
            progress(done, events)
        head = await opened.head()
    return ImportSummary(events, added, skipped, raised, files, head)


def _stored(line: EventLine) -> StoredEvent:
    return StoredEvent(
        position=line.position,
        stream=line.stream,
        version=line.version,
        event_id_bytes=_uuid_bytes(line.id),
        recorded_at_us=line.recorded_at_us,
        data=line.data,
        hash=bytes.fromhex(line.hash),
    )


def _uuid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes


async def _read(source: Path, kind: type[Line], size: int) -> AsyncIterator[list[Line]]:
    """The lines of ``source`` of type ``kind``, ``size`` at a time, read and parsed on a
    worker thread."""
    wanted = (line for line in _lines(source) if isinstance(line, kind))
    try:
        while lines := await anyio.to_thread.run_sync(list, itertools.islice(wanted, size)):
            yield lines
    finally:
        await anyio.to_thread.run_sync(wanted.close)  # closes the file


def _lines(source: Path) -> Iterator[Line]:
    with source.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if raw.strip():
                yield _parse(raw, number, source)


def _parse(raw: bytes, number: int, source: Path) -> Line:
    try:
        line: Line = _decode_line(raw)
        return line
    except msgspec.DecodeError as exc:
        if number == 1:
            raise ExportFileError(
                f"{source} is not a runlog export (line 1: {exc}); make one with `runlog export`"
            ) from None
        raise ExportFileError(
            f"{source} line {number} is damaged ({exc}); nothing was imported"
        ) from None


def _check_file(source: Path) -> int:
    """Check every line of an export file; return its number of events."""
    try:
        lines = _lines(source)
        header = next(lines, None)
    except OSError as exc:
        raise ExportFileError(f"cannot read {source}: {exc}") from None
    if not isinstance(header, Header):
        raise ExportFileError(
            f"{source} is not a runlog export (no header line); make one with `runlog export`"
        )
    if header.format > FORMAT:
        raise ExportFileError(
            f"{source} is export format {header.format}, newer than this runlog reads "
            f"({FORMAT}); upgrade runlog to import it"
        )
    number = 1
    events = 0
    files: dict[str, tuple[int, int, Any]] = {}  # digest -> (size, parts seen, hasher)
    parts: dict[str, int] = {}
    previous: EventLine | None = None
    end: End | None = None
    for number, line in enumerate(lines, start=2):
        if end is not None:
            raise ExportFileError(
                f"{source} line {number} follows the end line; nothing was imported"
            )
        if isinstance(line, EventLine):
            _check_event(line, previous, source, number)
            previous = line
            events += 1
        elif isinstance(line, FilePart):
            size, seen, hasher = files.get(
                line.digest, (line.size, 0, hashlib.blake2b(digest_size=32))
            )
            if line.part != seen or line.size != size:
                raise ExportFileError(
                    f"{source} line {number}: part {line.part} of file {line.digest} is out of "
                    "order; nothing was imported"
                )
            hasher.update(line.data)
            files[line.digest] = (size, seen + 1, hasher)
            parts[line.digest] = line.parts
        elif isinstance(line, End):
            end = line
        else:
            raise ExportFileError(f"{source} line {number}: a second header; nothing was imported")
    if end is None:
        raise ExportFileError(
            f"{source} has no end line: it was cut short (after line {number}); export again"
        )
    if end.events != events or end.files != len(files):
        raise ExportFileError(
            f"{source} says it holds {end.events} events and {end.files} files but has {events} "
            f"and {len(files)}; nothing was imported"
        )
    for digest, (_, seen, hasher) in files.items():
        if seen != parts[digest] or digest.rpartition(":")[2] != hasher.hexdigest():
            raise ExportFileError(
                f"{source}: file {digest} does not match its digest; nothing was imported"
            )
    return events


def _check_event(line: EventLine, previous: EventLine | None, source: Path, number: int) -> None:
    where = f"{source} line {number} (position {line.position})"
    try:
        stored = _stored(line)
        prev = bytes.fromhex(line.prev)
    except ValueError as exc:
        raise ExportFileError(f"{where} is damaged ({exc}); nothing was imported") from None
    if stored.expected_hash(prev) != stored.hash:
        raise ExportFileError(
            f"{where} does not match its hash: the line was changed after export; nothing "
            "was imported"
        )
    if previous is not None:
        if line.position <= previous.position:
            raise ExportFileError(f"{where} is out of order; nothing was imported")
        if line.position == previous.position + 1 and line.prev != previous.hash:
            raise ExportFileError(
                f"{where} does not follow the line before it (hash chain broken); nothing "
                "was imported"
            )
    elif line.position == 1 and prev != GENESIS_HASH:
        raise ExportFileError(f"{where} is the first event but does not start the chain")


async def _import_files(store: EventStore, source: Path) -> int:
    count = 0
    scratch = await anyio.to_thread.run_sync(tempfile.mkdtemp, None, "runlog-import-")
    current: Path | None = None
    file: IO[bytes] | None = None
    try:
        async for lines in _read(source, FilePart, 1):  # a part is up to 1 MiB: one at a time
            line = lines[0]
            assert isinstance(line, FilePart)
            if line.part == 0:
                current = Path(scratch) / line.digest
                file = await anyio.to_thread.run_sync(current.open, "wb")
            if file is None or current is None:
                raise ExportFileError(f"{source}: file {line.digest} starts mid-way")
            await anyio.to_thread.run_sync(file.write, line.data)
            if line.part == line.parts - 1:
                await anyio.to_thread.run_sync(file.close)
                digest, _ = await store.put_file(current)
                if digest != line.digest:  # pragma: no cover - checked with the file
                    raise ExportFileError(f"file {line.digest} changed while importing")
                await anyio.to_thread.run_sync(current.unlink)
                count += 1
    finally:
        if file is not None and not file.closed:
            file.close()
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)
    return count
