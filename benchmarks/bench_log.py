"""End-to-end ``run.log`` throughput of the library, against raw ``sqlite3`` and two peers.

What it measures
    A training loop logging ``N`` steps of 4 float metrics (``loss``, ``acc``, ``lr``,
    ``grad_norm``), one ``log`` call per step, into a fresh SQLite store (WAL,
    ``synchronous=NORMAL``), through

    async
        ``async with api.init(project="bench", id="r1", store=path) as run:`` and
        ``await run.log(metrics)`` per step; leaving the block calls ``run.finish(0)``.
    sync
        the blocking facade: ``with api.sync.init(...) as run:`` and ``run.log(metrics)``
        per step (the writer runs on the facade's private event-loop thread).

    Both run with the library's defaults (``flush_interval`` 0.2 s, ``batch_size``
    1000, ``max_buffer`` 20,000). The clock (``time.perf_counter``) starts at the first
    ``log`` call and stops when ``finish()`` has returned, so everything logged is
    durable and the store (which ``init`` opened from the path, so the run owns it) is
    closed: buffering, building ``StepLogged`` events, msgpack encoding, event ids, the
    hash chain, the group commits and the final checkpoint on close are all inside it.
    ``init`` is not timed (its time is printed). The split between the ``log`` loop
    and ``finish()`` is reported too. Afterwards the file is checked untimed: the
    stream must hold the ``RunInitialized``, the ``N`` steps and the ``RunExited``.

    The metrics dicts are built before timing: a pool of ``min(N, 10,000)`` dicts that
    vary with the step, logged in turn (``pool[i % len(pool)]``), so that building them
    is not measured and a million dicts are never in memory at once. ``run.log`` copies
    the dict it is given, so logging the same dict again is safe.

Baseline, measured in the same run on fresh files in the same directory
    raw sqlite3
        (issue 16's baseline) stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``, table
        ``events(position INTEGER PRIMARY KEY, stream TEXT, version INTEGER, data BLOB,
        UNIQUE(stream, version))``: one transaction per ``--batch`` rows (default 1000)
        ``(stream, version, data)``, inserted with ``executemany``. The rows are the
        msgpack bytes of ``StepLogged(incarnation=1, step=i, metrics=pool[i % len(pool)])``
        (``default_codec.encode``), encoded *before* timing, one batch at a time. Timed:
        every ``BEGIN``/``executemany``/``COMMIT`` plus closing the connection (the final
        checkpoint), because ``finish()`` closes the store too. ``ratio_async`` and
        ``ratio_sync`` are runlog events/s / raw events/s; the bar is ``--bar`` (default
        0.6) for each, and ``ratio`` is the lower of the two. The process's CPU time
        (all threads) per event is printed for each side too: it moves far less than
        wall-clock time on a loaded machine.

Peers, optional, each in a fresh process
    mlflow
        ``mlflow.start_run()`` (untimed, like ``init``), then
        ``mlflow.log_metrics(metrics, step=i)`` per step and ``mlflow.end_run()``, with a
        ``sqlite:///`` tracking URI in the round's directory (the experiment is created
        and the database migrated before timing). The metric history is checked
        afterwards (untimed).
    wandb
        ``WANDB_MODE=offline``: ``wandb.init(project="bench", dir=...)`` (untimed), then
        ``run.log(metrics)`` per step and ``run.finish()``.

    Peers are much slower per step, so they log ``--peer-events`` steps (default
    ``min(20,000, max(100, N // 50))``: 20,000 at full size, 100 in a smoke run): the
    comparison is of rates (events/s), not of the same ``N``.
    Each gets a copy of the pool's dict (a copy costs ~0.1 us, nothing next to their
    per-step cost). A peer that cannot be found (``importlib.util.find_spec``) is skipped
    and recorded as ``"skipped: not installed"``; one that fails or times out
    (``--peer-timeout``) is recorded as ``"failed: ..."``; neither fails the script.
    The issue's bar is that both runlog APIs beat both peers (``beats_peers``; null when
    no peer ran).

Repeats: best of N, interleaved
    The sides run ``--repeat N`` times (default 3) in rounds, interleaved: raw, async,
    sync, mlflow, wandb, raw, async, ... Every run writes a fresh file (or directory) and
    a round's files are deleted when it ends, unless ``--keep``. For each side the script
    reports the best (highest events/s) and the median of its N runs; the headline ratios
    are best/best (on a noisy machine interference only ever slows a run down), with the
    ratios of the medians next to them (``*_of_medians``). Every sample is in the JSON
    line.

Run ``python benchmarks/bench_log.py`` (1,000,000 events, 3 rounds) or ``--events 5000``
for a smoke run. ``--peer-only NAME --peer-dir DIR`` runs one peer measurement of
``--events`` steps in this process (what the fresh processes run). The last line of
output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from _shared import RAW_EVENTS_INSERT, best_and_median, metrics, raw_events_connect, remove_db

import api
from api import sync
from eventstore import StepLogged, default_codec

PROJECT = "bench"
RUN_ID = "r1"
STREAM = f"run:{PROJECT}/{RUN_ID}"
POOL = 10_000  # distinct metrics dicts, logged in turn
PEERS = ("mlflow", "wandb")


def make_pool(events: int) -> list[dict[str, float]]:
    return [metrics(step) for step in range(min(events, POOL))]


# --- raw sqlite3 ----------------------------------------------------------------------


def raw_run(path: Path, events: int, batch: int, pool: list[dict[str, float]]) -> dict[str, float]:
    """Raw ``executemany`` of pre-encoded rows, ``batch`` per transaction, then close."""
    encode = default_codec.encode
    size = len(pool)
    conn = raw_events_connect(path)
    elapsed = 0.0
    cpu = 0.0
    total_bytes = 0
    try:
        for start in range(0, events, batch):
            rows = [
                (STREAM, i, encode(StepLogged(incarnation=1, step=i, metrics=pool[i % size])))
                for i in range(start, min(start + batch, events))
            ]
            total_bytes += sum(len(row[2]) for row in rows)
            began, began_cpu = perf_counter(), process_time()
            conn.execute("BEGIN")
            conn.executemany(RAW_EVENTS_INSERT, rows)
            conn.execute("COMMIT")
            elapsed += perf_counter() - began
            cpu += process_time() - began_cpu
    finally:
        began, began_cpu = perf_counter(), process_time()
        conn.close()
        close_s = perf_counter() - began
        cpu += process_time() - began_cpu
    elapsed += close_s
    return {
        "events_per_s": events / elapsed,
        "cpu_us": cpu / events * 1e6,
        "close_s": close_s,
        "event_bytes": total_bytes / events,
    }


# --- runlog ---------------------------------------------------------------------------


async def async_run(path: Path, events: int, pool: list[dict[str, float]]) -> dict[str, float]:
    """``await run.log`` per step inside ``async with api.init(...)``; timed to finish."""
    size = len(pool)
    began = perf_counter()
    async with api.init(project=PROJECT, id=RUN_ID, store=path) as run:
        start, start_cpu = perf_counter(), process_time()
        log = run.log
        for i in range(events):
            await log(pool[i % size])
        logged = perf_counter()
    done = perf_counter()
    cpu = process_time() - start_cpu
    if run.step != events or not run.finished:
        raise SystemExit(f"async: the run ended at step {run.step}, not {events}")
    return {**split(began, start, logged, done, events), "cpu_us": cpu / events * 1e6}


def sync_run(path: Path, events: int, pool: list[dict[str, float]]) -> dict[str, float]:
    """``run.log`` per step inside ``with api.sync.init(...)``; timed to finish."""
    size = len(pool)
    began = perf_counter()
    with sync.init(project=PROJECT, id=RUN_ID, store=path) as run:
        start, start_cpu = perf_counter(), process_time()
        log = run.log
        for i in range(events):
            log(pool[i % size])
        logged = perf_counter()
    done = perf_counter()
    cpu = process_time() - start_cpu
    if run.step != events or not run.finished:
        raise SystemExit(f"sync: the run ended at step {run.step}, not {events}")
    return {**split(began, start, logged, done, events), "cpu_us": cpu / events * 1e6}


def split(began: float, start: float, logged: float, done: float, events: int) -> dict[str, float]:
    return {
        "events_per_s": events / (done - start),
        "init_s": start - began,
        "log_s": logged - start,
        "finish_s": done - logged,
    }


def check_store(path: Path, events: int) -> None:
    """Fail unless the store holds RunInitialized, ``events`` steps and RunExited."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
        row = conn.execute("SELECT version FROM streams WHERE name = ?", (STREAM,)).fetchone()
        (last,) = conn.execute("SELECT data FROM events ORDER BY position DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    wanted = events + 2
    if count != wanted or row is None or row[0] != wanted - 1:
        raise SystemExit(f"{path.name}: {count} events (stream at {row}), expected {wanted}")
    if type(default_codec.decode(last)).__name__ != "RunExited":
        raise SystemExit(f"{path.name}: the last event is not the RunExited")


# --- peers ----------------------------------------------------------------------------


def peer_mlflow(workdir: Path, events: int, pool: list[dict[str, float]]) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports meanwhile
    mlflow: Any = importlib.import_module("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = mlflow.create_experiment(
        "bench", artifact_location=(workdir / "artifacts").as_uri()
    )
    size = len(pool)
    began = perf_counter()
    run = mlflow.start_run(experiment_id=experiment)
    start = perf_counter()
    for i in range(events):
        mlflow.log_metrics(dict(pool[i % size]), step=i)
    logged = perf_counter()
    mlflow.end_run()
    done = perf_counter()
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "loss")
    if len(history) != events:
        raise SystemExit(f"mlflow stored {len(history)} loss values, expected {events}")
    return {**split(began, start, logged, done, events), "version": mlflow.__version__}


