"""Downsampled metric history of a long run, against raw ``sqlite3`` primary-key reads.

What it measures
    One run, ``run:bench/r1``, is written first with the store: a ``RunInitialized``,
    then ``N`` 4-metric ``StepLogged`` events for steps 0 .. N-1, appended in batches of
    1000 events (built one batch at a time, never all at once). The read model is then
    caught up with ``projector.catch_up()``, which is timed and reported (seconds and
    events/s) but is not the headline.

    Then, in the same process with the store and projector open, after one untimed
    warm-up call, ``await projector.history("bench", "r1", points=500)`` is timed
    (``time.perf_counter``) ``--repeat`` times: the read model picks 500 steps spread
    evenly over the run (keeping the first and the last) from its ``rm_history`` index,
    and the store reads and decodes those 500 events from the log. Every call must
    return ``--points`` points (default 500; fewer only if the run has fewer steps) with
    increasing steps, the first at step 0 and the last at step N-1, each with the
    metrics that step logged; the script fails otherwise. The bar is ``--bar-ms``
    (default 300 ms). For context it also times ``projector.catch_up()`` with nothing
    to fold, which every query does first.

Baseline, measured in the same process on the same file
    stdlib ``sqlite3`` (a connection opened before timing): 500 (``--points``)
    ``SELECT data FROM events WHERE position = ?`` look-ups at evenly spaced positions of
    the run's steps, each decoded with ``default_codec._decoder.decode`` (the typed
    msgspec decode the store uses): the least reading those 500 events can cost, with
    no index to choose them. ``ratio`` = raw ms / store ms of the fastest call of each
    (a rate ratio, as in the other benchmarks: 1.0 would mean "as fast as raw").

Full read-back, against raw sqlite3 reading the same rows
    Then the history of the first ``--full-steps`` steps (default 100,000; all of them
    if the run is shorter) is read back whole, ``projector.history(..., stop=S)``: every
    point with its metrics, which reads the run's ``rm_history`` rows and then the
    events at those positions from the log. The baseline, on a ``sqlite3`` connection of
    the same process, reads the same rows in one statement and decodes each payload
    with the store's msgspec decoder: ``SELECT e.data FROM rm_history h JOIN events e
    ON e.position = h.position WHERE <the run> AND h.step < S ORDER BY h.step``. Both
    must return S events (the script fails otherwise). ``full_ratio`` = store steps/s /
    raw steps/s (best of ``--repeat`` each, interleaved); the issue's bar is 0.5.

Repeats: interleaved
    After one untimed warm-up call of each, the raw read and the history call alternate
    ``--repeat N`` times (default 5): raw, store, raw, store, ... The script reports the
    min, median and max of each side's N calls (the min is the headline, because on a
    noisy machine interference only ever slows a run down). Every sample is in the JSON
    line as well.

Run ``python benchmarks/bench_history.py`` (1,000,000 steps, 5 rounds) or
``--events 5000`` for a smoke run. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from _shared import metrics

from eventstore import Event, RunInitialized, StepLogged, default_codec, open_store
from projections import HistoryPoint, Projector, open_projector

PROJECT = "bench"
RUN_ID = "r1"
STREAM = f"run:{PROJECT}/{RUN_ID}"


def batches(steps: int, batch: int) -> Iterator[list[Event]]:
    """The run's ``RunInitialized`` and ``steps`` steps, as lists of at most ``batch``."""
    total = steps + 1  # the RunInitialized, then steps 0 .. steps-1
    for start in range(0, total, batch):
        out: list[Event] = []
        for index in range(start, min(start + batch, total)):
            if index == 0:
                out.append(
                    RunInitialized(
                        project=PROJECT,
                        run_id=RUN_ID,
                        incarnation=1,
                        resumed=False,
                        starting_step=0,
                        config={"lr": 3e-4, "batch_size": 64, "model": "resnet18"},
                        host="bench-host",
                        pid=4242,
                    )
                )
            else:
                step = index - 1
                out.append(StepLogged(incarnation=1, step=step, metrics=metrics(step)))
        yield out


