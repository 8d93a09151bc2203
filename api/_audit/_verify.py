"""``runlog verify``: is the stored log intact, and do the read models equal its replay?

Two independent questions, answered at the same time:

* the log: every event's hash, position, stream version, time and payload
  (``eventstore.check_log`` rules), checked in worker processes over ranges of the
  log when the log is long, since each event is checked against the stored hash of
  the one before it;
* the read models: the log is folded from position 0 in memory, in this process, up
  to the position the stored read model reflects, and the two are compared;
* the run heads the store keeps inline: each is compared with the fold of its
  stream up to the version it reflects (``projections.check_heads``), in a worker
  process beside the rest when the log is long.

The read model is caught up first, as any query would (``catch_up=False`` writes
nothing and compares it where it stands).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_process
import msgspec

from eventstore import (
    CorruptStore,
    DecodeError,
    EventStore,
    LogCheck,
    LogFault,
    RangeCheck,
    RunLogError,
    check_range,
    merge_ranges,
    open_store,
    parse_location,
)
from projections import (
    HeadsCheck,
    ProjectionCheck,
    Snapshot,
    check_heads,
    compare_snapshots,
    open_projector,
)

from .._library._settings import root_dir, store_target
from .._library._stores import StoreArg, existing_store

__all__ = ["VerifyReport", "verify"]

# Below this many events, worker processes cost more to start than they save.
PARALLEL_FROM = 100_000
_decode_range = msgspec.msgpack.Decoder(RangeCheck).decode
_decode_snapshot = msgspec.msgpack.Decoder(Snapshot).decode
_decode_heads = msgspec.msgpack.Decoder(HeadsCheck).decode


class VerifyReport(msgspec.Struct, frozen=True):
    """What ``verify`` found."""

    head: int
    log: LogCheck
    projection: ProjectionCheck | None
    """The read models compared with the replay, None if there was nothing to compare."""
    read_model_position: int
    """The position the stored read model reflects (it catches up on the next query)."""
    replay_error: str | None = None
    """Why the replay stopped early (the log check names the position)."""
    damaged: str | None = None
    """Set when SQLite refused the file and a padded copy of it was checked instead."""
    read_model_error: str | None = None
    """Why the stored read models could not be read (they were not compared)."""
    advice: str | None = None
    """One line: what is damaged and what to do about it; None when all is sound."""
    truncated: bool = False
    """The file is shorter than its header says: the log ends where the file does."""
    heads: HeadsCheck | None = None
    """The stored run heads compared with the fold of their streams (None: the store
    keeps none, or the log could not be folded)."""
    heads_error: str | None = None
    """Why the run heads could not be checked."""

    @property
    def ok(self) -> bool:
        """True when the log is intact and the read models equal the replay."""
        return (
            self.log.ok
            and self.damaged is None
            and self.replay_error is None
            and self.read_model_error is None
            and (self.projection is None or self.projection.ok)
            and (self.heads is None or self.heads.ok)
        )

    @property
    def first_bad_position(self) -> int | None:
        """The lowest position at which something is wrong, None if nothing is (or if
        the damage is outside the log)."""
        if self.log.first_fault is not None:
            return self.log.first_fault.position
        if self.truncated:
            return self.log.last_position + 1
        return None


async def verify(
    *,
    store: StoreArg = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    parallel_from: int = PARALLEL_FROM,
    catch_up: bool = True,
) -> VerifyReport:
    """Check the whole log and the read models; see the module docstring.

    ``workers`` is the number of processes checking the log besides this one (default:
    the CPU count; 0 checks everything here), used for logs of ``parallel_from`` events
    or more. ``progress(done, total)`` follows the replay. The read model is first caught
    up with the log, as any query would; with ``catch_up=False`` nothing is written and
    the read model is compared where it stands.
    """
    try:
        report = await _verify(store, workers, progress, parallel_from, catch_up)
    except CorruptStore as exc:
        path = _local_path(store)
        if path is None:
            raise
        # SQLite refuses a file that lost pages (a truncated copy, a failed disk) or
        # whose pages are damaged. A copy padded back to its recorded size opens, and
        # its surviving pages say where the damage starts.
        with tempfile.TemporaryDirectory(prefix="runlog-verify-") as scratch:
            copy, truncated = await anyio.to_thread.run_sync(_padded_copy, path, Path(scratch))
            try:
                async with existing_store(str(copy)) as opened:
                    head = await _head_of_damaged(opened)
                    log = await _check_log(opened, head, workers, parallel_from)
            except RunLogError:
                raise exc from None  # the copy is no better: name the file the user gave
        report = VerifyReport(
            head=head,
            log=log,
            projection=None,
            read_model_position=0,
            damaged=f"SQLite refuses the file ({exc}); checked the pages that survive",
            truncated=truncated,
        )
    return msgspec.structs.replace(report, advice=_advice(report, store))


def _store_name(store: StoreArg) -> str:
    if isinstance(store, EventStore):
        return store.url
    return str(store_target(store, root_dir()))


def _advice(report: VerifyReport, store: StoreArg) -> str | None:
    """The one line that says what is damaged and what to do; None when all is sound."""
    if report.ok:
        return None
    name = _store_name(store)
    fault = report.log.first_fault
    if fault is not None:
        return (
            f"the log is damaged at position {fault.position} ({fault.kind}): restore "
            f"{name} from a backup"
            + (f"; positions 1..{fault.position - 1} are intact" if fault.position > 1 else "")
        )
    if report.truncated:
        return (
            f"the file ends early: the log stops at position {report.log.last_position}. "
            f"Restore {name} from a backup"
        )
    rebuild = (
        f"read models are derived from the log and rebuilt from it: `runlog export --store "
        f"{name} -o log.jsonl` then `runlog import log.jsonl --store NEW.db` writes the log "
        "to a fresh store whose read models are folded from it on first use; use NEW.db"
    )
    if report.damaged is not None:
        return f"the log is intact, but SQLite reports damage elsewhere in the file; {rebuild}"
    if (
        report.heads is not None
        and not report.heads.ok
        and (report.projection is None or report.projection.ok)
    ):
        return (
            "the log is intact, but some run heads are not the fold of their runs' events: "
            f"`runlog rebuild-heads --store {name}` recomputes them from the log"
        )
    return f"the log is intact, but the stored read models are not; {rebuild}"


async def _verify(
    store: StoreArg,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    parallel_from: int,
    catch_up: bool,
) -> VerifyReport:
    async with existing_store(store) as opened, open_projector(opened) as projector:
        replay_error: str | None = None
        if catch_up:
            try:
                await projector.catch_up()
            except RunLogError as exc:  # a damaged log; the log check says where
                replay_error = f"the read model cannot fold the log: {exc}"
        read_model_position = await projector.stored_position()
        head = max(await opened.head(), read_model_position)
        projection: ProjectionCheck | None = None
        log: LogCheck | None = None
        undecodable: DecodeError | None = None

        # The replay decodes every payload up to the read model's position, and names
        # the position of one that does not decode; the log check decodes the rest.
        decode_from = read_model_position + 1 if replay_error is None else 1

        async def check() -> None:
            nonlocal log
            log = await _check_log(opened, head, workers, parallel_from, decode_from)

        snapshot: Snapshot | None = None

        read_model_error: str | None = None

        async def take_snapshot() -> None:
            # Reading the stored read model is a third of the work; on a long log a
            # worker process does it, in one read transaction, beside the replay.
            nonlocal snapshot, read_model_error
            try:
                if read_model_position < parallel_from or not _shareable(opened):
                    snapshot = await projector.snapshot()
                else:
                    encoded = await anyio.to_process.run_sync(
                        _snapshot_in_process, opened.url, cancellable=True
                    )
                    snapshot = _decode_snapshot(encoded)
            except Exception as exc:  # damaged read-model pages; reported, never raised
                read_model_error = f"the stored read models cannot be read: {_why(exc)}"

        heads: HeadsCheck | None = None
        heads_error: str | None = None

        async def compare_heads() -> None:
            nonlocal heads, heads_error
            if getattr(opened, "stored_heads", None) is None:
                return  # a served store: its server keeps (and verifies) its own
            try:
                if head < parallel_from or not _shareable(opened):
                    heads = await check_heads(opened)
                else:
                    encoded = await anyio.to_process.run_sync(
                        _heads_in_process, opened.url, cancellable=True
                    )
                    heads = _decode_heads(encoded)
            except DecodeError:
                heads_error = "the run heads were not checked: the log does not decode"
            except Exception as exc:  # reported, never raised
                heads_error = f"the run heads could not be checked: {_why(exc)}"

        async with anyio.create_task_group() as group:
            group.start_soon(check)
            group.start_soon(compare_heads)
            try:
                group.start_soon(take_snapshot)
                done = 0

                def advance(count: int) -> None:
                    nonlocal done
                    done += count
                    if progress is not None:
                        progress(done, read_model_position)

                replayed = await projector.replay(read_model_position, progress=advance)
            except DecodeError as exc:
                replay_error = replay_error or str(exc)
                undecodable = exc
            except Exception as exc:  # the log check says where; the report says what
                replay_error = replay_error or _why(exc)
        if replay_error is None and snapshot is not None and read_model_position:
            try:
                if snapshot.position > read_model_position:  # others caught it up meanwhile
                    replayed = await projector.replay(snapshot.position, into=replayed)
                projection = compare_snapshots(snapshot, replayed.snapshot_now())
            except DecodeError as exc:
                replay_error, undecodable = str(exc), exc
            except Exception as exc:
                replay_error = _why(exc)
    assert log is not None
    if undecodable is not None and undecodable.position is not None:
        fault = LogFault(undecodable.position, "decode", str(undecodable))
        log = msgspec.structs.replace(
            log, faults=tuple(sorted((*log.faults, fault), key=lambda f: f.position))
        )
    return VerifyReport(
        head=head,
        log=log,
        projection=projection,
        read_model_position=read_model_position,
        replay_error=replay_error,
        read_model_error=read_model_error,
        heads=heads,
        heads_error=heads_error,
    )


def _why(exc: BaseException) -> str:
    """An error as one line: the project's own say what they are; others get their type."""
    if isinstance(exc, RunLogError):
        return str(exc)
    cause = exc.__cause__
    if isinstance(cause, RunLogError):  # a worker process's error, wrapped by anyio
        return str(cause)
    return f"{type(exc).__name__}: {exc}"


