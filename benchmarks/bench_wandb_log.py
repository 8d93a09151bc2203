"""Logging through W&B's module-level ``log`` against ``run.log``, on the blocking facade.

What it measures
    A training loop logging ``N`` steps of 4 float metrics into a fresh SQLite store,
    one call per step, in two ways:

    module
        ``from api import sync as wandb``; ``wandb.init(project="bench", id=..., store=path)``,
        then ``wandb.log(metrics)`` per step and ``wandb.finish()`` (what a W&B script
        does with only its import changed).
    run (the baseline)
        ``run = sync.init(...)``, then ``run.log(metrics)`` per step and ``run.finish()``.

    Timed from the first ``log`` to the return of ``finish()`` (everything durable,
    the store closed), as ``bench_log.py`` times its sides; ``init`` is not timed. The
    ``log`` loop alone is reported too (``loop_*``): it is where the module-level
    function's extra call and lookup of the current run could show.

    The metrics dicts come from a pool of ``min(N, 10,000)`` built before timing.

Repeats
    ``--repeat N`` rounds (default 5), interleaved (run, module, run, module, ...), each
    on a fresh file; the headline ``ratio`` is module events/s / run events/s of the best
    runs, ``ratio_of_medians`` next to it. The issue's bar is ``ratio >= 0.90``
    (``meets_bar``).

Run ``python benchmarks/bench_wandb_log.py`` (200,000 events) or ``--events 5000`` for a
smoke run. The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

from _shared import best_and_median, metrics, remove_db

from api import sync
from api import sync as wandb

PROJECT = "bench"
POOL = 10_000
BAR = 0.90


def module_side(path: Path, events: int, pool: list[dict[str, float]]) -> tuple[float, float]:
    """``wandb.log`` per step; (events/s to finish, events/s of the loop alone)."""
    size = len(pool)
    wandb.init(project=PROJECT, id="module", store=path)
    start = perf_counter()
    for i in range(events):
        wandb.log(pool[i % size])
    logged = perf_counter()
    wandb.finish()
    done = perf_counter()
    return events / (done - start), events / (logged - start)


def run_side(path: Path, events: int, pool: list[dict[str, float]]) -> tuple[float, float]:
    """``run.log`` per step; (events/s to finish, events/s of the loop alone)."""
    size = len(pool)
    run = sync.init(project=PROJECT, id="run", store=path)
    start = perf_counter()
    for i in range(events):
        run.log(pool[i % size])
    logged = perf_counter()
    run.finish()
    done = perf_counter()
    return events / (done - start), events / (logged - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pool = [metrics(step) for step in range(min(args.events, POOL))]
    sides: dict[str, Callable[[Path, int, list[dict[str, float]]], tuple[float, float]]] = {
        "run": run_side,
        "module": module_side,
    }
    totals: dict[str, list[float]] = {name: [] for name in sides}
    loops: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bench-wandb-") as directory:
        for round_number in range(args.repeat):
            for name, side in sides.items():
                path = Path(directory) / f"{name}-{round_number}.db"
                total, loop = side(path, args.events, pool)
                totals[name].append(total)
                loops[name].append(loop)
                remove_db(path)
    best = {name: best_and_median(samples) for name, samples in totals.items()}
    best_loop = {name: best_and_median(samples) for name, samples in loops.items()}
    ratio = best["module"][0] / best["run"][0]
    ratio_of_medians = best["module"][1] / best["run"][1]
    loop_ratio = best_loop["module"][0] / best_loop["run"][0]
    for name in sides:
        print(
            f"{name:>6}: {best[name][0]:>12,.0f} events/s to finish (median "
            f"{best[name][1]:,.0f}); log loop alone {best_loop[name][0]:,.0f} events/s"
        )
    print(
        f"module-level log / run.log: {ratio:.3f} (medians {ratio_of_medians:.3f}; "
        f"loop alone {loop_ratio:.3f}); bar >= {BAR}"
    )
    figures = {
        "events": args.events,
        "repeat": args.repeat,
        "run_events_per_s": best["run"][0],
        "module_events_per_s": best["module"][0],
        "ratio": ratio,
        "ratio_of_medians": ratio_of_medians,
        "loop_ratio": loop_ratio,
        "meets_bar": ratio >= BAR,
        "samples": {name: totals[name] for name in sides},
        "loop_samples": {name: loops[name] for name in sides},
        "median_spread": {name: statistics.pstdev(totals[name]) for name in sides},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
