"""Latency of one-event appends (one transaction per event), against raw ``sqlite3``.

What it measures
    ``N`` sequential ``await store.append("run:bench/r1", [event])`` calls on a fresh
    SQLite file store (WAL, ``synchronous=NORMAL``), each a transaction of its own.
    Each call is timed on its own (``time.perf_counter``); the script prints the median,
    99th percentile and mean latency in microseconds and the rate this gives (events/s
    = N / total time in ``append``). The event objects are built before each timed call;
    the store's timing includes encoding them, as ``append`` takes the objects.

Baselines, measured in the same run on fresh files in the same directory
    raw sqlite3
        stdlib ``sqlite3`` with the same pragmas, table
        ``raw(id INTEGER PRIMARY KEY, data BLOB NOT NULL)``: ``BEGIN``, one ``INSERT``
        of the event's msgpack bytes (encoded before timing), ``COMMIT``, per event,
        timed the same way. Ratio = store events/s / raw events/s.
    batched store
        ``store.append`` in batches of 1000 events (``--batched-events`` in all), to
        show what group commit saves: ``group_commit_speedup`` = batched events/s over
        single-event events/s.

A few untimed warm-up appends (``--warmup``) run first on each side, so the first
append's stream creation and statement preparation are not in the figures.

Run ``python benchmarks/bench_latency.py`` (5,000 single appends) or ``--events 5000``
for a smoke run (the same size). The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter

from eventstore import StepLogged, default_codec, open_store

STREAM = "run:bench/r1"


def metrics(step: int) -> dict[str, float]:
    """Four float metrics that vary with ``step``, like a training loop logs."""
    return {
        "loss": 2.0 / (1.0 + step * 1e-4) + (step % 97) * 1e-3,
        "acc": 1.0 - 1.0 / (2.0 + step * 1e-4),
        "lr": 3e-4 * 0.5 ** (step // 100_000),
        "grad_norm": 0.5 + (step * 7919 % 1000) / 1000.0,
    }


def event(step: int) -> StepLogged:
    return StepLogged(incarnation=1, step=step, metrics=metrics(step))


def batches(events: int, batch: int) -> Iterator[list[StepLogged]]:
    """The events ``0 .. events-1`` as lists of at most ``batch``, built lazily."""
    for start in range(0, events, batch):
        yield [event(i) for i in range(start, min(start + batch, events))]


def summary(latencies: list[float]) -> dict[str, float]:
    """Median, p99 and mean in microseconds, and events/s, of per-event latencies (s)."""
    micros = sorted(x * 1e6 for x in latencies)
    # Nearest-rank 99th percentile: the smallest latency >= 99% of the samples.
    p99 = micros[max(0, -(-99 * len(micros) // 100) - 1)]
    return {
        "median_us": statistics.median(micros),
        "p99_us": p99,
        "mean_us": statistics.fmean(micros),
        "events_per_s": len(latencies) / sum(latencies),
    }


async def store_single(path: Path, events: int, warmup: int) -> list[float]:
    """Per-call latencies (s) of ``events`` one-event appends."""
    latencies: list[float] = []
    async with open_store(path) as store:
        for step in range(warmup):
            await store.append(STREAM, [event(step)])
        for step in range(warmup, warmup + events):
            one = [event(step)]
            start = perf_counter()
            await store.append(STREAM, one)
            latencies.append(perf_counter() - start)
    return latencies


async def store_batched(path: Path, events: int, batch: int) -> float:
    """Events/s of ``store.append`` in batches of ``batch``."""
    elapsed = 0.0
    async with open_store(path) as store:
        for chunk in batches(events, batch):
            start = perf_counter()
            await store.append(STREAM, chunk)
            elapsed += perf_counter() - start
    return events / elapsed


def raw_single(path: Path, events: int, warmup: int) -> list[float]:
    """Per-transaction latencies (s) of ``events`` one-row INSERT+COMMITs, raw sqlite3."""
    encode = default_codec.encode
    latencies: list[float] = []
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        insert = "INSERT INTO raw (data) VALUES (?)"
        for step in range(warmup + events):
            row = (encode(event(step)),)
            start = perf_counter()
            conn.execute("BEGIN")
            conn.execute(insert, row)
            conn.execute("COMMIT")
            if step >= warmup:
                latencies.append(perf_counter() - start)
    finally:
        conn.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="single-event appends")
    parser.add_argument("--warmup", type=int, default=100, help="untimed appends first")
    parser.add_argument(
        "--batched-events",
        type=int,
        default=100_000,
        help="events for the batched comparison run",
    )
    parser.add_argument("--batch", type=int, default=1000, help="events per batched append")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to make the temporary working directory (default: the system temp dir); "
        "put it on the disk you care about, not on a tmpfs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    args = parser.parse_args()
    if min(args.events, args.batched_events, args.batch) < 1 or args.warmup < 0:
        parser.error("--events, --batched-events and --batch must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-latency-", dir=args.dir))
    try:
        run(args.events, args.warmup, args.batched_events, args.batch, workdir)
    finally:
        if args.keep:
            print(f"kept the database files in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(events: int, warmup: int, batched_events: int, batch: int, workdir: Path) -> None:
    print(
        f"latency: {events:,} single-event appends (one transaction each), one stream, "
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL"
    )
    raw = summary(raw_single(workdir / "raw.db", events, warmup))
    store = summary(asyncio.run(store_single(workdir / "store.db", events, warmup)))
    batched = asyncio.run(store_batched(workdir / "batched.db", batched_events, batch))

    print(f"  {'':34}{'median us':>11}{'p99 us':>11}{'mean us':>11}{'events/s':>12}")
    for label, figures in (("raw sqlite3 INSERT+COMMIT", raw), ("runlog store.append([e])", store)):
        print(
            f"  {label:34}{figures['median_us']:>11.1f}{figures['p99_us']:>11.1f}"
            f"{figures['mean_us']:>11.1f}{figures['events_per_s']:>12,.0f}"
        )
    ratio = store["events_per_s"] / raw["events_per_s"]
    speedup = batched / store["events_per_s"]
    print(
        f"  runlog store.append, batches of {batch:,} ({batched_events:,} events):"
        f" {batched:,.0f} events/s"
    )
    print(f"  ratio store/raw sqlite3 (single-event transactions): {ratio:.3f}")
    print(f"  what group commit saves: batched/single = {speedup:.1f}x")
    print(
        json.dumps(
            {
                "bench": "latency",
                "events": events,
                "store_median_us": round(store["median_us"], 1),
                "store_p99_us": round(store["p99_us"], 1),
                "store_mean_us": round(store["mean_us"], 1),
                "store_events_per_s": round(store["events_per_s"]),
                "raw_median_us": round(raw["median_us"], 1),
                "raw_p99_us": round(raw["p99_us"], 1),
                "raw_mean_us": round(raw["mean_us"], 1),
                "raw_events_per_s": round(raw["events_per_s"]),
                "ratio": round(ratio, 3),
                "batched_events": batched_events,
                "batch": batch,
                "store_batched_events_per_s": round(batched),
                "group_commit_speedup": round(speedup, 1),
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