async def _check_log(
    store: EventStore, head: int, workers: int | None, parallel_from: int, decode_from: int = 1
) -> LogCheck:
    """``check_range`` over 1..head, in worker processes by ranges when the log is long."""
    shards = _shards(store, head, workers, parallel_from)
    if len(shards) == 1:
        return merge_ranges([await _check_here(store, 1, head, decode_from)])
    results: list[RangeCheck | None] = [None] * len(shards)

    async def check_shard(index: int, first: int, last: int) -> None:
        # A worker that fails (its store would not open, damage it did not expect, a
        # broken process) never ends the audit: this process checks its range again,
        # and that check names the first position it cannot read.
        try:
            encoded = await anyio.to_process.run_sync(
                _check_range_in_process, store.url, first, last, decode_from, cancellable=True
            )
            results[index] = _decode_range(encoded)
        except Exception:
            results[index] = await _check_here(store, first, last, decode_from)

    async with anyio.create_task_group() as group:
        for index, (first, last) in enumerate(shards):
            group.start_soon(check_shard, index, first, last)
    return merge_ranges([r for r in results if r is not None])


async def _check_here(store: EventStore, first: int, last: int, decode_from: int) -> RangeCheck:
    """``check_range`` in this process; a failure it does not expect becomes a fault."""
    try:
        return await check_range(store, first, last, decode_from=decode_from)
    except Exception as exc:
        fault = LogFault(
            first, "unreadable", f"positions {first}..{last} cannot be read: {_why(exc)}"
        )
        empty = LogCheck(
            first_position=first,
            last_position=last,
            events=0,
            streams=0,
            head_hash="",
            faults=(fault,),
        )
        return RangeCheck(empty, {})


