"""One long run's queries: ``runlog show``, explain, the dashboard's timeline and time
travel, and the history endpoint without ``points``, each in a fresh process.

What it measures
    A store is written first through the store's own ``append`` (batches of 10,000
    events, no HTTP): a sweep ``bench-sweep`` that schedules and claims the run
    ``bench/long``, then that run's stream: a ``RunInitialized``, ``--events`` 4-metric
    ``StepLogged`` (2,000,000 by default), preempted twice on the way (``PreemptMarked``,
    ``RunExited(143)``, a resuming ``RunInitialized``), a saved file and a final
    ``RunExited(0)``; and 20 short runs of 50 steps. The read model is caught up once
    (its time is reported), as it is after any use of the store.

    Then each query runs in a *fresh* Python process (imports done, untimed), timed with
    ``time.perf_counter`` from opening the store to the answer, ``--repeat`` times (5, or
    2 for a smoke run below 100,000 steps);
    the median is the headline, min and max beside it:

    - ``show``: ``show_run("bench/long")`` (what ``runlog show`` prints:
      state and incarnations). ``show_cli`` is the wall time of a whole ``runlog show``
      process, interpreter start-up included, for context.
    - ``explain``: ``api.explain("bench", "long")``.
    - ``history_refusal``: ``GET /api/runs/bench/long/history`` without ``points``
      (refused: 400) on the server app, in process through httpx's ASGI transport,
      after the app has started (the app's start is not in the figure).
    - ``history_window``: the same endpoint with ``start``/``stop`` giving 1,000 steps.
    - ``lifeline``: the dashboard's ``/api/dash/runs/bench/long/lifeline``, the first
      request of the process (cold).
    - ``time_travel``: ``/api/dash/runs/bench/long/as_of?position=P`` with P half way
      through the run, the first request of the process (cold).

Baseline, in the same run, also in fresh processes
    stdlib ``sqlite3``: connect and one indexed look-up of the run's read-model row
    (``SELECT state FROM rm_runs WHERE project = ? AND run_id = ?``): what any answer
    from one indexed row costs at least. Each figure is printed with its ratio to it
    (how many baselines the query costs).

Run ``python benchmarks/bench_run_queries.py`` (2,000,000 steps) or ``--events 5000``
for a smoke run. ``--keep PATH`` writes the store there and keeps it; ``--store PATH``
measures an existing store (written by this script) without writing. The last line of
output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

from _shared import fresh_process, metrics, warm_page_cache

from eventstore import (
    Event,
    FileSaved,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunScheduled,
    StepLogged,
    SweepCreated,
    open_store,
)

PROJECT, RUN, SWEEP = "bench", "long", "bench-sweep"
BATCH = 10_000
QUERIES = ("show", "explain", "history_refusal", "history_window", "lifeline", "time_travel")


def _init(run_id: str, incarnation: int, start: int, sweep: str | None = None) -> RunInitialized:
    return RunInitialized(
        project=PROJECT,
        run_id=run_id,
        incarnation=incarnation,
        resumed=incarnation > 1,
        starting_step=start,
        config={"lr": 3e-4} if incarnation == 1 else {},
        sweep_id=sweep,
        host="bench-host",
        pid=4000 + incarnation,
    )


async def write_store(path: Path, steps: int) -> dict[str, int]:
    """The sweep, the long run and the short runs; returns where the run's middle is."""
    async with open_store(path) as store:
        await store.append(
            f"sweep:{SWEEP}",
            [
                SweepCreated(
                    sweep_id=SWEEP,
                    project=PROJECT,
                    method="grid",
                    config={"parameters": {"lr": {"values": [3e-4]}}},
                    seed=0,
                ),
                RunScheduled(run_id=RUN, params={"lr": 3e-4}, index=0),
                RunClaimed(run_id=RUN, agent_id="agent-1"),
            ],
            "no_stream",
        )
        stream = f"run:{PROJECT}/{RUN}"
        preempt_at = {steps // 3, 2 * steps // 3}
        incarnation = 1
        batch: list[Event] = [_init(RUN, 1, 0, SWEEP)]
        middle = 0
        version = -1
        for step in range(steps):
            if step in preempt_at:
                batch += [
                    PreemptMarked(incarnation=incarnation),
                    RunExited(incarnation=incarnation, exit_code=143),
                ]
                incarnation += 1
                batch.append(_init(RUN, incarnation, step, SWEEP))
            batch.append(StepLogged(incarnation=incarnation, step=step, metrics=metrics(step)))
            if len(batch) >= BATCH:
                result = await store.append(stream, batch, expected_version=version)
                version = result.version
                if step >= steps // 2 and not middle:
                    middle = result.positions[-1]
                batch = []
        batch += [
            FileSaved(incarnation=incarnation, name="model.bin", digest="0" * 64, size=1),
            RunExited(incarnation=incarnation, exit_code=0),
        ]
        result = await store.append(stream, batch, expected_version=version)
        middle = middle or result.positions[-1]
        for k in range(20):
            short = [_init(f"s{k}", 1, 0)]
            short += [StepLogged(incarnation=1, step=s, metrics=metrics(s)) for s in range(50)]
            short.append(RunExited(incarnation=1, exit_code=0))
            await store.append(f"run:{PROJECT}/s{k}", short, "no_stream")
        return {"middle": middle, "head": await store.head()}


async def catch_up(path: Path) -> float:
    """Catch the read model up; the seconds it took."""
    from projections import open_projector

    async with open_store(path, create=False) as store, open_projector(store) as projector:
        began = perf_counter()
        await projector.catch_up()
        return perf_counter() - began


async def _with_app(path: Path, request: str) -> tuple[float, int]:
    import httpx

    from api._server import create_app

    app = create_app(path, reap_interval=None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            began = perf_counter()
            response = await client.get(request)
            elapsed = perf_counter() - began
    return elapsed, response.status_code


async def query(path: Path, what: str, middle: int) -> dict[str, Any]:
    """One query in this process: its time in ms and what it answered."""
    import api
    from api._audit._queries import show_run

    base = f"/api/runs/{PROJECT}/{RUN}"
    dash = f"/api/dash/runs/{PROJECT}/{RUN}"
    if what == "show":
        began = perf_counter()
        report = await show_run(f"{PROJECT}/{RUN}", store=str(path))
        elapsed = perf_counter() - began
        return {"ms": elapsed * 1e3, "incarnations": len(report.incarnations)}
    if what == "explain":
        began = perf_counter()
        lines = await api.explain(PROJECT, RUN, store=str(path))
        elapsed = perf_counter() - began
        return {"ms": elapsed * 1e3, "lines": len(lines)}
    requests = {
        "history_refusal": f"{base}/history",
        "history_window": f"{base}/history?start=1000&stop=2000",
        "lifeline": f"{dash}/lifeline",
        "time_travel": f"{dash}/as_of?position={middle}",
    }
    elapsed, status = await _with_app(path, requests[what])
    return {"ms": elapsed * 1e3, "status": status}


def query_raw(path: Path) -> dict[str, Any]:
    """``sqlite3.connect`` and one indexed read-model row, in ms."""
    began = perf_counter()
    db = sqlite3.connect(path)
    try:
        row = db.execute(
            "SELECT state FROM rm_runs WHERE project = ? AND run_id = ?", (PROJECT, RUN)
        ).fetchone()
        elapsed = perf_counter() - began
    finally:
        db.close()
    return {"ms": elapsed * 1e3, "found": row is not None}


def show_cli(path: Path) -> float:
    """The wall time of a whole ``runlog show`` process, in ms."""
    runlog = Path(sys.executable).with_name("runlog")
    command = [str(runlog)] if runlog.exists() else [sys.executable, "-m", "api"]
    began = perf_counter()
    subprocess.run(
        [*command, "show", f"{PROJECT}/{RUN}", "--store", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return (perf_counter() - began) * 1e3


def _spread(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="steps of the long run")
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds (5; 2 below 100,000 steps)"
    )
    parser.add_argument("--keep", type=Path, help="write the store here and keep it")
    parser.add_argument("--store", type=Path, help="measure this store (written by this script)")
    parser.add_argument("--query-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--what", default="show", help=argparse.SUPPRESS)
    parser.add_argument("--middle", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 5 if args.events >= 100_000 else 2  # a smoke run takes seconds
    if args.query_only is not None:
        if args.what == "raw":
            figures = query_raw(args.query_only)
        else:
            figures = asyncio.run(query(args.query_only, args.what, args.middle))
        print(json.dumps(figures))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench-run-queries-"))
    figures: dict[str, Any] = {"bench": "run-queries", "steps": args.events}
    try:
        path = args.store or args.keep or folder / "runs.db"
        if args.store is None:
            began = perf_counter()
            shape = asyncio.run(write_store(path, args.events))
            figures["write_s"] = round(perf_counter() - began, 2)
            figures["catch_up_s"] = round(asyncio.run(catch_up(path)), 2)
            (path.parent / (path.name + ".shape.json")).write_text(json.dumps(shape))
        else:
            shape = json.loads((path.parent / (path.name + ".shape.json")).read_text())
            asyncio.run(catch_up(path))
        print(
            f"store: {args.events:,} steps in {PROJECT}/{RUN}, {shape['head']:,} events "
            f"({path.stat().st_size / 1e6:.0f} MB)"
        )
        warm_page_cache(path)
        samples: dict[str, list[float]] = {name: [] for name in ("raw", *QUERIES, "show_cli")}
        answers: dict[str, Any] = {}
        for _ in range(args.repeat):
            for name in ("raw", *QUERIES):
                out = fresh_process(
                    __file__, "--query-only", path, "--what", name, "--middle", shape["middle"]
                )
                samples[name].append(out["ms"])
                answers[name] = {k: v for k, v in out.items() if k not in ("ms", "wall_ms")}
            samples["show_cli"].append(show_cli(path))
        raw = statistics.median(samples["raw"])
        print(f"{'baseline (sqlite3 connect + 1 indexed row)':46} {raw:9.2f} ms")
        for name in (*QUERIES, "show_cli"):
            spread = _spread(samples[name])
            figures[name] = spread
            figures[f"{name}_ratio_to_raw"] = round(spread["median_ms"] / raw, 1)
            print(
                f"{name:46} {spread['median_ms']:9.2f} ms (min {spread['min_ms']:.2f}, "
                f"max {spread['max_ms']:.2f}; {spread['median_ms'] / raw:,.1f}x the baseline)"
            )
        figures["raw"] = _spread(samples["raw"])
        figures["bar_show_under_300_ms"] = figures["show"]["median_ms"] < 300
        figures["bar_history_refusal_under_100_ms"] = figures["history_refusal"]["median_ms"] < 100
        print(
            f"bars: show under 300 ms: {figures['bar_show_under_300_ms']}; history refused "
            f"under 100 ms: {figures['bar_history_refusal_under_100_ms']}"
        )
        figures["answers"] = answers
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
