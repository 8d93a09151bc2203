"""Speed and memory of ``projector.rebuild()``, against ``store.read_all`` of the same log.

What it measures
    A log of ``N`` events is written first with the store: ``--runs`` runs (default
    1000, fewer if there are not enough batches) in streams ``run:bench/r{k}``, written
    in batches of 1000 events per ``append``, round-robin over the runs, so the runs'
    streams interleave in the log batch by batch (at the default size every run gets
    one batch). Each run opens with ``RunInitialized``; most events are 4-metric
    ``StepLogged``; every 200th event of a run starts a preemption: ``PreemptMarked``,
    ``RunExited(143)``, then a resuming ``RunInitialized`` (the next incarnation,
    ``resumed=True``, ``starting_step`` = the last step + 1); every third run ends with
    ``RunExited(0)``. Before the runs, a few sweeps (``--sweeps``, default 5) are
    written to ``sweep:sweep-{i}``: ``SweepCreated``, a ``RunScheduled`` for each of its
    runs (every tenth run belongs to a sweep) and a ``RunClaimed`` for every other one;
    those runs' ``RunInitialized`` carry the ``sweep_id``. The events are built one batch
    at a time, never the whole log. The read model is then caught up once (untimed as
    far as the headline goes; its rate is reported), so every timed rebuild finds a full
    read model to throw away, as a real one would.

    Then a *fresh* Python process opens the store and its projector (untimed) and times
    ``await projector.rebuild()``: deleting the persisted read model (the ``rm_*``
    tables in the same file) and folding the whole log again, chunk by chunk, committing
    each chunk with its checkpoint. Rate = head position / seconds. Its peak RSS is read
    as in ``bench_replay.py``: the process resets its peak to its current RSS at the
    start (``/proc/self/clear_refs``), reads the peak from ``VmHWM`` at the end, and
    reports its RSS at the start too.

Baseline, measured in the same run over the same file, also in a fresh process
    ``async for rec in store.read_all(): pass``: reading and decoding the whole log
    through the store, which a rebuild must do anyway. Ratio = rebuild events/s /
    read_all events/s; the bar is ``--bar`` (default 0.30).

The issue's baseline, also in the same run, in a fresh process
    stdlib ``sqlite3``: ``SELECT data FROM events ORDER BY position`` and the store's
    msgspec decoder on every payload, as in ``bench_replay.py``: the least that reading
    and decoding the log costs. ``ratio_to_raw`` = rebuild events/s / raw events/s
    (best of each); its bar is ``--raw-bar`` (default 0.5, issue 16).

Before the measurements the database file is read once, untimed, so that they all find
it in the OS page cache. Only ``rebuild()`` / the read loop is timed
(``time.perf_counter``); imports and opening the store are not. After the rounds the
read model left by the last rebuild is checked against what the writer generated (each
run's status, incarnation, resumes, step count and sweep; each sweep's runs), and the
script fails if they differ.

Repeats: best of N, interleaved
    The log is written once; then the two fresh-process measurements run ``--repeat N``
    times (default 3), interleaved: raw, read_all, rebuild, raw, read_all, rebuild, ... For each
    side the script reports the best (highest events/s) and the median of its N runs;
    ``ratio`` is best/best, because on a noisy machine interference only ever slows a
    run down. Peak RSS is the maximum over each side's runs, reported with the RSS at the
    start of that same run. Every sample is in the JSON line as well.

Run ``python benchmarks/bench_rebuild.py`` (1,000,000 events, 3 rounds) or
``--events 5000`` for a smoke run. ``--measure-only PATH [--impl rebuild|read_all]`` runs
one measurement of an existing store (this is what the fresh processes run). The last
line of output is one JSON object.
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
from collections import Counter
from pathlib import Path
from time import perf_counter
from typing import Any

from _shared import (
    PROJECT,
    Plan,
    catch_up,
    cpu_mark,
    current_rss_mb,
    fresh_process,
    peak_rss_mb,
    reset_peak_rss,
    warm_page_cache,
    write_log,
)

from eventstore import (
    default_codec,
    open_store,
)
from projections import Projector, open_projector


async def verify(path: Path, plan: Plan) -> dict[str, Any]:
    """Check the read model against what the writer generated; return a summary."""
    async with open_store(path, create=False) as store, open_projector(store) as projector:
        return await check_read_model(projector, plan)


async def check_read_model(projector: Projector, plan: Plan) -> dict[str, Any]:
    states = {state.run_id: state for state in await projector.runs(PROJECT)}
    problems: list[str] = []
    if len(states) != plan.runs:
        problems.append(f"{len(states)} runs in the read model, not {plan.runs}")
    for writer in plan.writers:
        state = states.get(writer.run_id)
        if state is None:
            problems.append(f"run {writer.run_id} is missing")
            continue
        got = (
            state.status.value,
            state.incarnation,
            state.resumes,
            state.steps,
            state.next_step,
            state.sweep_id,
        )
        wanted = (
            writer.status,
            writer.incarnation,
            writer.resumes,
            writer.steps,
            writer.next_step,
            writer.sweep_id,
        )
        if got != wanted:
            problems.append(
                f"run {writer.run_id}: (status, incarnation, resumes, steps, next_step, "
                f"sweep) is {got}, not {wanted}"
            )
    sweeps = {state.sweep_id: state for state in await projector.sweeps(PROJECT)}
    if set(sweeps) != set(plan.sweeps):
        problems.append(f"sweeps {sorted(sweeps)}, not {sorted(plan.sweeps)}")
    for sweep_id, members in plan.sweeps.items():
        sweep = sweeps.get(sweep_id)
        if sweep is None:
            continue
        run_ids = [f"r{k}" for k in members]
        if (sweep.scheduled, sweep.ever_running, sum(sweep.counts.values()), sweep.claims) != (
            run_ids,
            len(members),
            len(members),
            {},
        ):
            problems.append(
                f"sweep {sweep_id}: scheduled {sweep.scheduled}, ever_running "
                f"{sweep.ever_running}, counts {sweep.counts}, claims {sweep.claims}"
            )
    if problems:
        raise SystemExit(
            "the read model disagrees with the generated log:\n  " + "\n  ".join(problems[:10])
        )
    return {
        "runs_by_status": dict(sorted(Counter(s.status.value for s in states.values()).items())),
        "resumes": sum(s.resumes for s in states.values()),
        "history_rows": sum(s.steps for s in states.values()),
        "sweeps": len(sweeps),
    }


async def measure_rebuild(path: Path) -> tuple[int, float]:
    """Rebuild the read model; return the position it reached and the seconds it took."""
    async with open_store(path, create=False) as store, open_projector(store) as projector:
        TIMED_CPU[0] = cpu_mark()
        start = perf_counter()
        position = await projector.rebuild()
        elapsed = perf_counter() - start
        TIMED_CPU[0] = cpu_mark() - TIMED_CPU[0]
    return position, elapsed


async def measure_read_all(path: Path) -> tuple[int, float]:
    """Count the events of ``read_all``; return the count and the seconds it took."""
    count = 0
    async with open_store(path, create=False) as store:
        TIMED_CPU[0] = cpu_mark()
        start = perf_counter()
        async for _rec in store.read_all():
            count += 1
        elapsed = perf_counter() - start
        TIMED_CPU[0] = cpu_mark() - TIMED_CPU[0]
    return count, elapsed


TIMED_CPU = [0.0]
"""CPU seconds of the last timed section (see ``cpu_mark``)."""


def measure_raw(path: Path) -> tuple[int, float]:
    """Select and decode every payload with stdlib sqlite3; return count and seconds."""
    decode = default_codec._decoder.decode
    count = 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        TIMED_CPU[0] = cpu_mark()
        start = perf_counter()
        for (data,) in conn.execute("SELECT data FROM events ORDER BY position"):
            decode(data)
            count += 1
        elapsed = perf_counter() - start
        TIMED_CPU[0] = cpu_mark() - TIMED_CPU[0]
    finally:
        conn.close()
    return count, elapsed


def measure_only(path: Path, impl: str) -> dict[str, Any]:
    """One measurement in this process, as a dict of figures (printed as the JSON line)."""
    reset = reset_peak_rss()
    before = current_rss_mb()
    if impl == "rebuild":
        count, elapsed = asyncio.run(measure_rebuild(path))
    elif impl == "raw":
        count, elapsed = measure_raw(path)
    else:
        count, elapsed = asyncio.run(measure_read_all(path))
    cpu = TIMED_CPU[0]
    return {
        "bench": "rebuild-measure-only",
        "cpu_seconds": round(cpu, 3),
        "impl": impl,
        "events": count,
        "seconds": round(elapsed, 3),
        "events_per_s": round(count / elapsed),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_reset_at_start": reset,
        "rss_at_start_mb": None if before is None else round(before, 1),
    }


def measure_in_fresh_process(path: Path, impl: str) -> dict[str, Any]:
    """Run ``--measure-only`` in a new interpreter and return its JSON figures."""
    return fresh_process(__file__, "--measure-only", path, "--impl", impl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to write")
    parser.add_argument("--runs", type=int, default=1000, help="runs to spread them over")
    parser.add_argument("--sweeps", type=int, default=5, help="sweeps (every 10th run is in one)")
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (raw, read_all, rebuild), interleaved; best and median reported",
    )
    parser.add_argument(
        "--raw-bar", type=float, default=0.5, help="the rebuild/raw ratio to reach (issue 16)"
    )
    parser.add_argument(
        "--bar", type=float, default=0.30, help="the rebuild/read_all ratio to reach"
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
        "--measure-only",
        type=Path,
        metavar="PATH",
        help="only measure the existing store at PATH in this process and print its figures",
    )
    parser.add_argument(
        "--impl",
        choices=("rebuild", "read_all", "raw"),
        default="rebuild",
        help="with --measure-only: rebuild the read model, or read the log with read_all",
    )
    args = parser.parse_args()

    if args.measure_only is not None:
        print(json.dumps(measure_only(args.measure_only, args.impl)))
        return
    if min(args.events, args.runs, args.batch, args.repeat) < 1 or args.sweeps < 0:
        parser.error("--events, --runs, --batch and --repeat must be positive, --sweeps >= 0")

    plan = Plan(args.events, args.runs, args.sweeps, args.batch)
    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-rebuild-", dir=args.dir))
    try:
        run(plan, args.repeat, args.bar, args.raw_bar, workdir)
    finally:
        if args.keep:
            print(f"kept the database file in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best and median events/s of N runs, and the run with the highest peak RSS."""
    rates = [figures["events_per_s"] for figures in runs]
    worst = max(runs, key=lambda figures: figures["peak_rss_mb"])
    return {
        "events_per_s": max(rates),
        "events_per_s_median": round(statistics.median(rates)),
        "peak_rss_mb": worst["peak_rss_mb"],
        "rss_at_start_mb": worst["rss_at_start_mb"],
        "samples": rates,
        "seconds_samples": [figures["seconds"] for figures in runs],
        "cpu_seconds": min(figures["cpu_seconds"] for figures in runs),
        "peak_rss_mb_samples": [figures["peak_rss_mb"] for figures in runs],
    }


