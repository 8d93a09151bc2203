"""``runlog serve`` under load: one-run and history requests/s, and SSE fan-out latency.

What it measures
    A store is written first: one run, ``run:bench/r1``, of N 4-metric steps (a
    ``RunInitialized``, then steps 0 .. N-1, appended in batches of 1000), and the read
    model is caught up. A real ``runlog serve`` process is started on it (watchdog off),
    and from this process, over HTTP on loopback:

    1. one-run requests/s: ``--clients`` (32) concurrent clients, each sending
       ``GET /api/runs/bench/r1`` in a loop, one request at a time, for ``--seconds``;
       every answer is checked (status 200, ``next_step`` = N).
    2. history requests/s: the same with
       ``GET /api/runs/bench/r1/history?points=500`` (every answer checked: 500 points,
       or N when N < 500, from step 0 to step N-1).
    3. SSE fan-out: ``--subscribers`` (100) clients hold ``GET /api/events`` open; then
       ``--appends`` (50) single ``StepLogged`` events are appended one at a time through
       the server (``open_store("http://...")``, the remote store training code uses),
       and for each, the time from just before the append call until each subscriber
       has parsed the event is recorded: median and p99 over all subscribers and
       appends, and the median of each append's slowest subscriber.

    The load generator (httpx on asyncio) shares the machine with the server, so the
    request rates are what one loopback client process can drive, a floor rather than
    the server's ceiling.

Baselines, measured in the same run on the same file (in this process, no HTTP)
    - the store's own read rate: ``read_all`` + decode of the whole log, events/s;
    - ``projector.run("bench", "r1")`` calls/s, one at a time (what a one-run request
      does inside the server);
    - ``projector.history(..., points=500)`` calls/s, one at a time.
    ``ratio_run`` and ``ratio_history`` are HTTP requests/s over the in-process calls/s.

Repeats: ``--repeat N`` (default 3) rounds of (store read, in-process run calls, HTTP
run, in-process history calls, HTTP history), interleaved; best and median reported.
The fan-out is measured once per round and its samples pooled.

Run ``python benchmarks/bench_serve.py`` (1,000,000 steps) or ``--events 5000`` for a
smoke run. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from _shared import metrics

from eventstore import Event, RunInitialized, StepLogged, open_store
from projections import open_projector

PROJECT = "bench"
RUN_ID = "r1"
STREAM = f"run:{PROJECT}/{RUN_ID}"
FANOUT_STREAM = f"run:{PROJECT}/fanout"  # the fan-out's appends leave r1 as it was
TOKEN = "bench-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


def batches(steps: int, batch: int) -> Iterator[list[Event]]:
    """The run's ``RunInitialized`` and ``steps`` steps, as lists of at most ``batch``."""
    total = steps + 1
    for start in range(0, total, batch):
        out: list[Event] = []
        for index in range(start, min(start + batch, total)):
            if index == 0:
                out.append(
                    RunInitialized(
                        project=PROJECT, run_id=RUN_ID, incarnation=1, resumed=False,
                        starting_step=0, config={"lr": 3e-4}, host="bench-host", pid=4242,
                    )
                )  # fmt: skip
            else:
                out.append(StepLogged(incarnation=1, step=index - 1, metrics=metrics(index - 1)))
        yield out


async def write_log(path: Path, steps: int, batch: int) -> None:
    async with open_store(path) as store, open_projector(store) as projector:
        for number, chunk in enumerate(batches(steps, batch)):
            await store.append(STREAM, chunk, "no_stream" if number == 0 else "any")
        await projector.catch_up()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    env["RUNLOG_SERVER_TOKEN"] = TOKEN
    return subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--store", str(path), "--port", str(port),
         "--reap-interval", "0"],
        env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


async def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"runlog serve exited with {process.returncode}")
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("runlog serve did not come up within 30 s")


# --- baselines in this process ---------------------------------------------------------


async def store_read_rate(path: Path) -> float:
    async with open_store(path, create=False) as store:
        start = perf_counter()
        count = 0
        async for _ in store.read_all():
            count += 1
        return count / (perf_counter() - start)


async def inprocess_calls(path: Path, what: str, steps: int, seconds: float) -> float:
    """Calls/s of ``projector.run`` or ``projector.history(points=500)``, one at a time."""
    async with open_store(path, create=False) as store, open_projector(store) as projector:
        calls = 0
        start = perf_counter()
        while perf_counter() - start < seconds:
            if what == "run":
                state = await projector.run(PROJECT, RUN_ID)
                if state is None or state.next_step != steps:
                    raise SystemExit(f"run state is wrong: {state}")
            else:
                points = await projector.history(PROJECT, RUN_ID, points=500)
                check_points([p.step for p in points], steps)
            calls += 1
        return calls / (perf_counter() - start)


