"""Scale: one store grown in place to 1 M, 10 M and 100 M events, measured at each size.

What it builds
    One store (a SQLite file, or a PostgreSQL database with ``--backend postgres``) is
    generated through the store's own bulk path, ``import_events`` (on a store that keeps
    run heads, as every store ``api`` opens does, so the import keeps them), in batches of
    ``--batch`` (50,000) events, each batch one transaction across many streams; the
    next batch is built while the store writes the last one. ``--runs`` runs (100,000)
    in streams ``run:scale/r{k}``: each opens with a real ``RunInitialized`` (config,
    host, pid), continues with 4-metric ``StepLogged`` events, and ends every growth
    phase by its number: ``k % 4 == 0`` exits 0 (finished), ``1`` is marked preempting
    and exits 143 (preempted), ``2`` is marked preempting, ``3`` keeps running; a run
    that exited opens the next phase with a resuming ``RunInitialized``. The runs' events
    are interleaved in the log, ``--chunk`` (100) of one run at a time, as concurrent
    writers interleave them. One long run, ``run:scale/long``, gets ``--long-steps``
    (100,000) steps in the first phase only: its 500-point history is measured at every
    size, so what grows is the store around it, not the run.

    The store grows from one size to the next (``--sizes``, default ``1e6,1e7,1e8``), so
    the events are generated once; the generation rate (events/s, the imports and the
    building of their rows) is printed for each phase.

What it measures at each size
    - disk bytes per event: the SQLite file + its WAL (with the read model, which lives in
      the same file), or ``pg_database_size`` on PostgreSQL;
    - open + one run's state: a fresh process opens the store and its projector and asks
      ``projector.run("scale", "r{runs // 2}")``; baseline: raw ``sqlite3``/``asyncpg``
      connect + the run's last event by the ``(stream, version)`` index, decoded;
    - a page of the runs list: ``projector.runs("scale")`` (what ``GET /api/runs`` and
      ``runlog runs`` call), its first ``--page`` (50) runs, the first call in that fresh
      process; baseline: the first 50 run streams' last events by index, decoded;
    - one run's 500-point history: ``projector.history("scale", "long", points=500)``,
      the first call in that fresh process; baseline: 500 evenly spaced events of the run
      read by the ``(stream, version)`` index, decoded;
    - a resume decision: ``--repeat`` (5) times, ``--unfolded`` (up to 1,000,000) events are
      appended after the read model's checkpoint (the bulk path for the fleet, then the
      normal ``append`` for one run ``run:scale/resume{i}``, a preempted job's last steps and
      its ``RunExited(143)``), and a fresh process times
      ``api.init(project="scale", id="resume{i}", resume="must", store=...)`` until it
      returns (the decision); the child then finishes the run with 143, untimed;
      baseline: the raw connect + indexed lookup above;
    - rebuild: a fresh process runs ``projector.rebuild()`` (drop the read model, fold the
      whole log), events/s and peak RSS (``VmHWM`` after resetting it, see ``_shared``);
      baseline: raw read of every payload in log order + decode, also in a fresh process.
    The query figures are the median of ``--repeat`` rounds, raw and store interleaved,
    each in its own process (a parent's caches never help). The growth ratio of each
    figure from one size to the next and from the first to the last is printed, and the
    last line is one JSON object of all figures.

Before each size
    The free disk space is checked against what the next size needs (bytes per event
    measured so far, 1.3x for safety, plus ``--min-free-gb``) and the time it would take
    (the measured generation, fold, rebuild and read rates) against ``--max-minutes``;
    if either does not fit, the script stops there, saying which size, where and why,
    and extrapolates each figure to the sizes it did not reach from the last two measured.

Run ``python benchmarks/bench_scale.py`` (1 M, 10 M, 100 M on SQLite; keep the file
with ``--keep`` and choose its disk with ``--dir``), ``--backend postgres --sizes 1e7``
for PostgreSQL (``--dsn postgresql://...`` for a server; else a throwaway one is
started as the tests do), ``--events 5000`` for a smoke run (sizes 500 and 5000).
``--child KIND --target T ...`` is what the fresh processes run.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import json
import math
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

from _shared import metrics, peak_rss_mb, reset_peak_rss

import api
from eventstore import (
    Event,
    ExpectedVersion,
    PreemptMarked,
    RunExited,
    RunInitialized,
    StepLogged,
    StoredEvent,
    default_codec,
    event_id_bytes,
    open_store,
)
from projections import open_projector, run_heads

PROJECT = "scale"
LONG_RUN = "long"
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a preempted job exits with
PREFIX = f"run:{PROJECT}/"
FIRST_BYTES_PER_EVENT = 600.0
Row = tuple[str, int, bytes]  # stream, version, payload
ENDINGS = ("finished", "preempted", "preempting", "running")  # by run number % 4


# --- generating the fleet -------------------------------------------------------------


class RunGen:
    """One run of the fleet: what its stream holds so far, and its next events."""

    __slots__ = (
        "_head",
        "_steps",
        "_tail",
        "_tail_done",
        "exited",
        "incarnation",
        "next_step",
        "number",
        "run_id",
        "stream",
        "version",
    )

    def __init__(self, number: int, run_id: str | None = None) -> None:
        self.number = number
        self.run_id = run_id if run_id is not None else f"r{number}"
        self.stream = PREFIX + self.run_id
        self.version = -1  # the stream's last version (-1: no stream yet)
        self.incarnation = 0
        self.next_step = 0
        self.exited = False
        self._head: list[Event] = []
        self._steps = self._tail = self._tail_done = 0

    def head(self) -> list[Event]:
        """What opens a phase: the first start, or a resume after an exit."""
        if self.incarnation == 0:
            return [self._start(resumed=False)]
        if self.exited:
            return [self._start(resumed=True)]
        return []

    def tail(self) -> list[Event]:
        """What closes a phase, by the run's number."""
        ending = ENDINGS[self.number % 4]
        if ending == "finished":
            return [RunExited(incarnation=self.incarnation or 1, exit_code=0)]
        if ending == "preempted":
            return [
                PreemptMarked(incarnation=self.incarnation or 1),
                RunExited(incarnation=self.incarnation or 1, exit_code=EXIT_PREEMPTED),
            ]
        if ending == "preempting":
            return [PreemptMarked(incarnation=self.incarnation or 1)]
        return []

    def begin(self, quota: int) -> None:
        """Plan the run's next ``quota`` events: a head, steps, a tail (trimmed to fit)."""
        self._head = self.head()[:quota]
        self._tail = min(len(self.tail()), quota - len(self._head))
        self._tail_done = 0
        self._steps = quota - len(self._head) - self._tail

    def take(self, count: int, encode: Callable[[Event], bytes]) -> list[Row]:
        """The next ``count`` planned events as rows (stream, version, payload)."""
        out: list[Row] = []
        while count and self._head:
            self._count(event := self._head.pop(0))
            out.append((self.stream, self.version, encode(event)))
            count -= 1
        steps = min(count, self._steps)
        if steps:
            stream, incarnation, first, version = (
                self.stream,
                self.incarnation,
                self.next_step,
                self.version + 1,
            )
            out += [
                (
                    stream,
                    version + i,
                    encode(StepLogged(incarnation=incarnation, step=step, metrics=metrics(step))),
                )
                for i, step in enumerate(range(first, first + steps))
            ]
            self.version += steps
            self.next_step += steps
            self._steps -= steps
            count -= steps
        # The tail is built after the head was counted: its incarnation is the new one.
        ends = self.tail()[self._tail_done : self._tail] if count and not self._steps else []
        for event in ends[:count]:
            self._count(event)
            out.append((self.stream, self.version, encode(event)))
            self._tail_done += 1
        return out

    def _count(self, event: Event) -> Event:
        self.version += 1
        if isinstance(event, RunInitialized):
            self.incarnation = event.incarnation
            self.exited = False
        elif isinstance(event, RunExited):
            self.exited = True
        return event

    def _start(self, *, resumed: bool) -> RunInitialized:
        config = {"lr": 3e-4, "batch_size": 64, "model": "resnet18", "seed": self.number}
        return RunInitialized(
            project=PROJECT,
            run_id=self.run_id,
            incarnation=self.incarnation + 1,
            resumed=resumed,
            starting_step=self.next_step,
            config={} if resumed else config,
            host="bench-host",
            pid=4242 + self.incarnation,
        )

    def expected_status(self) -> str:
        """The status the fold must give the run after a phase."""
        if self.incarnation == 0:
            return "pending"
        return ENDINGS[self.number % 4]


