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

A few untimed warm-up appends (``--warmup``) run first in every run, so the first
append's stream creation and statement preparation are not in the figures.

Repeats: interleaved rounds
    The three runs (raw single, store single, store batched) are repeated ``--repeat N``
    times (default 3) in rounds, interleaved: raw, store, batched, raw, store, batched,
    ... Every run writes a fresh file; a round's files are deleted when it ends, unless
    ``--keep``. The figures for each single-event side are
      * median: the median of the N per-run medians (median of medians);
      * p99: the nearest-rank 99th percentile of all N x ``--events`` latencies pooled
        (not one run's p99: the pooled sample has N times as many tail points);
      * mean: the mean of all the pooled latencies;
      * events/s: the best (highest) of the N runs, and their median.
    ``ratio`` is store/raw of the best events/s of each side and ``group_commit_speedup``
    is the best batched events/s over the best single-event store events/s ("best of
    N, interleaved"), as in the other benchmarks: on a noisy machine interference only
    ever slows a run down. ``ratio_of_medians`` is the same ratio of the median
    events/s. Every per-run figure is in the JSON line as well (lists ending in
    ``_samples``).

Run ``python benchmarks/bench_latency.py`` (5,000 single appends, 3 rounds) or
``--events 5000`` for a smoke run (the same size). The last line of output is one JSON
object.
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
from typing import Any

from _shared import metrics, remove_db

from eventstore import StepLogged, default_codec, open_store

STREAM = "run:bench/r1"


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


def combine(runs: list[list[float]]) -> dict[str, Any]:
    """The figures of N runs of per-event latencies (s), as the docstring describes.

    Median of the per-run medians; p99 and mean over all the latencies pooled; best
    and median events/s of the runs; and each run's own summary, as ``*_samples``.
    """
    per_run = [summary(latencies) for latencies in runs]
    pooled = summary([x for latencies in runs for x in latencies])
    rates = [figures["events_per_s"] for figures in per_run]
    return {
        "median_us": statistics.median(figures["median_us"] for figures in per_run),
        "p99_us": pooled["p99_us"],
        "mean_us": pooled["mean_us"],
        "events_per_s": max(rates),
        "events_per_s_median": statistics.median(rates),
        "median_us_samples": [round(figures["median_us"], 1) for figures in per_run],
        "p99_us_samples": [round(figures["p99_us"], 1) for figures in per_run],
        "events_per_s_samples": [round(rate) for rate in rates],
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
        help="events per batched comparison run (one per round)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="events per batched append")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (raw, store, batched store), interleaved",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to make the temporary working directory (default: the system temp dir); "
        "put it on the disk you care about, not on a tmpfs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    args = parser.parse_args()
    if min(args.events, args.batched_events, args.batch, args.repeat) < 1:
        parser.error("--events, --batched-events, --batch and --repeat must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-latency-", dir=args.dir))
    try:
        run(
            args.events,
            args.warmup,
            args.batched_events,
            args.batch,
            args.repeat,
            workdir,
            keep=args.keep,
        )
    finally:
        if args.keep:
            print(f"kept the database files in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(
    events: int,
    warmup: int,
    batched_events: int,
    batch: int,
    repeat: int,
    workdir: Path,
    *,
    keep: bool,
) -> None:
    print(
        f"latency: {events:,} single-event appends (one transaction each), one stream, "
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL; {repeat} rounds, "
        f"interleaved (raw, store, batched, raw, ...), fresh files"
    )
    raw_runs: list[list[float]] = []
    store_runs: list[list[float]] = []
    batched_samples: list[float] = []
    for round_number in range(1, repeat + 1):
        raw_path = workdir / f"raw-{round_number}.db"
        store_path = workdir / f"store-{round_number}.db"
        batched_path = workdir / f"batched-{round_number}.db"
        raw_runs.append(raw_single(raw_path, events, warmup))
        store_runs.append(asyncio.run(store_single(store_path, events, warmup)))
        batched_samples.append(asyncio.run(store_batched(batched_path, batched_events, batch)))
        raw_round, store_round = summary(raw_runs[-1]), summary(store_runs[-1])
        print(
            f"  round {round_number}/{repeat}: median us raw {raw_round['median_us']:.1f}, "
            f"store {store_round['median_us']:.1f}; events/s raw "
            f"{raw_round['events_per_s']:,.0f}, store {store_round['events_per_s']:,.0f}, "
            f"batched {batched_samples[-1]:,.0f}"
        )
        if not keep:
            for path in (raw_path, store_path, batched_path):
                remove_db(path)
    raw = combine(raw_runs)
    store = combine(store_runs)
    batched = max(batched_samples)

    print(
        f"  {'':28}{'median us':>11}{'p99 us':>9}{'mean us':>9}"
        f"{'best events/s':>15}{'median ev/s':>13}"
    )
    print(f"  {'':28}{'(of medians)':>11}{'(all)':>9}{'(all)':>9}")
    for label, figures in (("raw sqlite3 INSERT+COMMIT", raw), ("runlog store.append([e])", store)):
        print(
            f"  {label:28}{figures['median_us']:>11.1f}{figures['p99_us']:>9.1f}"
            f"{figures['mean_us']:>9.1f}{figures['events_per_s']:>15,.0f}"
            f"{figures['events_per_s_median']:>13,.0f}"
        )
    ratio = store["events_per_s"] / raw["events_per_s"]
    speedup = batched / store["events_per_s"]
    print(
        f"  runlog store.append, batches of {batch:,} ({batched_events:,} events):"
        f" {batched:,.0f} events/s best, {statistics.median(batched_samples):,.0f} median"
    )
    print(
        f"  ratio store/raw sqlite3 (single-event transactions, best of {repeat}, "
        f"interleaved): {ratio:.3f}"
    )
    print(f"  what group commit saves: batched/single (best/best) = {speedup:.1f}x")
    print(
        json.dumps(
            {
                "bench": "latency",
                "events": events,
                "repeat": repeat,
                "aggregate": (
                    f"{repeat} interleaved runs: median of medians, p99 and mean over "
                    f"all samples, events/s best of {repeat}"
                ),
                "store_median_us": round(store["median_us"], 1),
                "store_p99_us": round(store["p99_us"], 1),
                "store_mean_us": round(store["mean_us"], 1),
                "store_events_per_s": round(store["events_per_s"]),
                "store_events_per_s_median": round(store["events_per_s_median"]),
                "raw_median_us": round(raw["median_us"], 1),
                "raw_p99_us": round(raw["p99_us"], 1),
                "raw_mean_us": round(raw["mean_us"], 1),
                "raw_events_per_s": round(raw["events_per_s"]),
                "raw_events_per_s_median": round(raw["events_per_s_median"]),
                "ratio": round(ratio, 3),
                "ratio_of_medians": round(
                    store["events_per_s_median"] / raw["events_per_s_median"], 3
                ),
                "batched_events": batched_events,
                "batch": batch,
                "store_batched_events_per_s": round(batched),
                "store_batched_events_per_s_median": round(statistics.median(batched_samples)),
                "group_commit_speedup": round(speedup, 1),
                "store_median_us_samples": store["median_us_samples"],
                "store_p99_us_samples": store["p99_us_samples"],
                "store_events_per_s_samples": store["events_per_s_samples"],
                "raw_median_us_samples": raw["median_us_samples"],
                "raw_p99_us_samples": raw["p99_us_samples"],
                "raw_events_per_s_samples": raw["events_per_s_samples"],
                "store_batched_events_per_s_samples": [round(x) for x in batched_samples],
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
