"""The dashboard's pages on a 1,000-run store: time until each page is usable.

What it measures
    A store is written first: ``--runs`` (1,000) runs in three projects, each with a
    config and ``--short-steps`` (50) 4-metric steps, except ``--long`` (2) runs of
    ``--events`` steps each (1,000,000 by default; ``--events 5000`` for a smoke run).
    The first long run is preempted twice (three incarnations); 20 of the short runs
    belong to a grid sweep with a metric. The read model is caught up, then a real
    ``runlog serve`` process is started on the file, and from this process, over HTTP
    on loopback, each page's requests are sent as the page sends them (requests a page
    sends together are sent concurrently; a request that needs another's answer waits
    for it). A page's time to usable is the wall time of that whole chain:

    - runs: ``/api/dash/facets`` then ``/api/dash/runs`` (50 rows, 7 columns, newest
      first): cold (the server's first request: the run index is loaded) and warm; and
      the table sorted by ``summary.loss`` with a text search, warm.
    - charts: two long runs selected: per run ``/api/runs/..`` then its
      ``/history?points=1000``, both runs at once.
    - run page (a long run): the run and its files at once, then its chart
      (``/history?points=1000``) and its state at the latest position; the page shows
      these without waiting for the timeline.
    - timeline (``/lifeline`` of the long run): cold on the first opening, warm
      afterwards (both one row of the read model: the run's line).
    - time travel: the long run's state at a position half way through its history (the
      first answer folds from the read model's nearest copy of the run's state, at most
      20,000 events back), then 1,000 positions further and 30,000 back (from the copies
      the server keeps of its own folds, or the read model's).
    - sweep page: ``/api/dash/sweeps/{id}``.
    - audit page: ``/api/log?from=1&limit=100``; ``explain`` of the long run is reported
      apart (it is sent when asked for).

    Warm figures are the median of ``--repeat`` (5) rounds.

Baseline, measured in the same run on the same server
    The runs table the dashboard showed before this page: ``/api/runs?order=newest&
    limit=50``, which decodes every run's state on each request. ``ratio_runs_table`` is
    the warm runs page's time over the baseline's (below 1: the new page is faster).

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from _shared import metrics

import api
from eventstore import Event, PreemptMarked, RunExited, RunInitialized, StepLogged, open_store
from projections import open_projector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api._server._runindex import RunQuery, RunRow, select

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ("vision", "nlp", "rl")
COLUMNS = "config.lr,config.batch_size,config.optimizer,summary.loss,summary.acc"
SWEEP = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "lr": {"values": [10**-i for i in range(1, 6)]},
        "batch": {"values": [32, 64, 128, 256]},
    },
}


def _init(project: str, run_id: str, incarnation: int, start: int, **extra: Any) -> Event:
    return RunInitialized(
        project=project,
        run_id=run_id,
        incarnation=incarnation,
        resumed=incarnation > 1,
        starting_step=start,
        **extra,
    )


async def write_store(path: Path, runs: int, short: int, long: int, steps: int) -> str:
    """The store described in the module docstring; returns the sweep's id."""
    rng = random.Random(3)
    async with open_store(str(path)) as store:
        sweep_id = await api.create_sweep(SWEEP, project="tune", store=store, sweep_id="bench")
        agent = await api.register_agent(sweep_id, store=store)
        for i in range(runs):
            project = "tune" if i < 20 else PROJECTS[i % 3]
            run_id = f"r{i:05d}"
            stream = f"run:{project}/{run_id}"
            config: dict[str, Any] = {
                "lr": 10 ** rng.uniform(-5, -1),
                "batch_size": rng.choice([32, 64, 128]),
                "optimizer": rng.choice(["adam", "sgd", "adamw"]),
            }
            extra: dict[str, Any] = {"config": config, "tags": [rng.choice(["a", "b", "c"])]}
            if i < 20:
                work = await api.claim(sweep_id, agent, store=store)
                assert work is not None
                run_id, stream = work.run_id, f"run:tune/{work.run_id}"
                extra = {"config": dict(work.params), "sweep_id": sweep_id}
            n = steps if runs - long <= i else short
            cuts = {n // 3, 2 * n // 3} if i == runs - 1 and n >= 3 else set()
            incarnation = 1
            batch: list[Event] = [_init(project, run_id, 1, 0, **extra)]
            version = -1
            for step in range(n):
                if step in cuts:
                    batch += [
                        PreemptMarked(incarnation=incarnation),
                        RunExited(incarnation=incarnation, exit_code=143),
                    ]
                    incarnation += 1
                    batch.append(_init(project, run_id, incarnation, step))
                batch.append(StepLogged(incarnation=incarnation, step=step, metrics=metrics(step)))
                if len(batch) >= 5000:
                    version = (await store.append(stream, batch, expected_version=version)).version
                    batch = []
            batch.append(RunExited(incarnation=incarnation, exit_code=0))
            await store.append(stream, batch, expected_version=version)
        async with open_projector(store) as projector:
            await projector.catch_up()
    return sweep_id


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    env["PYTHONPATH"] = str(ROOT)
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "api", "serve", "--store", str(path), "--port", str(port),
             "--reap-interval", "0"],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