class Phase:
    """The fleet's events of one growth phase, ``chunk`` of one run at a time,
    round-robin over the runs, taken in any amounts."""

    def __init__(
        self, runs: list[RunGen], quotas: list[int], chunk: int, encode: Callable[[Event], bytes]
    ) -> None:
        for run, quota in zip(runs, quotas, strict=True):
            run.begin(quota)
        self._chunks = self._rounds(runs, list(quotas), chunk, encode)
        self._buffer: list[Row] = []
        self._left = sum(quotas)

    @staticmethod
    def _rounds(
        runs: list[RunGen], left: list[int], chunk: int, encode: Callable[[Event], bytes]
    ) -> Iterator[list[Row]]:
        while any(left):
            for index, run in enumerate(runs):
                take = min(chunk, left[index])
                if take:
                    left[index] -= take
                    yield run.take(take, encode)

    @property
    def left(self) -> int:
        """Events of the phase not taken yet."""
        return self._left

    def take(self, count: int) -> list[Row]:
        """The phase's next ``count`` events as rows."""
        if count > self._left:
            raise SystemExit(f"the phase has {self._left:,} events left, not {count:,}")
        out = self._buffer
        while len(out) < count:
            out.extend(next(self._chunks))
        self._buffer = out[count:]
        self._left -= count
        return out[:count]