async def write_log(path: Path, steps: int, batch: int) -> float:
    """Append the run in batches; return events/s of the appends."""
    elapsed = 0.0
    async with open_store(path) as store:
        for number, chunk in enumerate(batches(steps, batch)):
            began = perf_counter()
            await store.append(STREAM, chunk, "no_stream" if number == 0 else "any")
            elapsed += perf_counter() - began
    return (steps + 1) / elapsed


def spaced_positions(steps: int, points: int) -> list[int]:
    """``points`` positions spread evenly over the run's steps (position of step s: s + 2)."""
    if steps <= points:
        return [2 + step for step in range(steps)]
    if points == 1:
        return [steps + 1]
    return [2 + (steps - 1) * i // (points - 1) for i in range(points)]


def raw_read(conn: sqlite3.Connection, positions: list[int]) -> tuple[float, list[Any]]:
    """Select and decode the events at ``positions``; the seconds it took and the events."""
    decode = default_codec._decoder.decode
    events: list[Any] = []
    append = events.append
    start = perf_counter()
    for position in positions:
        (data,) = conn.execute("SELECT data FROM events WHERE position = ?", (position,)).fetchone()
        append(decode(data))
    return perf_counter() - start, events


async def store_history(projector: Projector, points: int) -> tuple[float, list[HistoryPoint]]:
    """Time one ``history(points=...)`` call; the seconds it took and its points."""
    start = perf_counter()
    history = await projector.history(PROJECT, RUN_ID, points=points)
    return perf_counter() - start, history


def check_history(history: list[HistoryPoint], steps: int, points: int) -> None:
    """Fail loudly unless ``history`` is ``points`` points from step 0 to step steps-1."""
    wanted = min(points, steps)
    problems: list[str] = []
    if len(history) != wanted:
        problems.append(f"{len(history)} points, not {wanted}")
    if history:
        if history[0].step != 0:
            problems.append(f"the first point is step {history[0].step}, not 0")
        if history[-1].step != steps - 1:
            problems.append(f"the last point is step {history[-1].step}, not {steps - 1}")
        if any(a.step >= b.step for a, b in itertools.pairwise(history)):
            problems.append("the steps are not increasing")
        for point in (history[0], history[len(history) // 2], history[-1]):
            if point.metrics != metrics(point.step):
                problems.append(f"step {point.step} has metrics {point.metrics}")
            if point.position != point.step + 2:
                problems.append(f"step {point.step} is at position {point.position}")
    if problems:
        raise SystemExit("history(points=...) is wrong: " + "; ".join(problems))


def check_raw(events: list[Any], positions: list[int]) -> None:
    for event, position in zip(events, positions, strict=True):
        if not isinstance(event, StepLogged) or event.step != position - 2:
            raise SystemExit(f"raw read: position {position} holds {event!r}")


def raw_full(conn: sqlite3.Connection, stop: int) -> tuple[float, int, float]:
    """Read and decode the history rows of steps below ``stop``; seconds, rows, CPU s."""
    decode = default_codec._decoder.decode
    count = 0
    cpu = process_time()
    start = perf_counter()
    for (data,) in conn.execute(
        "SELECT e.data FROM rm_history h JOIN events e ON e.position = h.position "
        "WHERE h.project = ? AND h.run_id = ? AND h.step < ? ORDER BY h.step",
        (PROJECT, RUN_ID, stop),
    ):
        decode(data)
        count += 1
    return perf_counter() - start, count, process_time() - cpu


async def store_full(projector: Projector, stop: int) -> tuple[float, int, float]:
    """Time the read-back of every point of steps below ``stop``; seconds, points, CPU s
    (of the process: the store's and the read model's threads included)."""
    cpu = process_time()
    start = perf_counter()
    history = await projector.history(PROJECT, RUN_ID, stop=stop)
    elapsed = perf_counter() - start
    cpu = process_time() - cpu
    if [point.step for point in history[:3]] != list(range(min(3, stop))) or (
        history and history[-1].metrics != metrics(stop - 1)
    ):
        raise SystemExit(f"history(stop={stop}) is wrong: starts {history[:3]}")
    return elapsed, len(history), cpu


def spread(seconds: list[float]) -> dict[str, float]:
    values = [value * 1e3 for value in seconds]
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


async def measure(
    path: Path, steps: int, points: int, repeat: int, full_steps: int
) -> dict[str, Any]:
    """Catch up once, then time raw reads and history calls, interleaved."""
    positions = spaced_positions(steps, points)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        async with open_store(path, create=False) as store, open_projector(store) as projector:
            start = perf_counter()
            head = await projector.catch_up()
            catch_up_s = perf_counter() - start
            if head != steps + 1:
                raise SystemExit(f"the read model reached position {head}, not {steps + 1}")
            print(
                f"  caught the read model up: {catch_up_s:.2f} s, {head / catch_up_s:,.0f} events/s"
            )
            _, events = raw_read(conn, positions)  # warm-up
            check_raw(events, positions)
            _, history = await store_history(projector, points)  # warm-up
            check_history(history, steps, points)
            raw_s: list[float] = []
            store_s: list[float] = []
            noop_s: list[float] = []
            for round_number in range(1, repeat + 1):
                seconds, events = raw_read(conn, positions)
                raw_s.append(seconds)
                check_raw(events, positions)
                seconds, history = await store_history(projector, points)
                store_s.append(seconds)
                check_history(history, steps, points)
                began = perf_counter()
                await projector.catch_up()
                noop_s.append(perf_counter() - began)
                print(
                    f"  round {round_number}/{repeat}: raw {raw_s[-1] * 1e3:.2f} ms, "
                    f"history {store_s[-1] * 1e3:.2f} ms ({len(history)} points, steps "
                    f"{history[0].step}..{history[-1].step})"
                )
            stop = min(steps, full_steps)
            raw_full_s: list[float] = []
            store_full_s: list[float] = []
            raw_cpu: list[float] = []
            store_cpu: list[float] = []
            await store_full(projector, stop)  # warm-up
            for round_number in range(1, repeat + 1):
                seconds, count, cpu = raw_full(conn, stop)
                if count != stop:
                    raise SystemExit(f"the raw read-back found {count} rows, not {stop}")
                raw_full_s.append(seconds)
                raw_cpu.append(cpu)
                seconds, count, cpu = await store_full(projector, stop)
                if count != stop:
                    raise SystemExit(f"history(stop={stop}) returned {count} points")
                store_full_s.append(seconds)
                store_cpu.append(cpu)
                print(
                    f"  full read-back round {round_number}/{repeat}: raw "
                    f"{stop / raw_full_s[-1]:,.0f}, history {stop / store_full_s[-1]:,.0f} steps/s"
                )
    finally:
        conn.close()
    return {
        "head": head,
        "catch_up_s": catch_up_s,
        "points": len(history),
        "raw": spread(raw_s),
        "store": spread(store_s),
        "noop_catch_up": spread(noop_s),
        "raw_samples": [round(s * 1e3, 3) for s in raw_s],
        "store_samples": [round(s * 1e3, 3) for s in store_s],
        "full_steps": stop,
        "full_raw_rates": [round(stop / s) for s in raw_full_s],
        "full_store_rates": [round(stop / s) for s in store_full_s],
        "full_raw_cpu_s": round(min(raw_cpu), 4),
        "full_store_cpu_s": round(min(store_cpu), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="steps of the run (events: one more)"
    )
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument("--points", type=int, default=500, help="history points to ask for")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="rounds of (raw read, history call), interleaved; min, median, max reported",
    )
    parser.add_argument(
        "--full-steps",
        type=int,
        default=100_000,
        help="steps whose whole history is read back (the full read-back figure)",
    )
    parser.add_argument(
        "--bar-ms", type=float, default=300.0, help="the history call time to stay under"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to make the temporary working directory (default: the system temp dir); "
        "put it on the disk you care about, not on a tmpfs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    args = parser.parse_args()
    if min(args.events, args.batch, args.points, args.repeat, args.full_steps) < 1:
        parser.error("--events, --batch, --points, --repeat and --full-steps must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-history-", dir=args.dir))
    try:
        run(
            args.events, args.batch, args.points, args.repeat, args.bar_ms, args.full_steps, workdir
        )
    finally:
        if args.keep:
            print(f"kept the database file in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(
    steps: int,
    batch: int,
    points: int,
    repeat: int,
    bar_ms: float,
    full_steps: int,
    workdir: Path,
) -> None:
    path = workdir / "store.db"
    print(
        f"history: one run of {steps:,} steps (4 metrics each), written in batches of "
        f"{batch:,}, SQLite {sqlite3.sqlite_version}; history(points={points}), "
        f"{repeat} rounds interleaved with raw reads (raw, store, ...), in one process"
    )
    write_rate = asyncio.run(write_log(path, steps, batch))
    log_mb = path.stat().st_size / 1e6
    print(f"  wrote the log: {write_rate:,.0f} events/s (append only), file {log_mb:,.1f} MB")
    figures = asyncio.run(measure(path, steps, points, repeat, full_steps))
    full_mb = path.stat().st_size / 1e6
    store, raw, noop = figures["store"], figures["raw"], figures["noop_catch_up"]
    print(f"  file with the read model {full_mb:,.1f} MB")
    print(f"  {'(ms, one process)':52}{'min':>9}{'median':>9}{'max':>9}")
    for label, spread_ms in (
        (f"raw sqlite3: {points} SELECT data by position + decode", raw),
        (f"projector.history(points={points})", store),
        ("projector.catch_up() with nothing to fold", noop),
    ):
        print(
            f"  {label:52}{spread_ms['min']:>9.2f}{spread_ms['median']:>9.2f}"
            f"{spread_ms['max']:>9.2f}"
        )
    ratio = raw["min"] / store["min"]
    print(
        f"  ratio raw/history (fastest of {repeat}): {ratio:.3f}; bar {bar_ms:g} ms: median "
        f"{'met' if store['median'] < bar_ms else 'NOT met'}, max "
        f"{'met' if store['max'] < bar_ms else 'NOT met'}"
    )
    full_raw, full_store = max(figures["full_raw_rates"]), max(figures["full_store_rates"])
    full_ratio = full_store / full_raw
    print(
        f"  full read-back of {figures['full_steps']:,} steps (best of {repeat}, interleaved): "
        f"raw sqlite3 rm_history JOIN events + decode {full_raw:,} steps/s, "
        f"projector.history {full_store:,} steps/s, ratio {full_ratio:.3f} (bar 0.5: "
        f"{'met' if full_ratio >= 0.5 else 'NOT met'})"
    )
    full_cpu_ratio = figures["full_raw_cpu_s"] / max(figures["full_store_cpu_s"], 1e-9)
    print(
        f"  its CPU seconds (least of {repeat}, all threads): raw {figures['full_raw_cpu_s']:.3f}, "
        f"history {figures['full_store_cpu_s']:.3f}; CPU ratio {full_cpu_ratio:.3f}"
    )
    print(
        json.dumps(
            {
                "bench": "history",
                "steps": steps,
                "events": figures["head"],
                "points": figures["points"],
                "repeat": repeat,
                "aggregate": f"min, median and max of {repeat}, interleaved, one process",
                "log_file_mb": round(log_mb, 1),
                "file_with_read_model_mb": round(full_mb, 1),
                "write_events_per_s": round(write_rate),
                "catch_up_s": round(figures["catch_up_s"], 3),
                "catch_up_events_per_s": round(figures["head"] / figures["catch_up_s"]),
                "store_ms": store["min"],
                "store_ms_median": store["median"],
                "store_ms_max": store["max"],
                "raw_ms": raw["min"],
                "raw_ms_median": raw["median"],
                "raw_ms_max": raw["max"],
                "noop_catch_up_ms_median": noop["median"],
                "ratio": round(ratio, 3),
                "bar_ms": bar_ms,
                "meets_bar_median": store["median"] < bar_ms,
                "meets_bar_max": store["max"] < bar_ms,
                "full_steps": figures["full_steps"],
                "full_raw_steps_per_s": full_raw,
                "full_store_steps_per_s": full_store,
                "full_ratio": round(full_ratio, 3),
                "full_meets_bar": full_ratio >= 0.5,
                "full_raw_cpu_s": figures["full_raw_cpu_s"],
                "full_store_cpu_s": figures["full_store_cpu_s"],
                "full_cpu_ratio": round(full_cpu_ratio, 3),
                "full_raw_samples": figures["full_raw_rates"],
                "full_store_samples": figures["full_store_rates"],
                "store_ms_samples": figures["store_samples"],
                "raw_ms_samples": figures["raw_samples"],
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