def table_at_scale(runs: int, repeat: int) -> dict[str, float]:
    """The runs table's filter, sort and page over ``runs`` rows, in this process: what
    one ``/api/dash/runs`` request costs the server at that many runs."""
    rng = random.Random(11)
    rows = [
        RunRow(project=PROJECTS[i % 3], run_id=f"x{i:06d}", name=f"run {i}",
               status="finished", sweep_id=None, tags=["a"], group=None, steps=i % 1000,
               last_step=None, created_us=i, updated_us=i, runtime_s=float(i % 500),
               incarnation=1, config={"lr": rng.random()}, summary={"loss": rng.random()},
               last_position=i, text=f"vision x{i:06d} run {i}")
        for i in range(runs)
    ]  # fmt: skip
    queries = {
        "newest": RunQuery(limit=50),
        "by_summary_loss": RunQuery(sort="summary.loss", descending=False, limit=50),
        "project_and_search": RunQuery(project="nlp", search="run 99", limit=50),
        "last_page_by_loss": RunQuery(sort="summary.loss", offset=runs - 50, limit=50),
    }
    out: dict[str, float] = {}
    for name, query in queries.items():
        samples = []
        for _ in range(repeat):
            began = perf_counter()
            select(rows, query)
            samples.append((perf_counter() - began) * 1e3)
        out[f"table_{runs}_{name}_ms"] = round(statistics.median(samples), 1)
    return out


async def timed(chain: Callable[[], Awaitable[None]]) -> float:
    began = perf_counter()
    await chain()
    return (perf_counter() - began) * 1e3


async def get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
    return response.json()