class Generator:
    """Feeds a store through ``import_events`` in big batches, one batch in flight."""

    def __init__(self, target: str, batch: int) -> None:
        self.target = target
        self.batch = batch
        self.seconds = 0.0
        self.events = 0
        self.encode = default_codec.encode

    async def feed(self, take: Callable[[int], list[Row]], count: int) -> None:
        """Import ``count`` events, as ``take(n)`` gives them, in batches."""
        if count <= 0:
            return
        began = perf_counter()
        # Through a store that keeps run heads, as every store ``api`` opens does: the
        # bulk path keeps them current as appends do.
        async with open_store(self.target, inline=run_heads()) as store:
            pending: asyncio.Task[Any] | None = None
            try:
                done = 0
                while done < count:
                    size = min(self.batch, count - done)
                    rows = take(size)
                    now = time.time_ns() // 1000
                    ids = event_id_bytes(size)
                    batch = [
                        StoredEvent(0, stream, version, event_id, now, data, b"")
                        for (stream, version, data), event_id in zip(rows, ids, strict=True)
                    ]
                    if pending is not None:
                        await pending
                    pending = asyncio.create_task(store.import_events(batch))
                    done += size
                if pending is not None:
                    await pending
                    pending = None
            finally:
                if pending is not None:  # an error while building: do not leave it running
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
        self.seconds += perf_counter() - began
        self.events += count

    async def append_run(self, run: RunGen, steps: int) -> None:
        """A job's own writes through ``append``: a (re)start, ``steps`` steps, exit 143."""
        began = perf_counter()
        expected: ExpectedVersion = "no_stream" if run.version < 0 else "any"
        events = [run._count(event) for event in run.head()]
        for step in range(run.next_step, run.next_step + steps):
            step_event = StepLogged(incarnation=run.incarnation, step=step, metrics=metrics(step))
            events.append(run._count(step_event))
        run.next_step += steps
        events.append(run._count(RunExited(incarnation=run.incarnation, exit_code=EXIT_PREEMPTED)))
        async with open_store(self.target, inline=run_heads()) as store:
            for start in range(0, len(events), 1000):
                await store.append(run.stream, events[start : start + 1000], expected)
                expected = "any"
        self.seconds += perf_counter() - began
        self.events += len(events)


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal non-negative integers."""
    base, extra = divmod(total, parts)
    return [base + (index < extra) for index in range(parts)]


# --- fresh-process measurements (what the children run) -------------------------------


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


async def child_query(target: str, run_id: str, page: int, points: int) -> dict[str, Any]:
    """Open + one run's state, a runs page, a 500-point history: first calls, then again."""
    out: dict[str, Any] = {}
    began = perf_counter()
    async with open_store(target, create=False) as store, open_projector(store) as projector:
        state = await projector.run(PROJECT, run_id)
        out["open_state_ms"] = (perf_counter() - began) * 1e3
        assert state is not None, f"no run {run_id}"
        out.update(status=str(state.status.value), steps=state.steps, incarnation=state.incarnation)
        for label in ("", "_again"):
            began = perf_counter()
            if "limit" in inspect.signature(projector.runs).parameters:
                rows = await projector.runs(PROJECT, limit=page)  # type: ignore[call-arg]
            else:
                rows = (await projector.runs(PROJECT))[:page]
            out[f"page_ms{label}"] = (perf_counter() - began) * 1e3
            out["page_rows"] = len(rows)
            began = perf_counter()
            history = await projector.history(PROJECT, LONG_RUN, points=points)
            out[f"history_ms{label}"] = (perf_counter() - began) * 1e3
            out["history_points"] = len(history)
            out["history_last_step"] = history[-1].step if history else None
        began = perf_counter()
        await projector.run(PROJECT, run_id)
        out["state_ms_again"] = (perf_counter() - began) * 1e3
    return out


def sqlite_raw_query(path: str, run_id: str, page: int, points: int) -> dict[str, Any]:
    """The same three questions answered by indexed ``sqlite3`` lookups + decode."""
    decode = default_codec.decode
    out: dict[str, Any] = {}
    began = perf_counter()
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT e.data FROM streams s JOIN events e "
            "ON e.stream_id = s.stream_id AND e.version = s.version WHERE s.name = ?",
            (PREFIX + run_id,),
        ).fetchone()
        decode(row[0])
        out["open_state_ms"] = (perf_counter() - began) * 1e3
        began = perf_counter()
        rows = conn.execute(
            "SELECT e.data FROM streams s JOIN events e ON e.position = s.last_position "
            "WHERE substr(s.name, 1, ?) = ? ORDER BY s.stream_id LIMIT ?",
            (len(PREFIX), PREFIX, page),
        ).fetchall()
        for (data,) in rows:
            decode(data)
        out["page_ms"] = (perf_counter() - began) * 1e3
        began = perf_counter()
        stream_id, version = conn.execute(
            "SELECT stream_id, version FROM streams WHERE name = ?", (PREFIX + LONG_RUN,)
        ).fetchone()
        for wanted in spaced(version, points):
            (data,) = conn.execute(
                "SELECT data FROM events WHERE stream_id = ? AND version = ?", (stream_id, wanted)
            ).fetchone()
            decode(data)
        out["history_ms"] = (perf_counter() - began) * 1e3
    finally:
        conn.close()
    return out