def peer_wandb(workdir: Path, events: int, pool: list[dict[str, float]]) -> dict[str, Any]:
    os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ["WANDB_SILENT"] = "true"
    os.environ["WANDB_DIR"] = str(workdir)
    for variable, folder in (("CACHE", "cache"), ("CONFIG", "config"), ("DATA", "data")):
        os.environ[f"WANDB_{variable}_DIR"] = str(workdir / folder)  # nothing in $HOME
    wandb: Any = importlib.import_module("wandb")
    size = len(pool)
    began = perf_counter()
    run = wandb.init(project=PROJECT, dir=str(workdir), mode="offline")
    start = perf_counter()
    log = run.log
    for i in range(events):
        log(dict(pool[i % size]))
    logged = perf_counter()
    run.finish()
    done = perf_counter()
    return {**split(began, start, logged, done, events), "version": wandb.__version__}


def peer_only(name: str, workdir: Path, events: int) -> dict[str, Any]:
    """One peer measurement in this process, as a dict of figures (the JSON line)."""
    pool = make_pool(events)
    workdir.mkdir(parents=True, exist_ok=True)
    figures = (peer_mlflow if name == "mlflow" else peer_wandb)(workdir, events, pool)
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    return {"bench": "log-peer-only", "peer": name, "events": events, **rounded}