def run(plan: Plan, repeat: int, bar: float, raw_bar: float, workdir: Path) -> None:
    path = workdir / "store.db"
    print(
        f"rebuild: {plan.events:,} events ({plan.runs:,} runs, {len(plan.sweeps)} sweeps), "
        f"written in batches of {plan.batch:,}, SQLite {sqlite3.sqlite_version}; best of "
        f"{repeat}, interleaved (raw, read_all, rebuild, ...), each in a fresh process"
    )
    write_rate = asyncio.run(write_log(path, plan))
    log_mb = path.stat().st_size / 1e6
    print(f"  wrote the log: {write_rate:,.0f} events/s (append only), file {log_mb:,.1f} MB")
    preemptions = sum(writer.preemptions for writer in plan.writers)
    head, seconds = asyncio.run(catch_up(path))
    if head != plan.events:
        raise SystemExit(f"the log's head is {head}, not {plan.events}")
    catch_up_rate = head / seconds
    full_mb = path.stat().st_size / 1e6
    print(
        f"  caught the read model up once (untimed for the headline): {seconds:.2f} s, "
        f"{catch_up_rate:,.0f} events/s; file with the read model {full_mb:,.1f} MB"
    )

    warm_page_cache(path)
    raw_runs: list[dict[str, Any]] = []
    read_runs: list[dict[str, Any]] = []
    rebuild_runs: list[dict[str, Any]] = []
    for round_number in range(1, repeat + 1):
        raw_runs.append(measure_in_fresh_process(path, "raw"))
        read_runs.append(measure_in_fresh_process(path, "read_all"))
        rebuild_runs.append(measure_in_fresh_process(path, "rebuild"))
        for figures in (raw_runs[-1], read_runs[-1], rebuild_runs[-1]):
            if figures["events"] != plan.events:
                raise SystemExit(
                    f"{figures['impl']} reached {figures['events']} events, not {plan.events}"
                )
        print(
            f"  round {round_number}/{repeat}: raw {raw_runs[-1]['events_per_s']:,}, "
            f"read_all {read_runs[-1]['events_per_s']:,}, "
            f"rebuild {rebuild_runs[-1]['events_per_s']:,} events/s "
            f"({rebuild_runs[-1]['seconds']:.2f} s); peak RSS read_all "
            f"{read_runs[-1]['peak_rss_mb']:.1f}, rebuild {rebuild_runs[-1]['peak_rss_mb']:.1f} MB"
        )
    summary = asyncio.run(verify(path, plan))
    print(
        f"  read model after the last rebuild matches the log: runs by status "
        f"{summary['runs_by_status']}, {summary['resumes']:,} resumes "
        f"({preemptions:,} preemptions), {summary['history_rows']:,} history rows, "
        f"{summary['sweeps']} sweeps"
    )
    raw = combine(raw_runs)
    read = combine(read_runs)
    rebuild = combine(rebuild_runs)

    print(
        f"  {'(each in a fresh process)':34}{'best ev/s':>11}{'median ev/s':>13}"
        f"{'max peak MB':>13}{'at start MB':>13}"
    )
    for label, figures in (
        ("raw sqlite3 SELECT data + decode", raw),
        ("store.read_all (read + decode)", read),
        ("projector.rebuild()", rebuild),
    ):
        print(
            f"  {label:34}{figures['events_per_s']:>11,}{figures['events_per_s_median']:>13,}"
            f"{figures['peak_rss_mb']:>13.1f}{figures['rss_at_start_mb'] or float('nan'):>13.1f}"
        )
    ratio = rebuild["events_per_s"] / read["events_per_s"]
    ratio_of_medians = rebuild["events_per_s_median"] / read["events_per_s_median"]
    print(
        f"  ratio rebuild/read_all (best of {repeat}, interleaved): {ratio:.3f}"
        f"  (of the medians: {ratio_of_medians:.3f}); bar {bar:.2f}: "
        f"{'met' if ratio >= bar else 'NOT met'}"
    )
    to_raw = rebuild["events_per_s"] / raw["events_per_s"]
    read_to_raw = read["events_per_s"] / raw["events_per_s"]
    print(
        f"  ratio rebuild/raw (best of {repeat}, interleaved): {to_raw:.3f} (bar {raw_bar:.2f}: "
        f"{'met' if to_raw >= raw_bar else 'NOT met'}); read_all/raw {read_to_raw:.3f}"
    )
    cpu_ratio = raw["cpu_seconds"] / max(rebuild["cpu_seconds"], 1e-9)
    print(
        f"  CPU seconds (least of {repeat}, process + threads): raw {raw['cpu_seconds']:.3f}, "
        f"read_all {read['cpu_seconds']:.3f}, rebuild {rebuild['cpu_seconds']:.3f}; "
        f"CPU ratio raw/rebuild {cpu_ratio:.3f}"
    )
    print(
        json.dumps(
            {
                "bench": "rebuild",
                "events": plan.events,
                "runs": plan.runs,
                "sweeps": len(plan.sweeps),
                "preemptions": preemptions,
                "resumes": summary["resumes"],
                "history_rows": summary["history_rows"],
                "runs_by_status": summary["runs_by_status"],
                "repeat": repeat,
                "aggregate": f"best of {repeat}, interleaved; peak RSS max of {repeat}",
                "log_file_mb": round(log_mb, 1),
                "file_with_read_model_mb": round(full_mb, 1),
                "write_events_per_s": round(write_rate),
                "catch_up_events_per_s": round(catch_up_rate),
                "rebuild_events_per_s": rebuild["events_per_s"],
                "rebuild_events_per_s_median": rebuild["events_per_s_median"],
                "rebuild_peak_rss_mb": rebuild["peak_rss_mb"],
                "rebuild_rss_at_start_mb": rebuild["rss_at_start_mb"],
                "read_all_events_per_s": read["events_per_s"],
                "read_all_events_per_s_median": read["events_per_s_median"],
                "read_all_peak_rss_mb": read["peak_rss_mb"],
                "read_all_rss_at_start_mb": read["rss_at_start_mb"],
                "raw_events_per_s": raw["events_per_s"],
                "raw_events_per_s_median": raw["events_per_s_median"],
                "raw_samples": raw["samples"],
                "ratio_to_raw": round(to_raw, 3),
                "raw_cpu_s": raw["cpu_seconds"],
                "read_all_cpu_s": read["cpu_seconds"],
                "rebuild_cpu_s": rebuild["cpu_seconds"],
                "cpu_ratio_to_raw": round(cpu_ratio, 3),
                "read_all_ratio_to_raw": round(read_to_raw, 3),
                "raw_bar": raw_bar,
                "meets_raw_bar": to_raw >= raw_bar,
                "ratio": round(ratio, 3),
                "ratio_of_medians": round(ratio_of_medians, 3),
                "bar": bar,
                "meets_bar": ratio >= bar,
                "rebuild_samples": rebuild["samples"],
                "read_all_samples": read["samples"],
                "rebuild_seconds_samples": rebuild["seconds_samples"],
                "rebuild_peak_rss_mb_samples": rebuild["peak_rss_mb_samples"],
                "read_all_peak_rss_mb_samples": read["peak_rss_mb_samples"],
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