async def postgres_raw_query(dsn: str, run_id: str, page: int, points: int) -> dict[str, Any]:
    """The same three questions answered by indexed ``asyncpg`` lookups + decode."""
    import asyncpg

    decode = default_codec.decode
    out: dict[str, Any] = {}
    began = perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        data = await conn.fetchval(
            "SELECT e.data FROM streams s JOIN events e "
            "ON e.stream_id = s.stream_id AND e.version = s.version WHERE s.name = $1",
            PREFIX + run_id,
        )
        decode(data)
        out["open_state_ms"] = (perf_counter() - began) * 1e3
        began = perf_counter()
        rows = await conn.fetch(
            "SELECT e.data FROM streams s JOIN events e ON e.position = s.last_position "
            "WHERE left(s.name, $1) = $2 ORDER BY s.stream_id LIMIT $3",
            len(PREFIX),
            PREFIX,
            page,
        )
        for row in rows:
            decode(row[0])
        out["page_ms"] = (perf_counter() - began) * 1e3
        began = perf_counter()
        found = await conn.fetchrow(
            "SELECT stream_id, version FROM streams WHERE name = $1", PREFIX + LONG_RUN
        )
        assert found is not None
        statement = await conn.prepare(
            "SELECT data FROM events WHERE stream_id = $1 AND version = $2"
        )
        for wanted in spaced(found["version"], points):
            decode(await statement.fetchval(found["stream_id"], wanted))
        out["history_ms"] = (perf_counter() - began) * 1e3
    finally:
        await conn.close()
    return out


def spaced(last: int, points: int) -> list[int]:
    """``points`` versions spread evenly over ``0 .. last``, first and last included."""
    if last + 1 <= points:
        return list(range(last + 1))
    return sorted({round(index * last / (points - 1)) for index in range(points)})


async def child_resume(target: str, run_id: str) -> dict[str, Any]:
    """``api.init(resume="must")`` until it returns: the decision; then finish(143)."""
    began = perf_counter()
    run = await api.init(project=PROJECT, id=run_id, resume="must", store=target)
    decided = perf_counter()
    out = {
        "resume_ms": (decided - began) * 1e3,
        "step": run.step,
        "resumed": run.resumed,
        "incarnation": run.incarnation,
    }
    await run.finish(EXIT_PREEMPTED)
    out["finish_ms"] = (perf_counter() - decided) * 1e3
    return out


async def child_rebuild(target: str) -> dict[str, Any]:
    """``projector.rebuild()`` of the whole log: events/s and peak RSS."""
    reset = reset_peak_rss()
    async with open_store(target, create=False) as store, open_projector(store) as projector:
        began = perf_counter()
        head = await projector.rebuild()
        seconds = perf_counter() - began
    return {
        "events": head,
        "seconds": seconds,
        "events_per_s": head / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
        "rss_reset": reset,
    }


async def child_raw_read(target: str) -> dict[str, Any]:
    """Every payload in log order, decoded, by the driver alone: events/s and peak RSS."""
    reset = reset_peak_rss()
    decode = default_codec.decode
    count = 0
    began = perf_counter()
    if is_postgres(target):
        import asyncpg

        conn = await asyncpg.connect(target)
        try:
            async with conn.transaction():
                async for row in conn.cursor(
                    "SELECT data FROM events ORDER BY position", prefetch=5000
                ):
                    decode(row[0])
                    count += 1
        finally:
            await conn.close()
    else:
        conn3 = sqlite3.connect(target)
        try:
            cursor = conn3.execute("SELECT data FROM events ORDER BY position")
            while rows := cursor.fetchmany(5000):
                for (data,) in rows:
                    decode(data)
                count += len(rows)
        finally:
            conn3.close()
    seconds = perf_counter() - began
    return {
        "events": count,
        "seconds": seconds,
        "events_per_s": count / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
        "rss_reset": reset,
    }


def ru_maxrss_mb() -> float:
    """``getrusage``'s peak RSS of this process, in MB, for comparison with ``VmHWM``:
    it also counts what ``exec`` inherited, so it can only be higher (see ``_shared``)."""
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    target = args.target
    kind = args.child
    if kind == "query":
        return asyncio.run(child_query(target, args.run_id, args.page, args.points))
    if kind == "raw-query":
        if is_postgres(target):
            return asyncio.run(postgres_raw_query(target, args.run_id, args.page, args.points))
        return sqlite_raw_query(target, args.run_id, args.page, args.points)
    if kind == "resume":
        return asyncio.run(child_resume(target, args.run_id))
    if kind == "rebuild":
        return asyncio.run(child_rebuild(target))
    return asyncio.run(child_raw_read(target))


def fresh(*args: object) -> dict[str, Any]:
    """Run this script as a child with ``args``; the JSON object on its last line."""
    began = perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, *map(str, args)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(
            f"a measuring process failed ({' '.join(map(str, args))}):\n{done.stderr[-4000:]}"
        )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_wall_ms"] = (perf_counter() - began) * 1e3
    return figures