def peer_missing(name: str) -> str | None:
    """Why ``name`` cannot be measured, or None if it is importable."""
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError) as exc:
        return f"skipped: {exc}"
    return None if found else "skipped: not installed"


def peer_in_fresh_process(
    name: str, workdir: Path, events: int, timeout: float
) -> dict[str, Any] | str:
    """Run ``--peer-only`` in a new interpreter; its figures, or why it failed."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--peer-only",
                name,
                "--peer-dir",
                str(workdir),
                "--events",
                str(events),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=workdir,
        )
    except subprocess.TimeoutExpired:
        return f"failed: timed out after {timeout:g} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed: exit {done.returncode}: {tail[:200]}"
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


# --- the driver -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="steps to log")
    parser.add_argument("--batch", type=int, default=1000, help="raw sqlite3: rows per transaction")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (raw, async, sync, peers), interleaved; best and median reported",
    )
    parser.add_argument(
        "--peer-events",
        type=int,
        default=None,
        help="steps each peer logs (default: min(20,000, max(100, --events // 50)))",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peers to try (mlflow, wandb); empty for none",
    )
    parser.add_argument(
        "--peer-timeout", type=float, default=900.0, help="seconds before a peer run is abandoned"
    )
    parser.add_argument(
        "--bar", type=float, default=0.6, help="the runlog/raw ratio each API must reach"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to make the temporary working directory (default: the system temp dir); "
        "put it on the disk you care about, not on a tmpfs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    parser.add_argument(
        "--peer-only",
        choices=PEERS,
        help="only measure this peer, logging --events steps, in this process",
    )
    parser.add_argument("--peer-dir", type=Path, help="with --peer-only: the directory to write to")
    args = parser.parse_args()

    if args.peer_only is not None:
        if args.peer_dir is None:
            parser.error("--peer-only needs --peer-dir")
        print(json.dumps(peer_only(args.peer_only, args.peer_dir, args.events)))
        return
    peer_events = args.peer_events
    if peer_events is None:
        peer_events = min(20_000, max(100, args.events // 50))
    if min(args.events, args.batch, args.repeat, peer_events) < 1:
        parser.error("--events, --batch, --repeat and --peer-events must be positive")
    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers: {', '.join(unknown)} (known: {', '.join(PEERS)})")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-log-", dir=args.dir))
    try:
        run(args, peers, peer_events, workdir)
    finally:
        if args.keep:
            print(f"kept the database files in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, peers: list[str], peer_events: int, workdir: Path) -> None:
    events, repeat = args.events, args.repeat
    print(
        f"log: {events:,} steps of 4 metrics, one run.log call each, until finish() returns; "
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL; best of {repeat}, "
        f"interleaved (raw, async, sync, peers, raw, ...), fresh files"
    )
    missing = {name: peer_missing(name) for name in peers}
    for name in PEERS:
        if name not in peers:
            print(f"  {name}: skipped (not in --peers)")
        elif missing[name] is not None:
            print(f"  {name}: {missing[name]}")
    runnable = [name for name in peers if missing[name] is None]
    if runnable:
        print(f"  peers {', '.join(runnable)}: {peer_events:,} steps each, in fresh processes")

    pool = make_pool(events)
    samples: dict[str, list[float]] = {"raw": [], "async": [], "sync": []}
    parts: dict[str, dict[str, list[float]]] = {
        side: {"init_s": [], "log_s": [], "finish_s": []} for side in ("async", "sync")
    }
    raw_close: list[float] = []
    cpu_us: dict[str, list[float]] = {"raw": [], "async": [], "sync": []}
    peer_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in runnable}
    peer_failed: dict[str, str] = {}
    event_bytes = 0.0
    for round_number in range(1, repeat + 1):
        raw_path = workdir / f"raw-{round_number}.db"
        async_path = workdir / f"async-{round_number}.db"
        sync_path = workdir / f"sync-{round_number}.db"
        raw = raw_run(raw_path, events, args.batch, pool)
        event_bytes = raw["event_bytes"]
        raw_close.append(raw["close_s"])
        figures = {"async": asyncio.run(async_run(async_path, events, pool))}
        check_store(async_path, events)
        figures["sync"] = sync_run(sync_path, events, pool)
        check_store(sync_path, events)
        samples["raw"].append(raw["events_per_s"])
        cpu_us["raw"].append(raw["cpu_us"])
        cpu_us["async"].append(figures["async"]["cpu_us"])
        cpu_us["sync"].append(figures["sync"]["cpu_us"])
        for side in ("async", "sync"):
            samples[side].append(figures[side]["events_per_s"])
            for part in parts[side]:
                parts[side][part].append(figures[side][part])
        line = (
            f"  round {round_number}/{repeat}: raw {raw['events_per_s']:,.0f}, async "
            f"{figures['async']['events_per_s']:,.0f}, sync "
            f"{figures['sync']['events_per_s']:,.0f} events/s"
        )
        for name in runnable:
            if name in peer_failed:
                continue
            result = peer_in_fresh_process(
                name, workdir / f"{name}-{round_number}", peer_events, args.peer_timeout
            )
            if isinstance(result, str):
                peer_failed[name] = result
                line += f"; {name} {result}"
            else:
                peer_runs[name].append(result)
                line += f", {name} {result['events_per_s']:,.0f}"
        print(line)
        if not args.keep:
            for path in (raw_path, async_path, sync_path):
                remove_db(path)
            for name in runnable:
                shutil.rmtree(workdir / f"{name}-{round_number}", ignore_errors=True)

    best = {side: best_and_median(values)[0] for side, values in samples.items()}
    median = {side: best_and_median(values)[1] for side, values in samples.items()}
    peer_best: dict[str, float] = {}
    peer_median: dict[str, float] = {}
    for name, runs in peer_runs.items():
        if runs and name not in peer_failed:
            rates = [r["events_per_s"] for r in runs]
            peer_best[name], peer_median[name] = best_and_median(rates)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(f"  {'':50}{'best events/s':>15}{'median events/s':>17}")
    rows = [
        ("raw sqlite3 (PK + UNIQUE(stream, version), + close)", "raw"),
        ("runlog async: await run.log ... finish()", "async"),
        ("runlog sync: run.log ... finish()", "sync"),
    ]
    for label, side in rows:
        print(f"  {label:50}{best[side]:>15,.0f}{median[side]:>17,.0f}")
    for name in peer_best:
        label = f"{name} {peer_runs[name][0]['version']} ({peer_events:,} steps, fresh process)"
        print(f"  {label:50}{peer_best[name]:>15,.0f}{peer_median[name]:>17,.0f}")
    for side in ("async", "sync"):
        p = parts[side]
        print(
            f"  {side} split (medians): init {med(p['init_s']) * 1e3:.1f} ms (not timed), log "
            f"loop {med(p['log_s']):.3f} s, finish() {med(p['finish_s']) * 1e3:.1f} ms"
        )
    for name in peer_best:
        runs = peer_runs[name]
        print(
            f"  {name} split (medians): start {med([r['init_s'] for r in runs]) * 1e3:.1f} ms "
            f"(not timed), log loop {med([r['log_s'] for r in runs]):.3f} s, end "
            f"{med([r['finish_s'] for r in runs]) * 1e3:.1f} ms"
        )
    print(
        f"  payload: {event_bytes:.1f} bytes per event on average (msgpack); raw close "
        f"{med(raw_close) * 1e3:.1f} ms (median)"
    )
    cpu = {side: min(values) for side, values in cpu_us.items()}
    print(
        f"  CPU time of the process, all threads (us/event, least of {repeat}): raw "
        f"{cpu['raw']:.2f}, async {cpu['async']:.2f}, sync {cpu['sync']:.2f}; raw/runlog: async "
        f"{cpu['raw'] / cpu['async']:.3f}, sync {cpu['raw'] / cpu['sync']:.3f} (the ratios a "
        "machine with no core to spare would see; the writer thread overlaps otherwise)"
    )
    ratio_async = best["async"] / best["raw"]
    ratio_sync = best["sync"] / best["raw"]
    bar = args.bar
    print(
        f"  ratio async/raw (best of {repeat}, interleaved): {ratio_async:.3f}; sync/raw: "
        f"{ratio_sync:.3f} (ratios of the medians: {median['async'] / median['raw']:.3f} and "
        f"{median['sync'] / median['raw']:.3f}); bar {bar:g}: async "
        f"{'met' if ratio_async >= bar else 'NOT met'}, sync "
        f"{'met' if ratio_sync >= bar else 'NOT met'}"
    )
    peer_json: dict[str, Any] = {}
    beats: list[bool] = []
    for name in PEERS:
        if name not in peers:
            peer_json[name] = "skipped: not in --peers"
        elif missing[name] is not None:
            peer_json[name] = missing[name]
        elif name in peer_failed:
            peer_json[name] = peer_failed[name]
            print(f"  {name}: {peer_failed[name]}")
        else:
            runs = peer_runs[name]
            async_over = best["async"] / peer_best[name]
            sync_over = best["sync"] / peer_best[name]
            beats += [async_over > 1.0, sync_over > 1.0]
            print(
                f"  vs {name} (rates, best/best): async {async_over:,.1f}x, sync "
                f"{sync_over:,.1f}x as fast"
            )
            peer_json[name] = {
                "version": runs[0]["version"],
                "events": peer_events,
                "events_per_s": round(peer_best[name]),
                "events_per_s_median": round(peer_median[name]),
                "start_s_median": round(med([r["init_s"] for r in runs]), 3),
                "end_s_median": round(med([r["finish_s"] for r in runs]), 3),
                "samples": [round(r["events_per_s"]) for r in runs],
                "async_over_peer": round(async_over, 2),
                "sync_over_peer": round(sync_over, 2),
            }
    beats_peers = all(beats) if beats else None
    if beats:
        print(f"  runlog faster than every peer measured: {'yes' if beats_peers else 'NO'}")
    print(
        json.dumps(
            {
                "bench": "log",
                "events": events,
                "batch": args.batch,
                "repeat": repeat,
                "aggregate": f"best of {repeat}, interleaved",
                "event_bytes": round(event_bytes, 1),
                "async_events_per_s": round(best["async"]),
                "sync_events_per_s": round(best["sync"]),
                "raw_events_per_s": round(best["raw"]),
                "ratio": round(min(ratio_async, ratio_sync), 3),
                "ratio_async": round(ratio_async, 3),
                "raw_baseline": "events(position PK, stream, version, data, UNIQUE(stream, version))",
                "ratio_sync": round(ratio_sync, 3),
                "async_events_per_s_median": round(median["async"]),
                "sync_events_per_s_median": round(median["sync"]),
                "raw_events_per_s_median": round(median["raw"]),
                "ratio_async_of_medians": round(median["async"] / median["raw"], 3),
                "ratio_sync_of_medians": round(median["sync"] / median["raw"], 3),
                "ratio_of_medians": round(min(median["async"], median["sync"]) / median["raw"], 3),
                "cpu_us_per_event": {side: round(us, 3) for side, us in cpu.items()},
                "bar": bar,
                "meets_bar_async": ratio_async >= bar,
                "meets_bar_sync": ratio_sync >= bar,
                "async_init_s_median": round(med(parts["async"]["init_s"]), 4),
                "async_log_s_median": round(med(parts["async"]["log_s"]), 4),
                "async_finish_s_median": round(med(parts["async"]["finish_s"]), 4),
                "sync_init_s_median": round(med(parts["sync"]["init_s"]), 4),
                "sync_log_s_median": round(med(parts["sync"]["log_s"]), 4),
                "sync_finish_s_median": round(med(parts["sync"]["finish_s"]), 4),
                "raw_close_s_median": round(med(raw_close), 4),
                "async_samples": [round(x) for x in samples["async"]],
                "sync_samples": [round(x) for x in samples["sync"]],
                "raw_samples": [round(x) for x in samples["raw"]],
                "peer_events": peer_events,
                **peer_json,
                "beats_peers": beats_peers,
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