async def measure(url: str, sweep_id: str, runs: int, steps: int, repeat: int) -> dict[str, Any]:
    long_runs = [(PROJECTS[i % 3], f"r{i:05d}") for i in (runs - 2, runs - 1)]
    project, run_id = long_runs[-1]
    base = f"/api/runs/{project}/{run_id}"
    dash = f"/api/dash/runs/{project}/{run_id}"
    figures: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def runs_page(extra: str = "") -> None:
            await get(client, "/api/dash/facets")
            page = await get(client, f"/api/dash/runs?limit=50&columns={COLUMNS}{extra}")
            assert page["total"] >= 1

        async def one_chart(p: str, r: str) -> None:
            await get(client, f"/api/runs/{p}/{r}")
            history = await get(client, f"/api/runs/{p}/{r}/history?points=1000")
            assert len(history["points"]) == min(1000, steps)

        async def charts() -> None:
            await asyncio.gather(*(one_chart(p, r) for p, r in long_runs))

        async def run_page() -> None:
            # The page shows the run, its files and its chart without waiting for the
            # timeline, which is measured apart.
            state, _ = await asyncio.gather(get(client, base), get(client, base + "/files"))
            await asyncio.gather(
                get(client, base + "/history?points=1000"),
                get(client, f"{dash}/as_of?position={state['last_position']}"),
            )

        async def timeline() -> None:
            line = await get(client, dash + "/lifeline")
            assert len(line["bands"]) == (3 if steps >= 3 else 1)

        async def baseline() -> None:
            await get(client, "/api/runs?order=newest&limit=50")

        figures["runs_cold_ms"] = round(await timed(runs_page), 1)
        figures["run_page_cold_ms"] = round(await timed(run_page), 1)
        figures["timeline_cold_ms"] = round(await timed(timeline), 1)
        state = await get(client, base)
        line = await get(client, dash + "/lifeline")
        middle = (line["bands"][0]["position"] + state["last_position"]) // 2
        warm: dict[str, list[float]] = {}
        chains: dict[str, Callable[[], Awaitable[None]]] = {
            "runs": runs_page,
            "runs_sorted_searched": lambda: runs_page("&sort=summary.loss&order=asc&q=r00"),
            "charts_two_runs": charts,
            "run_page": run_page,
            "timeline": timeline,
            "sweep_page": lambda: get(client, f"/api/dash/sweeps/{sweep_id}"),
            "audit_page": lambda: get(client, "/api/log?from=1&limit=100"),
            "baseline_old_runs_table": baseline,
        }
        for _ in range(repeat):
            for name, chain in chains.items():
                warm.setdefault(name, []).append(await timed(chain))
        for name, samples in warm.items():
            figures[f"{name}_ms"] = round(statistics.median(samples), 1)
        figures["time_travel_middle_ms"] = round(
            await timed(lambda: get(client, f"{dash}/as_of?position={middle}")), 1
        )
        # The slider moved a little further, then back: folds from the copies the first
        # answer left behind.
        figures["time_travel_next_ms"] = round(
            await timed(lambda: get(client, f"{dash}/as_of?position={middle + 1000}")), 1
        )
        figures["time_travel_back_ms"] = round(
            await timed(lambda: get(client, f"{dash}/as_of?position={max(0, middle - 30_000)}")), 1
        )
        figures["explain_long_run_ms"] = round(
            await timed(lambda: get(client, f"/api/dash/explain/{project}/{run_id}")), 1
        )
    figures["ratio_runs_table"] = round(
        figures["runs_ms"] / max(figures["baseline_old_runs_table_ms"], 1e-3), 3
    )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="steps of each long run")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--short-steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--table-runs", type=int, default=100_000, help="rows of the in-process runs-table figure"
    )
    args = parser.parse_args()
    if args.runs < 22:
        raise SystemExit("--runs must be at least 22 (20 sweep runs and 2 long runs)")
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    path = folder / "runlog.db"
    process: subprocess.Popen[bytes] | None = None
    try:
        began = perf_counter()
        sweep_id = await write_store(path, args.runs, args.short_steps, 2, args.events)
        written_s = perf_counter() - began
        print(f"store: {args.runs} runs, 2 of {args.events} steps, written in {written_s:.1f} s")
        port = free_port()
        process = start_server(path, port, folder / "serve.log")
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=2) as probe:
            for _ in range(600):
                if process.poll() is not None:
                    raise SystemExit(f"runlog serve exited with {process.returncode}")
                try:
                    if (await probe.get(url + "/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        figures = await measure(url, sweep_id, args.runs, args.events, args.repeat)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    figures.update(table_at_scale(args.table_runs, args.repeat))
    figures.update(runs=args.runs, long_run_steps=args.events, store_written_s=round(written_s, 1))
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    print(
        f"time to usable, warm: runs {figures['runs_ms']} ms, run page "
        f"{figures['run_page_ms']} ms, sweep {figures['sweep_page_ms']} ms; "
        f"runs page vs the old table: x{figures['ratio_runs_table']}"
    )
    assert not math.isnan(figures["runs_ms"])
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