# --- the parent ------------------------------------------------------------------------


class Backend:
    """Where the store lives, its size on disk and the free space there."""

    def __init__(self, target: str, disk_dir: Path | None, cleanup: Any = None) -> None:
        self.target = target
        self.disk_dir = disk_dir
        self.cleanup = cleanup

    def store_bytes(self) -> dict[str, int]:
        if is_postgres(self.target):
            return asyncio.run(_pg_sizes(self.target))
        path = Path(self.target)
        wal = path.with_name(path.name + "-wal")
        return {
            "file_bytes": path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        }

    def free_bytes(self) -> int | None:
        if self.disk_dir is None:
            return None
        return shutil.disk_usage(self.disk_dir).free


async def _pg_sizes(dsn: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        events = await conn.fetchval("SELECT pg_total_relation_size('events')")
    finally:
        await conn.close()
    return {"file_bytes": int(size), "wal_bytes": 0, "events_table_bytes": int(events)}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def measure_size(
    args: argparse.Namespace,
    backend: Backend,
    fleet: list[RunGen],
    targets: list[RunGen],
    long_run: RunGen,
    gen: Generator,
    previous: int,
    size: int,
) -> dict[str, Any]:
    """Grow the store from ``previous`` to ``size`` events and measure it there."""
    target = backend.target
    repeat = args.repeat
    grow = size - previous
    # Each resume round: `unfolded` events behind the read model, the last `per_target + 2`
    # of them the resumed job's own (a (re)start, its steps, its exit); the child adds
    # about two more (its RunInitialized and RunExited).
    unfolded = max(4, min(args.unfolded, grow // (2 * (repeat + 1))))
    per_target = max(1, min(unfolded // 10, 100_000))
    long_events = min(args.long_steps, grow // 10) + 3 if previous == 0 else 0
    bulk = grow - long_events - repeat * (per_target + 4)
    if bulk < len(fleet):
        raise SystemExit(f"size {size:,} is too small for {len(fleet):,} runs; lower --runs")
    began_gen_events, began_gen_seconds = gen.events, gen.seconds
    source = Phase(fleet, split(bulk, len(fleet)), args.chunk, gen.encode)
    first = max(0, bulk - repeat * max(0, unfolded - per_target - 2))
    windows = split(bulk - first, repeat)
    phase_began = perf_counter()

    if long_events:
        long_run.begin(long_events)
        asyncio.run(gen.feed(lambda n: long_run.take(n, gen.encode), long_events))
    asyncio.run(gen.feed(source.take, first))
    print(
        f"  generated {gen.events - began_gen_events:,} events so far in this phase "
        f"({(gen.events - began_gen_events) / (gen.seconds - began_gen_seconds):,.0f} events/s)"
    )

    # The measured rebuild (a fresh process) folds everything written so far: the read
    # model is current, so the resume rounds' events are behind its checkpoint. The log
    # is folded once per size, the rest of it by the catch-up before the queries.
    rebuilt_at = asyncio.run(_head(target))
    rebuild = fresh("--child", "rebuild", "--target", target)
    raw_read = fresh("--child", "raw-read", "--target", target)
    if rebuild["events"] != rebuilt_at or raw_read["events"] != rebuilt_at:
        raise SystemExit(
            f"the log holds {raw_read['events']:,} events and the rebuild reached "
            f"{rebuild['events']:,}; {rebuilt_at:,} were written"
        )
    print(
        f"  rebuild of {rebuilt_at:,} events: {rebuild['events_per_s']:,.0f} events/s, peak RSS "
        f"{rebuild['peak_rss_mb']:.0f} MB; raw read + decode {raw_read['events_per_s']:,.0f} "
        f"events/s, peak RSS {raw_read['peak_rss_mb']:.0f} MB; ratio "
        f"{rebuild['events_per_s'] / raw_read['events_per_s']:.3f}"
    )

    resumes: list[dict[str, Any]] = []
    for index in range(repeat):
        window_began = gen.events
        asyncio.run(gen.feed(source.take, windows[index]))
        job = targets[index]
        asyncio.run(gen.append_run(job, per_target))
        figures = fresh("--child", "resume", "--target", target, "--run-id", job.run_id)
        want = {"resumed": True, "step": job.next_step, "incarnation": job.incarnation + 1}
        got = {key: figures[key] for key in want}
        if got != want:
            raise SystemExit(f"resume of {job.run_id}: the run says {got}, not {want}")
        # What the child wrote (its RunInitialized, its exit): the job's next start follows.
        job.version = asyncio.run(_stream_version(target, job.stream))
        job.incarnation = figures["incarnation"]
        job.exited = True
        figures["unfolded_events"] = gen.events - window_began
        resumes.append(figures)
        print(
            f"  resume {index + 1}/{repeat}: {figures['unfolded_events']:,} events unfolded, "
            f"decision {figures['resume_ms']:.1f} ms (finish {figures['finish_ms']:.0f} ms)"
        )
    if source.left:
        raise SystemExit(f"{source.left:,} events of the phase were not written")
    gen_events = gen.events - began_gen_events
    gen_seconds = gen.seconds - began_gen_seconds
    head = asyncio.run(_head(target))
    print(
        f"  generation: {gen_events:,} events in {gen_seconds:.1f} s, "
        f"{gen_events / gen_seconds:,.0f} events/s (import batches of {args.batch:,})"
    )

    catch_began = perf_counter()
    folded = asyncio.run(_catch_up(target))
    catch_seconds = perf_counter() - catch_began
    print(f"  read model caught up to {folded:,} (untimed): {catch_seconds:.1f} s")

    probe = fleet[len(fleet) // 2]
    queries: list[dict[str, Any]] = []
    raws: list[dict[str, Any]] = []
    for _ in range(repeat):
        common = ("--target", target, "--run-id", probe.run_id, "--page", args.page)
        raws.append(fresh("--child", "raw-query", *common, "--points", args.points))
        queries.append(fresh("--child", "query", *common, "--points", args.points))
    state = queries[-1]
    want_state = {"status": probe.expected_status(), "incarnation": probe.incarnation}
    got_state = {key: state[key] for key in want_state}
    if got_state != want_state:
        raise SystemExit(f"run {probe.run_id}: the read model says {got_state}, not {want_state}")
    if (
        state["history_last_step"] != long_run.next_step - 1
        or state["history_points"] > args.points
    ):
        raise SystemExit(
            f"history of {LONG_RUN}: {state['history_points']} points ending at step "
            f"{state['history_last_step']}; expected at most {args.points} ending at "
            f"{long_run.next_step - 1}"
        )
    sizes = backend.store_bytes()
    total_bytes = sizes["file_bytes"] + sizes["wal_bytes"]
    figures: dict[str, Any] = {
        "events": head,
        "runs": len(fleet) + len(targets) + 1,
        **sizes,
        "bytes_per_event": round(total_bytes / head, 1),
        **(
            {"events_table_bytes_per_event": round(sizes["events_table_bytes"] / head, 1)}
            if "events_table_bytes" in sizes
            else {}
        ),
        "generation_events": gen_events,
        "generation_events_per_s": round(gen_events / gen_seconds),
        "catch_up_s": round(catch_seconds, 2),
        "catch_up_events": folded - rebuilt_at,
        "rebuild_events": rebuilt_at,
        "open_state_ms": median([q["open_state_ms"] for q in queries]),
        "raw_open_state_ms": median([r["open_state_ms"] for r in raws]),
        "page_ms": median([q["page_ms"] for q in queries]),
        "page_ms_again": median([q["page_ms_again"] for q in queries]),
        "raw_page_ms": median([r["page_ms"] for r in raws]),
        "page_rows": state["page_rows"],
        "history_ms": median([q["history_ms"] for q in queries]),
        "history_ms_again": median([q["history_ms_again"] for q in queries]),
        "raw_history_ms": median([r["history_ms"] for r in raws]),
        "history_points": state["history_points"],
        "history_run_steps": long_run.next_step,
        "state_ms_again": median([q["state_ms_again"] for q in queries]),
        "resume_ms": median([r["resume_ms"] for r in resumes]),
        "resume_ms_max": round(max(r["resume_ms"] for r in resumes), 2),
        "resume_unfolded_events": min(r["unfolded_events"] for r in resumes),
        "raw_resume_ms": median([r["open_state_ms"] for r in raws]),
        "rebuild_events_per_s": round(rebuild["events_per_s"]),
        "rebuild_s": round(rebuild["seconds"], 1),
        "rebuild_peak_rss_mb": round(rebuild["peak_rss_mb"], 1),
        "rebuild_ru_maxrss_mb": round(rebuild["ru_maxrss_mb"], 1),
        "raw_read_events_per_s": round(raw_read["events_per_s"]),
        "raw_read_s": round(raw_read["seconds"], 1),
        "raw_read_peak_rss_mb": round(raw_read["peak_rss_mb"], 1),
        "rebuild_ratio": round(rebuild["events_per_s"] / raw_read["events_per_s"], 3),
        "phase_s": round(perf_counter() - phase_began, 1),
        "samples": {
            "open_state_ms": [round(q["open_state_ms"], 2) for q in queries],
            "page_ms": [round(q["page_ms"], 2) for q in queries],
            "history_ms": [round(q["history_ms"], 2) for q in queries],
            "resume_ms": [round(r["resume_ms"], 2) for r in resumes],
            "raw_open_state_ms": [round(r["open_state_ms"], 2) for r in raws],
        },
    }
    show_size(figures)
    return figures


async def _stream_version(target: str, stream: str) -> int:
    async with open_store(target, create=False) as store:
        return await store.stream_version(stream)


async def _head(target: str) -> int:
    async with open_store(target, create=False) as store:
        return await store.head()


async def _catch_up(target: str) -> int:
    async with open_store(target, create=False) as store, open_projector(store) as projector:
        return await projector.catch_up()


HEADLINES = (
    ("bytes_per_event", "disk bytes per event", None),
    ("open_state_ms", "open + one run's state (ms)", "raw_open_state_ms"),
    ("page_ms", "runs page, first call (ms)", "raw_page_ms"),
    ("history_ms", "500-point history, first call (ms)", "raw_history_ms"),
    ("resume_ms", "resume decision (ms)", "raw_resume_ms"),
    ("rebuild_events_per_s", "rebuild (events/s)", "raw_read_events_per_s"),
    ("rebuild_peak_rss_mb", "rebuild peak RSS (MB)", "raw_read_peak_rss_mb"),
)


def show_size(figures: dict[str, Any]) -> None:
    print(f"  at {figures['events']:,} events ({figures['runs']:,} runs):")
    print(f"    {'':40}{'runlog':>14}{'baseline':>14}{'ratio':>9}")
    for key, label, base in HEADLINES:
        value = figures[key]
        if base is None:
            print(f"    {label:40}{value:>14,.1f}")
            continue
        baseline = figures[base]
        rate = key.endswith("per_s")
        ratio = value / baseline if rate else baseline / value if value else float("nan")
        shown = "" if key.endswith("rss_mb") else f"{ratio:>9.3f}"
        print(f"    {label:40}{value:>14,.2f}{baseline:>14,.2f}{shown}")
    print(
        f"    (median of the rounds; again in the same process: state "
        f"{figures['state_ms_again']:.2f} ms, page {figures['page_ms_again']:.2f} ms, "
        f"history {figures['history_ms_again']:.2f} ms; resume after "
        f"{figures['resume_unfolded_events']:,} unfolded events, max {figures['resume_ms_max']:.1f} ms)"
    )


def growth(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Each headline figure's ratio from one size to the next, and first to last."""
    out: dict[str, Any] = {}
    if len(measured) < 2:
        return out
    print("  growth (figure at the larger size / at the smaller):")
    for key, label, _ in HEADLINES:
        steps = [
            round(later[key] / earlier[key], 3) if earlier[key] else None
            for earlier, later in itertools.pairwise(measured)
        ]
        first, last = measured[0][key], measured[-1][key]
        total = round(last / first, 3) if first else None
        out[key] = {"steps": steps, "first_to_last": total}
        shown = " -> ".join(f"{s:.2f}x" if s is not None else "n/a" for s in steps)
        print(f"    {label:40}{shown}  (first to last {total}x)")
    return out


def extrapolate(measured: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Each headline figure at the sizes not reached, from the last two measured (a
    power law through them), or flat from the last if only one was measured."""
    out: dict[str, Any] = {}
    if not measured:
        return out
    last = measured[-1]
    for size in sizes:
        if size <= last["events"]:
            continue
        guess: dict[str, float] = {}
        for key, _, _ in HEADLINES:
            if len(measured) >= 2 and measured[-2][key] > 0 and last[key] > 0:
                earlier = measured[-2]
                power = math.log(last[key] / earlier[key]) / math.log(
                    last["events"] / earlier["events"]
                )
                guess[key] = round(last[key] * (size / last["events"]) ** power, 2)
            else:
                guess[key] = last[key]
        out[str(size)] = guess
        print(
            f"  extrapolated to {size:,} events (not measured): "
            + ", ".join(f"{k} {v:,}" for k, v in guess.items())
        )
    return out


def plan_check(
    args: argparse.Namespace,
    backend: Backend,
    measured: list[dict[str, Any]],
    size: int,
    started: float,
) -> str | None:
    """Why ``size`` cannot be reached (disk or time), or None if it fits."""
    current = measured[-1]["events"] if measured else 0
    # Before anything is measured: 600 bytes/event, above what SQLite and PostgreSQL
    # take at 1 M events with 100,000 runs (330 and 525); the time is not checked.
    per_event = measured[-1]["bytes_per_event"] if measured else FIRST_BYTES_PER_EVENT
    need = (size - current) * per_event * 1.3 + args.min_free_gb * 1e9
    free = backend.free_bytes()
    if free is not None and need > free:
        return (
            f"disk: growing to {size:,} events needs about {need / 1e9:,.1f} GB "
            f"({per_event:.0f} bytes/event x 1.3 + {args.min_free_gb} GB spare), "
            f"{free / 1e9:,.1f} GB free in {backend.disk_dir}"
        )
    if not measured:
        return None
    last = measured[-1]
    grow = size - current
    estimate = (
        grow / last["generation_events_per_s"]
        + size / last["rebuild_events_per_s"] * 1.1
        + size / last["raw_read_events_per_s"]
    )
    spent = (perf_counter() - started) / 60
    if spent + estimate / 60 > args.max_minutes:
        return (
            f"time: growing to {size:,} events and measuring would take about "
            f"{estimate / 60:,.0f} min (from the rates at {current:,}); {spent:,.0f} of "
            f"--max-minutes {args.max_minutes:g} spent"
        )
    print(
        f"  next: {size:,} events, about {estimate / 60:,.0f} min and "
        f"{(size - current) * per_event / 1e9:,.1f} GB more (free: "
        f"{'unknown' if free is None else f'{free / 1e9:,.1f} GB'})"
    )
    return None


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(float(part)) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise SystemExit(f"--sizes {text!r}: give positive sizes such as 1e6,1e7,1e8")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1e6,1e7,1e8", help="store sizes in events, grown in place"
    )
    parser.add_argument("--events", type=int, default=None, help="smoke run: sizes N/10 and N")
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the fleet")
    parser.add_argument("--batch", type=int, default=50_000, help="events per import transaction")
    parser.add_argument("--chunk", type=int, default=100, help="events of one run in a row")
    parser.add_argument("--long-steps", type=int, default=100_000, help="steps of the history run")
    parser.add_argument(
        "--unfolded",
        type=int,
        default=1_000_000,
        help="events behind the read model at each resume",
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds per figure (5; 3 with --events)"
    )
    parser.add_argument("--page", type=int, default=50, help="runs in a runs-list page")
    parser.add_argument("--points", type=int, default=500, help="history points")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--dsn", default=None, help="PostgreSQL server URL (a database is made on it)"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the SQLite file goes (a real disk)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=240.0,
        help="stop before a size that would not finish in time",
    )
    parser.add_argument("--min-free-gb", type=float, default=5.0, help="disk space to leave free")
    parser.add_argument("--child", choices=("query", "raw-query", "resume", "rebuild", "raw-read"))
    parser.add_argument("--target", default=None)
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args()

    if args.child is not None:
        figures = run_child(args)
        print(
            json.dumps(
                {key: round(v, 3) if isinstance(v, float) else v for key, v in figures.items()}
            )
        )
        return
    if args.events is not None:
        sizes = sorted({max(1, args.events // 10), args.events})
        args.runs = min(args.runs, max(1, args.events // 100))
        args.repeat = args.repeat or 3
    else:
        sizes = parse_sizes(args.sizes)
    args.repeat = args.repeat or 5
    if min(args.runs, args.batch, args.chunk, args.repeat, args.page, args.points) < 1:
        parser.error("--runs, --batch, --chunk, --repeat, --page and --points must be positive")

    backend = open_backend(args)
    try:
        run(args, backend, sizes)
    finally:
        if backend.cleanup is not None:
            backend.cleanup()


def open_backend(args: argparse.Namespace) -> Backend:
    if args.backend == "sqlite":
        workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-scale-", dir=args.dir))
        path = workdir / "store.db"

        def cleanup() -> None:
            if args.keep:
                print(f"kept the store: {path}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)

        return Backend(str(path), workdir, cleanup)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests._postgres
    from tests._postgres import PostgresServer, require_server, stop_server

    if args.dsn is not None:
        server = PostgresServer(args.dsn, None, None, None)
        stop = None
    else:
        server = require_server()
        stop = stop_server
    name = f"runlog_scale_{os.getpid()}"
    asyncio.run(_admin(server.url, f'CREATE DATABASE "{name}"'))
    data_dir = server.data_dir

    def cleanup() -> None:
        if args.keep:
            print(f"kept the database: {server.database(name)}", file=sys.stderr)
        else:
            asyncio.run(_admin(server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if stop is not None and not args.keep:
            stop()

    return Backend(server.database(name), data_dir, cleanup)


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def run(args: argparse.Namespace, backend: Backend, sizes: list[int]) -> None:
    started = perf_counter()
    where = "PostgreSQL" if is_postgres(backend.target) else f"SQLite {sqlite3.sqlite_version}"
    print(
        f"scale: {where}, sizes {', '.join(f'{s:,}' for s in sizes)} events grown in place; "
        f"{args.runs:,} runs + 1 long run ({args.long_steps:,} steps) + {args.repeat} resumed "
        f"jobs; import batches of {args.batch:,}; {args.repeat} rounds per figure, fresh processes"
    )
    fleet = [RunGen(number) for number in range(args.runs)]
    targets = [RunGen(args.runs + index, f"resume{index}") for index in range(args.repeat)]
    long_run = RunGen(args.runs + args.repeat, LONG_RUN)
    gen = Generator(backend.target, args.batch)
    measured: list[dict[str, Any]] = []
    stopped: str | None = None
    previous = 0
    for size in sizes:
        reason = plan_check(args, backend, measured, size, started)
        if reason is not None:
            stopped = f"stopped before {size:,} events, with the store at {previous:,}: {reason}"
            print(f"  {stopped}")
            break
        print(f"-- growing to {size:,} events")
        figures = measure_size(args, backend, fleet, targets, long_run, gen, previous, size)
        measured.append(figures)
        previous = figures["events"]
    ratios = growth(measured)
    guesses = extrapolate(measured, sizes)
    print(
        json.dumps(
            {
                "bench": "scale",
                "backend": args.backend,
                "sizes": sizes,
                "measured": {str(f["events"]): f for f in measured},
                "growth": ratios,
                "stopped": stopped,
                "extrapolated": guesses,
                "runs": args.runs,
                "repeat": args.repeat,
                "aggregate": f"median of {args.repeat}, fresh processes",
                "batch": args.batch,
                "total_s": round(perf_counter() - started, 1),
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
