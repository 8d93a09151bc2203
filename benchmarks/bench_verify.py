"""Speed and memory of ``runlog verify`` against a raw read + decode of the same log.

What it measures
    The same mixed log as ``bench_rebuild.py`` (``--events`` events over ``--runs``
    runs with preemptions and resumes, and a few sweeps; see ``_shared.Plan``) is written
    once and its read model caught up once (untimed). Then a *fresh* Python process
    times ``api._audit._verify.verify(store=path)``, exactly what ``runlog verify`` runs: the
    hash chain, positions, stream versions, times and payload decoding of every event
    (in ``--workers`` worker processes over ranges of the log; default one per CPU), and,
    at the same time in the main process, a fold of the whole log in memory compared
    with the stored read model. Rate = events / seconds. Peak RSS is the main process's
    (``VmHWM``, reset at the start as in ``bench_replay.py``) and, separately, the
    largest worker's (``ru_maxrss`` of the reaped children).

Baseline, in the same run over the same file, also in a fresh process
    stdlib ``sqlite3``: ``SELECT data FROM events ORDER BY position`` and the codec's
    msgspec decoder on every row, as in ``bench_replay.py``: the least that reading and
    decoding the log costs. Ratio = verify events/s / raw events/s; the bar is ``--bar``
    (default 0.35, issue 16) and peak RSS must stay under ``--rss-bar`` MB (default 200).

The database file is read once, untimed, so that every measurement finds it in the OS
page cache. Rounds are interleaved (raw, verify, raw, verify, ...), ``--repeat`` times
(default 3); best and median are reported, ``ratio`` is best/best. The script fails if
verify does not find the log sound. Run ``python benchmarks/bench_verify.py``
(1,000,000 events) or ``--events 5000`` for a smoke run. The last line of output is one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

from _shared import (
    Plan,
    catch_up,
    cpu_mark,
    current_rss_mb,
    fresh_process,
    peak_rss_mb,
    reset_peak_rss,
    warm_page_cache,
)
from _shared import write_log as write_mixed_log

from eventstore import default_codec

TIMED_CPU = [0.0]
"""CPU seconds of the last timed section (see ``cpu_mark``)."""


def measure_raw(path: Path) -> tuple[int, float]:
    decode = default_codec._decoder.decode
    conn = sqlite3.connect(path)
    count = 0
    TIMED_CPU[0] = cpu_mark()
    start = perf_counter()
    for (data,) in conn.execute("SELECT data FROM events ORDER BY position"):
        decode(data)
        count += 1
    elapsed = perf_counter() - start
    TIMED_CPU[0] = cpu_mark() - TIMED_CPU[0]
    conn.close()
    return count, elapsed


def measure_verify(path: Path, workers: int | None) -> tuple[int, float, bool]:
    import anyio

    from api._audit._verify import verify

    TIMED_CPU[0] = cpu_mark()
    start = perf_counter()
    report = anyio.run(lambda: verify(store=path, workers=workers))
    elapsed = perf_counter() - start
    TIMED_CPU[0] = cpu_mark() - TIMED_CPU[0]
    return report.log.events, elapsed, report.ok


def measure_only(path: Path, impl: str, workers: int | None) -> dict[str, Any]:
    reset = reset_peak_rss()
    before = current_rss_mb()
    ok = True
    if impl == "verify":
        count, elapsed, ok = measure_verify(path, workers)
    else:
        count, elapsed = measure_raw(path)
    cpu = TIMED_CPU[0]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
    return {
        "impl": impl,
        "events": count,
        "seconds": round(elapsed, 3),
        "events_per_s": round(count / elapsed),
        "ok": ok,
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "worker_peak_rss_mb": round(children, 1),
        "peak_reset_at_start": reset,
        "rss_at_start_mb": None if before is None else round(before, 1),
    }


def measure_in_fresh_process(path: Path, impl: str, workers: int | None) -> dict[str, Any]:
    """Run ``--measure-only`` in a new interpreter and return its JSON figures."""
    extra = () if workers is None else ("--workers", workers)
    return fresh_process(__file__, "--measure-only", path, "--impl", impl, *extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to write")
    parser.add_argument("--runs", type=int, default=1000, help="runs to spread them over")
    parser.add_argument("--sweeps", type=int, default=5, help="sweeps (every 10th run is in one)")
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--workers", type=int, default=None, help="verify's worker processes")
    parser.add_argument("--bar", type=float, default=0.35, help="verify/raw ratio to reach")
    parser.add_argument("--rss-bar", type=float, default=200.0, help="peak RSS bar, MB")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the work dir")
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    parser.add_argument("--measure-only", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument(
        "--impl", choices=("verify", "raw"), default="verify", help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.measure_only is not None:
        print(json.dumps(measure_only(args.measure_only, args.impl, args.workers)))
        return
    if min(args.events, args.runs, args.batch, args.repeat) < 1 or args.sweeps < 0:
        parser.error("--events, --runs, --batch and --repeat must be positive, --sweeps >= 0")
    plan = Plan(args.events, args.runs, args.sweeps, args.batch)
    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-verify-", dir=args.dir))
    try:
        run(plan, args, workdir)
    finally:
        if args.keep:
            print(f"kept the database file in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [figures["events_per_s"] for figures in runs]
    return {
        "events_per_s": max(rates),
        "events_per_s_median": round(statistics.median(rates)),
        "peak_rss_mb": max(figures["peak_rss_mb"] for figures in runs),
        "worker_peak_rss_mb": max(figures["worker_peak_rss_mb"] for figures in runs),
        "samples": rates,
        "seconds_samples": [figures["seconds"] for figures in runs],
        "cpu_seconds": min(figures["cpu_seconds"] for figures in runs),
    }


def run(plan: Plan, args: argparse.Namespace, workdir: Path) -> None:
    path = workdir / "store.db"
    print(
        f"verify: {plan.events:,} events ({plan.runs:,} runs, {len(plan.sweeps)} sweeps), "
        f"SQLite {sqlite3.sqlite_version}; best of {args.repeat}, interleaved, each in a "
        "fresh process"
    )
    write_rate = asyncio.run(write_mixed_log(path, plan))
    head, seconds = asyncio.run(catch_up(path))
    if head != plan.events:
        raise SystemExit(f"the log's head is {head}, not {plan.events}")
    print(
        f"  wrote the log ({write_rate:,.0f} events/s) and caught the read model up "
        f"({seconds:.2f} s); file {path.stat().st_size / 1e6:,.1f} MB"
    )
    warm_page_cache(path)
    raw_runs: list[dict[str, Any]] = []
    verify_runs: list[dict[str, Any]] = []
    for round_number in range(1, args.repeat + 1):
        raw_runs.append(measure_in_fresh_process(path, "raw", None))
        verify_runs.append(measure_in_fresh_process(path, "verify", args.workers))
        if not verify_runs[-1]["ok"]:
            raise SystemExit("verify did not find the benchmark's log sound")
        for figures in (raw_runs[-1], verify_runs[-1]):
            if figures["events"] != plan.events:
                raise SystemExit(f"{figures['impl']} read {figures['events']} events")
        print(
            f"  round {round_number}/{args.repeat}: raw {raw_runs[-1]['events_per_s']:,}, "
            f"verify {verify_runs[-1]['events_per_s']:,} events/s "
            f"({verify_runs[-1]['seconds']:.2f} s); peak RSS verify "
            f"{verify_runs[-1]['peak_rss_mb']:.1f} MB, largest worker "
            f"{verify_runs[-1]['worker_peak_rss_mb']:.1f} MB"
        )
    raw = combine(raw_runs)
    checked = combine(verify_runs)
    ratio = checked["events_per_s"] / raw["events_per_s"]
    peak = max(checked["peak_rss_mb"], checked["worker_peak_rss_mb"])
    print(f"  {'':40}{'best ev/s':>11}{'median ev/s':>13}{'peak MB':>10}")
    print(
        f"  {'raw sqlite3 SELECT data + msgspec decode':40}{raw['events_per_s']:>11,}"
        f"{raw['events_per_s_median']:>13,}{raw['peak_rss_mb']:>10.1f}"
    )
    print(
        f"  {'runlog verify (chain + replay + compare)':40}{checked['events_per_s']:>11,}"
        f"{checked['events_per_s_median']:>13,}{peak:>10.1f}"
    )
    meets = ratio >= args.bar
    meets_rss = peak < args.rss_bar
    print(
        f"  ratio {ratio:.2f} (bar {args.bar:.2f}: {'met' if meets else 'MISSED'}); "
        f"peak RSS {peak:.1f} MB (bar {args.rss_bar:.0f}: {'met' if meets_rss else 'MISSED'})"
    )
    cpu_ratio = raw["cpu_seconds"] / max(checked["cpu_seconds"], 1e-9)
    print(
        f"  CPU seconds (least of {args.repeat}, with worker processes): raw "
        f"{raw['cpu_seconds']:.3f}, verify {checked['cpu_seconds']:.3f}; CPU ratio {cpu_ratio:.3f}"
    )
    print(
        json.dumps(
            {
                "bench": "verify",
                "events": plan.events,
                "repeat": args.repeat,
                "aggregate": "best of N (median beside)",
                "raw_events_per_s": raw["events_per_s"],
                "raw_events_per_s_median": raw["events_per_s_median"],
                "verify_events_per_s": checked["events_per_s"],
                "verify_events_per_s_median": checked["events_per_s_median"],
                "ratio": round(ratio, 3),
                "ratio_of_medians": round(
                    checked["events_per_s_median"] / raw["events_per_s_median"], 3
                ),
                "raw_cpu_s": raw["cpu_seconds"],
                "verify_cpu_s": checked["cpu_seconds"],
                "cpu_ratio": round(cpu_ratio, 3),
                "bar": args.bar,
                "meets_bar": meets,
                "peak_rss_mb": checked["peak_rss_mb"],
                "worker_peak_rss_mb": checked["worker_peak_rss_mb"],
                "rss_bar_mb": args.rss_bar,
                "meets_rss_bar": meets_rss,
                "raw_samples": raw["samples"],
                "verify_samples": checked["samples"],
                "verify_seconds_samples": checked["seconds_samples"],
            }
        )
    )


if __name__ == "__main__":
    main()