def check_points(steps_seen: list[int], steps: int) -> None:
    if len(steps_seen) != min(500, steps) or steps_seen[0] != 0 or steps_seen[-1] != steps - 1:
        raise SystemExit(f"history is wrong: {len(steps_seen)} points, {steps_seen[:3]}...")


# --- HTTP load -------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads the answers.

    httpx spends about 2.5 ms of client CPU per request with 32 connections on asyncio,
    so with it the benchmark would measure its own client; these few lines cost a
    fraction of that, leaving the CPU to the server.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def http_rate(port: int, path: str, clients: int, seconds: float, steps: int) -> float:
    """Requests/s of ``clients`` concurrent connections hitting ``path`` for ``seconds``."""
    connections = [await Connection.open(port) for _ in range(clients)]
    try:
        for connection in connections:
            await connection.get(path)  # warm-up
        done = 0
        deadline = perf_counter() + seconds

        async def worker(connection: Connection) -> None:
            nonlocal done
            while perf_counter() < deadline:
                status, body = await connection.get(path)
                if status != 200:
                    raise SystemExit(f"{path}: HTTP {status} {body[:200]!r}")
                answer = json.loads(body)
                if "points" in answer:
                    check_points([p["step"] for p in answer["points"]], steps)
                elif answer["next_step"] != steps:
                    raise SystemExit(f"{path}: next_step {answer['next_step']}, not {steps}")
                done += 1

        start = perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        return done / (perf_counter() - start)
    finally:
        for connection in connections:
            connection.close()


async def fan_out(url: str, subscribers: int, appends: int) -> tuple[list[float], list[float]]:
    """Latencies (s) from append to receipt, all and per append's slowest subscriber."""
    received: dict[int, list[float]] = {}
    connected = 0
    all_connected = asyncio.Event()
    everyone = asyncio.Event()  # every subscriber has the event in flight
    limits = httpx.Limits(max_connections=subscribers + 4)
    timeout = httpx.Timeout(60, read=None)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:

        async def subscriber() -> None:
            nonlocal connected
            async with client.stream(
                "GET", "/api/events", params={"stream": FANOUT_STREAM}
            ) as response:
                connected += 1
                if connected == subscribers:
                    all_connected.set()
                seen = 0
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        times = received.setdefault(int(line[4:]), [])
                        times.append(perf_counter())
                        if len(times) == subscribers:
                            everyone.set()
                        seen += 1
                        if seen == appends:
                            return

        sent: dict[int, float] = {}
        # The group owns the subscribers; each ends after it has seen every append.
        async with asyncio.TaskGroup() as group:
            for _ in range(subscribers):
                group.create_task(subscriber())
            await asyncio.wait_for(all_connected.wait(), 60)
            os.environ["RUNLOG_TOKEN"] = TOKEN
            async with open_store(url) as remote:
                for step in range(appends):
                    everyone.clear()
                    began = perf_counter()
                    result = await remote.append(
                        FANOUT_STREAM, [StepLogged(incarnation=1, step=step, metrics=metrics(step))]
                    )
                    sent[result.positions[0]] = began
                    # Wait for every subscriber before the next append, so each latency is
                    # one event's fan-out and not a queue behind the previous one.
                    await asyncio.wait_for(everyone.wait(), 60)
    every = [t - sent[p] for p, times in received.items() for t in times]
    slowest = [max(times) - sent[p] for p, times in received.items()]
    return every, slowest


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def best_median(samples: list[float]) -> tuple[float, float]:
    return max(samples), statistics.median(samples)