async def _head_of_damaged(store: EventStore) -> int:
    """The head of a damaged log: its own, else the last position its streams record."""
    try:
        return await store.head()
    except RunLogError:
        pass
    try:
        return max((s.last_position for s in await store.streams()), default=0)
    except RunLogError:
        return 1  # nothing to go by: at least position 1 should be there


def _shareable(store: EventStore) -> bool:
    return store.url != "sqlite://"  # an in-memory store lives in this process only


def _shards(
    store: EventStore, head: int, workers: int | None, parallel_from: int
) -> list[tuple[int, int]]:
    count = (os.cpu_count() or 1) if workers is None else workers
    if count <= 0 or head < max(parallel_from, 2) or not _shareable(store):
        return [(1, head)]
    size = -(-head // count)
    return [(first, min(first + size - 1, head)) for first in range(1, head + 1, size)]


def _snapshot_in_process(url: str) -> bytes:
    """Run in a worker process: the stored read model's snapshot, as msgpack."""

    async def main() -> Snapshot:
        async with open_store(url, create=False) as store, open_projector(store) as projector:
            return await projector.snapshot()

    return msgspec.msgpack.encode(anyio.run(main))


def _heads_in_process(url: str) -> bytes:
    """Run in a worker process: the run heads compared with the fold of their streams."""

    async def main() -> HeadsCheck:
        async with open_store(url, create=False) as store:
            return await check_heads(store)

    return msgspec.msgpack.encode(anyio.run(main))


def _check_range_in_process(url: str, first: int, last: int, decode_from: int) -> bytes:
    """Run in a worker process: check ``first..last`` of the store at ``url``."""

    async def main() -> RangeCheck:
        async with open_store(url, create=False) as store:
            return await check_range(store, first, last, decode_from=decode_from)

    return msgspec.msgpack.encode(anyio.run(main))


def _local_path(store: StoreArg) -> Path | None:
    if isinstance(store, EventStore):
        return None
    return parse_location(store_target(store, root_dir())).path


def _padded_copy(path: Path, scratch: Path) -> tuple[Path, bool]:
    """A copy of ``path`` (and its WAL) with zero pages up to the size its header records,
    and whether it needed them (the file was truncated)."""
    copy = scratch / path.name
    shutil.copyfile(path, copy)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    header = copy.read_bytes()[:100]
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if page_size and pages and copy.stat().st_size < page_size * pages:
        with copy.open("r+b") as file:
            file.truncate(page_size * pages)
        return copy, True
    return copy, False
