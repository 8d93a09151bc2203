"""Cold-start latency: open a store and its projector and answer one run query.

What it measures
    A log of ``N`` events is written first with the store, shaped as in
    ``bench_rebuild.py``: ``--runs`` runs (default 1000) in streams
    ``run:bench/r{k}``, batches of 1000 events per ``append`` round-robin over the runs,
    each run opening with ``RunInitialized``, mostly 4-metric ``StepLogged``, a
    preemption (``PreemptMarked``, ``RunExited(143)``, a resuming ``RunInitialized``)
    every 200 events of a run, every third run ending with ``RunExited(0)``, and a few
    sweeps (``SweepCreated``, ``RunScheduled``, ``RunClaimed``) whose runs carry the
    ``sweep_id``. The events are built one batch at a time. The read model is then caught
    up once, untimed for the headline (its time is reported), so it is persisted in the
    file with its checkpoint, as it is after any use of the store.

    Then a *fresh* Python process (imports done, untimed) times, with
    ``time.perf_counter``, from the start of ``open_store(path)`` through
    ``open_projector(store)`` and ``await projector.run("bench", "r500")`` returning (the
    middle run, ``r{runs // 2}``, at smaller sizes): what a CLI command or a dashboard
    request pays to answer its first question. The child also reports the split
    (opening the store, opening the projector, the query itself, which first checks that
    the read model is current) and, outside the headline, closing both. The bar is
    ``--bar-ms`` (default 50 ms). The parent checks the state returned against what the
    writer generated.

    Each child then opens, queries and closes once more in the same process (on a new
    event loop), reported beside the headline as "again": the difference between the
    two is what only a fresh process pays (lazy imports, first-use set-up).

Baseline, for scale, also in fresh processes
    stdlib ``sqlite3.connect(path)`` + ``SELECT 1``, timed the same way (and once more,
    "again"): the least any query against this file costs in a new process. ``ratio`` = raw / store of the
    fastest round of each (a rate ratio, as in the other benchmarks: 1.0 would mean "as
    fast as a bare connect").

Before the measurements the database file is read once, untimed, so that they all find
it in the OS page cache.

Repeats: interleaved
    The log is written once; then the two fresh-process measurements run ``--repeat N``
    times (default 5), interleaved: raw, store, raw, store, ... For each side the script
    reports the min, median and max over the N runs (the min is the headline, because on
    a noisy machine interference only ever slows a run down; the max shows the spread).
    Every sample is in the JSON line, with the wall time of each child process as seen by
    the parent (interpreter start-up and imports included) for context.

Run ``python benchmarks/bench_open_query.py`` (1,000,000 events, 5 rounds) or
``--events 5000`` for a smoke run. ``--query-only PATH [--impl store|raw] [--run-id ID]``
runs one measurement of an existing store (this is what the fresh processes run). The
last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

from _shared import (
    PROJECT,
    Plan,
    catch_up,
    fresh_process,
    spread,
    warm_page_cache,
    write_log,
)

from eventstore import (
    open_store,
)
from projections import open_projector


async def query_store(path: Path, run_id: str) -> dict[str, Any]:
    """Open the store and projector, query one run; the times of each step, in ms."""
    began = perf_counter()
    async with open_store(path, create=False) as store:
        store_open = perf_counter()
        async with open_projector(store) as projector:
            projector_open = perf_counter()
            state = await projector.run(PROJECT, run_id)
            answered = perf_counter()
        projector_closed = perf_counter()
    closed = perf_counter()
    if state is None:
        raise SystemExit(f"run {PROJECT}/{run_id} is not in the read model")
    return {
        "ms": (answered - began) * 1e3,
        "open_store_ms": (store_open - began) * 1e3,
        "open_projector_ms": (projector_open - store_open) * 1e3,
        "run_ms": (answered - projector_open) * 1e3,
        "close_ms": (closed - answered) * 1e3,
        "close_projector_ms": (projector_closed - answered) * 1e3,
        "state": {
            "run_id": state.run_id,
            "status": state.status.value,
            "incarnation": state.incarnation,
            "resumes": state.resumes,
            "steps": state.steps,
            "next_step": state.next_step,
            "sweep_id": state.sweep_id,
        },
    }


def query_raw(path: Path) -> dict[str, Any]:
    """``sqlite3.connect`` + ``SELECT 1``, in ms (closing not included)."""
    began = perf_counter()
    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT 1").fetchone()
        answered = perf_counter()
    finally:
        conn.close()
    closed = perf_counter()
    return {"ms": (answered - began) * 1e3, "close_ms": (closed - answered) * 1e3}


def query_only(path: Path, impl: str, run_id: str) -> dict[str, Any]:
    """One measurement in this process, as a dict of figures (printed as the JSON line)."""
    if impl == "store":
        figures = asyncio.run(query_store(path, run_id))
        figures["again_ms"] = asyncio.run(query_store(path, run_id))["ms"]
    else:
        figures = query_raw(path)
        figures["again_ms"] = query_raw(path)["ms"]
    rounded = {
        key: round(value, 3) if isinstance(value, float) else value
        for key, value in figures.items()
    }
    return {"bench": "open-query-only", "impl": impl, **rounded}


def query_in_fresh_process(path: Path, impl: str, run_id: str) -> dict[str, Any]:
    """Run ``--query-only`` in a new interpreter; its JSON figures and its wall time."""
    return fresh_process(__file__, "--query-only", path, "--impl", impl, "--run-id", run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to write")
    parser.add_argument("--runs", type=int, default=1000, help="runs to spread them over")
    parser.add_argument("--sweeps", type=int, default=5, help="sweeps (every 10th run is in one)")
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="rounds of (raw, store), interleaved, each in fresh processes; min, median, max",
    )
    parser.add_argument(
        "--bar-ms", type=float, default=50.0, help="the open-and-query time to stay under"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to make the temporary working directory (default: the system temp dir); "
        "put it on the disk you care about, not on a tmpfs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    parser.add_argument(
        "--query-only",
        type=Path,
        metavar="PATH",
        help="only open the existing store at PATH and query one run, in this process",
    )
    parser.add_argument(
        "--impl",
        choices=("store", "raw"),
        default="store",
        help="with --query-only: through the store and projector, or raw sqlite3 SELECT 1",
    )
    parser.add_argument(
        "--run-id", default="r500", help="with --query-only: the run of project bench to query"
    )
    args = parser.parse_args()

    if args.query_only is not None:
        print(json.dumps(query_only(args.query_only, args.impl, args.run_id)))
        return
    if min(args.events, args.runs, args.batch, args.repeat) < 1 or args.sweeps < 0:
        parser.error("--events, --runs, --batch and --repeat must be positive, --sweeps >= 0")

    plan = Plan(args.events, args.runs, args.sweeps, args.batch)
    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-open-query-", dir=args.dir))
    try:
        run(plan, args.repeat, args.bar_ms, workdir)
    finally:
        if args.keep:
            print(f"kept the database file in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(plan: Plan, repeat: int, bar_ms: float, workdir: Path) -> None:
    path = workdir / "store.db"
    writer = plan.writers[plan.runs // 2]
    print(
        f"open+query: {plan.events:,} events ({plan.runs:,} runs, {len(plan.sweeps)} sweeps), "
        f"written in batches of {plan.batch:,}, SQLite {sqlite3.sqlite_version}; query "
        f"{PROJECT}/{writer.run_id}; {repeat} rounds, interleaved (raw, store, ...), each in "
        f"a fresh process"
    )
    write_rate = asyncio.run(write_log(path, plan))
    log_mb = path.stat().st_size / 1e6
    print(f"  wrote the log: {write_rate:,.0f} events/s (append only), file {log_mb:,.1f} MB")
    head, seconds = asyncio.run(catch_up(path))
    if head != plan.events:
        raise SystemExit(f"the log's head is {head}, not {plan.events}")
    full_mb = path.stat().st_size / 1e6
    print(
        f"  caught the read model up once (untimed): {seconds:.2f} s, "
        f"{head / seconds:,.0f} events/s; file with the read model {full_mb:,.1f} MB"
    )
    wanted = {
        "run_id": writer.run_id,
        "status": writer.status,
        "incarnation": writer.incarnation,
        "resumes": writer.resumes,
        "steps": writer.steps,
        "next_step": writer.next_step,
        "sweep_id": writer.sweep_id,
    }

    warm_page_cache(path)
    raw_runs: list[dict[str, Any]] = []
    store_runs: list[dict[str, Any]] = []
    for round_number in range(1, repeat + 1):
        raw_runs.append(query_in_fresh_process(path, "raw", writer.run_id))
        store_runs.append(query_in_fresh_process(path, "store", writer.run_id))
        if store_runs[-1]["state"] != wanted:
            raise SystemExit(
                f"the projector returned {store_runs[-1]['state']}, but the log says {wanted}"
            )
        figures = store_runs[-1]
        print(
            f"  round {round_number}/{repeat}: raw {raw_runs[-1]['ms']:.2f} ms, store "
            f"{figures['ms']:.2f} ms (open store {figures['open_store_ms']:.2f}, open "
            f"projector {figures['open_projector_ms']:.2f}, run() {figures['run_ms']:.2f}; "
            f"close {figures['close_ms']:.2f}); again in the same process: raw "
            f"{raw_runs[-1]['again_ms']:.2f}, store {figures['again_ms']:.2f} ms"
        )
    store = spread([figures["ms"] for figures in store_runs])
    raw = spread([figures["ms"] for figures in raw_runs])
    parts = {
        part: spread([figures[f"{part}_ms"] for figures in store_runs])
        for part in ("open_store", "open_projector", "run", "close", "again")
    }
    raw_again = spread([figures["again_ms"] for figures in raw_runs])
    print(f"  {'(ms, each in a fresh process)':44}{'min':>9}{'median':>9}{'max':>9}")
    for label, figures in (
        ("raw sqlite3 connect + SELECT 1", raw),
        (f"open_store + open_projector + run() [{writer.run_id}]", store),
        ("  of which open_store", parts["open_store"]),
        ("  of which open_projector", parts["open_projector"]),
        ("  of which run()", parts["run"]),
        ("closing both (not in the figure above)", parts["close"]),
        ("raw again, in the same process", raw_again),
        ("store again, in the same process", parts["again"]),
    ):
        print(f"  {label:44}{figures['min']:>9.2f}{figures['median']:>9.2f}{figures['max']:>9.2f}")
    ratio = raw["min"] / store["min"]
    print(
        f"  ratio raw/store (fastest of {repeat}): {ratio:.3f}; bar {bar_ms:g} ms: median "
        f"{'met' if store['median'] < bar_ms else 'NOT met'}, max "
        f"{'met' if store['max'] < bar_ms else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "bench": "open_query",
                "events": plan.events,
                "runs": plan.runs,
                "sweeps": len(plan.sweeps),
                "run_id": writer.run_id,
                "repeat": repeat,
                "aggregate": f"min, median and max of {repeat}, interleaved, fresh processes",
                "log_file_mb": round(log_mb, 1),
                "file_with_read_model_mb": round(full_mb, 1),
                "write_events_per_s": round(write_rate),
                "catch_up_s": round(seconds, 3),
                "catch_up_events_per_s": round(head / seconds),
                "store_ms": store["min"],
                "store_ms_median": store["median"],
                "store_ms_max": store["max"],
                "open_store_ms_median": parts["open_store"]["median"],
                "open_projector_ms_median": parts["open_projector"]["median"],
                "run_ms_median": parts["run"]["median"],
                "close_ms_median": parts["close"]["median"],
                "store_again_ms": parts["again"]["min"],
                "store_again_ms_median": parts["again"]["median"],
                "raw_again_ms_median": raw_again["median"],
                "raw_ms": raw["min"],
                "raw_ms_median": raw["median"],
                "raw_ms_max": raw["max"],
                "ratio": round(ratio, 3),
                "bar_ms": bar_ms,
                "meets_bar_median": store["median"] < bar_ms,
                "meets_bar_max": store["max"] < bar_ms,
                "store_ms_samples": [figures["ms"] for figures in store_runs],
                "raw_ms_samples": [figures["ms"] for figures in raw_runs],
                "store_process_wall_ms_samples": [f["process_wall_ms"] for f in store_runs],
                "raw_process_wall_ms_samples": [f["process_wall_ms"] for f in raw_runs],
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