async def measure(args: argparse.Namespace, path: Path, port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    samples: dict[str, list[float]] = {
        k: [] for k in ("read", "run", "http_run", "hist", "http_hist")
    }
    every: list[float] = []
    slowest: list[float] = []
    for round_number in range(1, args.repeat + 1):
        samples["read"].append(await store_read_rate(path))
        samples["run"].append(await inprocess_calls(path, "run", args.events, args.seconds))
        samples["http_run"].append(
            await http_rate(
                port, f"/api/runs/{PROJECT}/{RUN_ID}", args.clients, args.seconds, args.events
            )
        )
        samples["hist"].append(await inprocess_calls(path, "history", args.events, args.seconds))
        samples["http_hist"].append(
            await http_rate(port, f"/api/runs/{PROJECT}/{RUN_ID}/history?points=500",
                            args.clients, args.seconds, args.events)
        )  # fmt: skip
        round_every, round_slowest = await fan_out(url, args.subscribers, args.appends)
        every += round_every  # each round's appends go to the fan-out stream only
        slowest += round_slowest
        print(
            f"  round {round_number}/{args.repeat}: read {samples['read'][-1]:,.0f} events/s; "
            f"run {samples['run'][-1]:,.0f} calls/s in-process, {samples['http_run'][-1]:,.0f} "
            f"req/s HTTP; history {samples['hist'][-1]:,.1f} calls/s in-process, "
            f"{samples['http_hist'][-1]:,.1f} req/s HTTP; fan-out median "
            f"{statistics.median(round_every) * 1e3:.2f} ms"
        )
    return {"samples": samples, "every": every, "slowest": slowest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="steps of the run")
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--subscribers", type=int, default=100, help="SSE subscribers")
    parser.add_argument("--appends", type=int, default=50, help="events appended for fan-out")
    parser.add_argument("--seconds", type=float, default=None, help="per rate measurement")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 5.0 if args.events >= 100_000 else 1.0
    if min(args.events, args.batch, args.clients, args.subscribers, args.appends, args.repeat) < 1:
        parser.error("sizes must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-serve-", dir=args.dir))
    try:
        run(args, workdir)
    finally:
        if args.keep:
            print(f"kept the files in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> None:
    path = workdir / "store.db"
    print(
        f"serve: one run of {args.events:,} steps; {args.clients} HTTP clients for "
        f"{args.seconds:g} s per rate, {args.subscribers} SSE subscribers x {args.appends} "
        f"appends; {args.repeat} rounds interleaved"
    )
    asyncio.run(write_log(path, args.events, args.batch))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(path, port, workdir / "server.log")
    try:
        asyncio.run(wait_until_up(url, server))
        figures = asyncio.run(measure(args, path, port))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    s = figures["samples"]
    read, read_med = best_median(s["read"])
    run_rate, run_med = best_median(s["run"])
    http_run, http_run_med = best_median(s["http_run"])
    hist, hist_med = best_median(s["hist"])
    http_hist, http_hist_med = best_median(s["http_hist"])
    every, slowest = figures["every"], figures["slowest"]
    fan_median, fan_p99 = statistics.median(every) * 1e3, p99(every) * 1e3
    slowest_median = statistics.median(slowest) * 1e3
    print(f"  {'(best of ' + str(args.repeat) + '; median)':58}{'best':>12}{'median':>12}")
    for label, best, median in (
        ("store read_all + decode, events/s (baseline)", read, read_med),
        ("projector.run in-process, calls/s", run_rate, run_med),
        (f"GET one run, {args.clients} clients, req/s", http_run, http_run_med),
        ("projector.history(points=500) in-process, calls/s", hist, hist_med),
        (f"GET history?points=500, {args.clients} clients, req/s", http_hist, http_hist_med),
    ):
        print(f"  {label:58}{best:>12,.1f}{median:>12,.1f}")
    print(
        f"  SSE fan-out to {args.subscribers} subscribers, append -> received: median "
        f"{fan_median:.2f} ms, p99 {fan_p99:.2f} ms; slowest subscriber per append: median "
        f"{slowest_median:.2f} ms ({len(every):,} samples)"
    )
    ratio_run, ratio_hist = http_run / run_rate, http_hist / hist
    print(
        f"  ratios HTTP / in-process: one run {ratio_run:.3f}, history {ratio_hist:.3f}; "
        f"one-run requests/s per store read events/s {http_run / read:.5f}"
    )
    print(
        json.dumps(
            {
                "bench": "serve",
                "steps": args.events,
                "clients": args.clients,
                "subscribers": args.subscribers,
                "appends": args.appends,
                "seconds": args.seconds,
                "repeat": args.repeat,
                "aggregate": f"best and median of {args.repeat} interleaved rounds",
                "store_read_events_per_s": round(read),
                "store_read_events_per_s_median": round(read_med),
                "inprocess_run_calls_per_s": round(run_rate, 1),
                "http_run_req_per_s": round(http_run, 1),
                "http_run_req_per_s_median": round(http_run_med, 1),
                "inprocess_history_calls_per_s": round(hist, 1),
                "http_history_req_per_s": round(http_hist, 1),
                "http_history_req_per_s_median": round(http_hist_med, 1),
                "ratio_run": round(ratio_run, 3),
                "ratio_history": round(ratio_hist, 3),
                "ratio": round(min(ratio_run, ratio_hist), 3),
                "fanout_ms_median": round(fan_median, 3),
                "fanout_ms_p99": round(fan_p99, 3),
                "fanout_slowest_ms_median": round(slowest_median, 3),
                "samples": {k: [round(v, 1) for v in values] for k, values in s.items()},
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
