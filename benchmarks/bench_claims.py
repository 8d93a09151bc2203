"""Sweep claims: 8 agent processes draining a grid sweep, and a preempted run's requeue.

What it measures
    claim throughput
        A grid sweep of ``R`` cells (one ``int_uniform`` parameter, ``a`` in 1 .. R) is
        created in a fresh SQLite file. ``--agents`` (default 8) fresh Python processes
        each open the store, register an agent (``api.register_agent``), print "ready"
        and wait on a start barrier (a line on stdin); the parent then releases them all
        at once and each loops ``await api.claim(sweep_id, agent_id, store=store)`` until
        it returns None, without starting the runs: pure claim throughput, every claim
        a conditional append on the one sweep stream that the agents race for. The
        figure is ``R`` / wall time, from the release (``time.time()`` in the parent) to
        the end of the last agent's loop (``time.time()`` in that agent; same machine,
        same clock), in claims/s. Each agent also times every ``api.claim`` call
        (``time.perf_counter``); their median and p99 (pooled over the agents) are
        reported. Afterwards the script checks that the agents claimed ``R`` run ids in
        all, none twice, and that the sweep stream holds exactly ``R`` ``RunScheduled``
        and ``R`` ``RunClaimed`` events, for those same ``R`` distinct runs, with ``R``
        distinct grid cells. An ``api.claim`` that gives up (``SweepError``: the sweep
        stream kept changing under it for all its attempts) is counted and printed
        (``claim_errors``), and that agent asks again.
    preempted exit -> claim
        A grid sweep of ``K`` cells (``--preemptions``, default 50) in another fresh
        file; the parent claims all ``K`` runs itself first (so the search is exhausted
        and the only work left is what enters the queue). One waiting agent, a fresh
        process, polls ``api.claim`` with an open store every ``--poll-ms`` ms (default
        10; a poll that finds nothing sleeps that long, so the time between polls is the
        interval plus the cost of a poll, also reported). For each of the ``K`` runs in
        turn the parent waits a random delay (uniform in 0 .. ``max(5 x --poll-ms, 20)``
        ms, seeded; otherwise every exit would fall at the same point of the agent's
        poll cycle, which restarts when it claims, and the latencies would all be the
        same), then starts it as a sweep run does (``RUNLOG_SWEEP_ID`` and
        ``RUNLOG_RUN_ID`` set, ``api.init(project="bench", id=run_id, resume="allow",
        store=path)``), calls ``run.mark_preempting()`` and ``run.finish(143)``, so the
        run enters the sweep's queue; the waiting agent claims it (``requeue=True``) and
        says so, and only then does the parent go on with the next run. The latency is
        ``recorded_at`` of the ``RunClaimed`` minus ``recorded_at`` of the run's
        ``RunExited``, both stamped by the store when they committed (read from the log
        afterwards); the time at which the agent's ``claim`` returned, minus the same
        ``RunExited`` stamp, is reported beside it ("seen by the agent").

Baseline, measured in the same run, for scale
    stdlib ``sqlite3``, WAL, ``synchronous=NORMAL`` (the store's default durability),
    table ``raw(id INTEGER PRIMARY KEY, data BLOB NOT NULL)``: ``BEGIN``, one
    ``INSERT`` of an encoded ``RunClaimed`` (encoded before timing), ``COMMIT``, timed
    one by one, ``--commits`` times (default 1000) after 100 untimed: median and p99 in
    microseconds, and commits/s. A claim is at least one such commit (its append), so
    ``ratio`` = claims/s / raw commits/s (best of each) says how far the racing
    agents are from one process committing on its own; ``latency_ratio`` = raw commit
    median / requeue latency median (baseline time / runlog time, as in the scripts
    that time single operations) and ``claim_commits`` = raw commits/s / claims/s (how
    many bare commits one claim costs) put the other figures on the same scale.

Size
    ``--events N`` is the number of runs (grid cells, hence claims) of the throughput
    sweep, up to ``--max-runs`` (default 2000, the full size). The cost of a claim grows
    with the number of runs the sweep already has, so draining a sweep is quadratic in
    its size: ``--events 5000``, the size the suite's smoke runs (and CI) pass to every
    benchmark, would take minutes. So an ``--events`` above ``--max-runs`` is read as
    that smoke request and drains ``--smoke-runs`` runs (default 200) instead; the
    first line of output and the JSON line (``runs_requested``, ``runs``, ``capped``)
    say so. To really drain more than 2000 runs, raise ``--max-runs``.

Repeats: interleaved rounds
    One round is: raw commits, claim throughput, preempted exit -> claim, each on a
    fresh file (deleted when the round ends, unless ``--keep``); ``--repeat N`` rounds
    (default 3). Reported: claims/s best (the headline, as "best of N" in the other
    benchmarks: interference only ever slows a run down) and median; per-claim call
    time and the latencies as the median of the per-round medians and the nearest-rank
    p99 of all samples pooled; raw commits likewise, with commits/s best and median.
    Every per-round figure is in the JSON line (lists ending in ``_samples``).

Run ``python benchmarks/bench_claims.py`` (2000 runs, 8 agents, 50 preemptions, 3
rounds) or ``--events 5000`` for a smoke run (200 runs). ``--claim-worker PATH
SWEEP_ID`` and ``--wait-agent PATH SWEEP_ID`` are what the agent processes run. The
last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from time import perf_counter
from typing import Any

import anyio
from _shared import remove_db

import api
from eventstore import RunClaimed, RunExited, RunScheduled, default_codec, open_store

PROJECT = "bench"
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a preempted job exits with
WAIT_TIMEOUT_S = 60.0  # for one requeued run to be claimed, before giving up


def grid(cells: int) -> dict[str, Any]:
    """A grid sweep config with exactly ``cells`` combinations."""
    return {"method": "grid", "parameters": {"a": {"min": 1, "max": cells}}}


def nearest_rank(values: list[float], percent: int) -> float:
    """The smallest value >= ``percent``% of the samples."""
    ordered = sorted(values)
    return ordered[max(0, -(-percent * len(ordered) // 100) - 1)]


# --- the agent processes -----------------------------------------------------------------


async def claim_worker(path: Path, sweep_id: str) -> dict[str, Any]:
    """Register, wait for the start line on stdin, claim until None; what it claimed."""
    claimed: list[str] = []
    calls: list[float] = []
    errors: list[str] = []
    async with open_store(path, create=False) as store:
        agent_id = await api.register_agent(sweep_id, store=store)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        began = time.time()
        while True:
            start = perf_counter()
            try:
                work = await api.claim(sweep_id, agent_id, store=store)
            except api.SweepError as exc:  # gave up after its attempts: say so, ask again
                errors.append(str(exc))
                if len(errors) > 100:
                    raise
                continue
            calls.append(perf_counter() - start)
            if work is None:
                break
            claimed.append(work.run_id)
        ended = time.time()
    return {
        "agent_id": agent_id,
        "began": began,
        "ended": ended,
        "claimed": claimed,
        "call_ms": [round(x * 1e3, 3) for x in calls],
        "errors": errors,
    }


async def wait_agent(path: Path, sweep_id: str, poll_ms: float, count: int) -> None:
    """Poll ``api.claim`` every ``poll_ms``; print one JSON line per claim, ``count`` times."""
    polls: list[float] = []
    async with open_store(path, create=False) as store:
        agent_id = await api.register_agent(sweep_id, store=store)
        print("ready", flush=True)
        got = 0
        while got < count:
            start = perf_counter()
            work = await api.claim(sweep_id, agent_id, store=store)
            if work is None:
                polls.append(perf_counter() - start)
                await asyncio.sleep(poll_ms / 1e3)
                continue
            seen_us = int(time.time() * 1_000_000)
            got += 1
            print(
                json.dumps({"run_id": work.run_id, "requeue": work.requeue, "seen_us": seen_us}),
                flush=True,
            )
    print(
        json.dumps(
            {
                "polls": len(polls),
                "poll_ms_median": round(statistics.median(polls) * 1e3, 3) if polls else None,
            }
        ),
        flush=True,
    )


# --- the measurements --------------------------------------------------------------------


def raw_commits(path: Path, commits: int, warmup: int = 100) -> list[float]:
    """Per-transaction latencies (s) of one-row INSERT+COMMITs, raw sqlite3."""
    row = (default_codec.encode(RunClaimed(run_id="r1", agent_id="agent-1", lease_s=300.0)),)
    latencies: list[float] = []
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        insert = "INSERT INTO raw (data) VALUES (?)"
        for index in range(warmup + commits):
            start = perf_counter()
            conn.execute("BEGIN")
            conn.execute(insert, row)
            conn.execute("COMMIT")
            if index >= warmup:
                latencies.append(perf_counter() - start)
    finally:
        conn.close()
    return latencies


async def make_sweep(path: Path, cells: int) -> str:
    return await api.create_sweep(grid(cells), project=PROJECT, store=path)


async def sweep_events(path: Path, sweep_id: str) -> tuple[list[RunScheduled], list[Any]]:
    """The sweep stream's ``RunScheduled`` events and its ``RunClaimed`` records."""
    scheduled: list[RunScheduled] = []
    claims: list[Any] = []
    async with open_store(path, create=False) as store:
        async for record in store.read_stream(f"sweep:{sweep_id}"):
            if isinstance(record.event, RunScheduled):
                scheduled.append(record.event)
            elif isinstance(record.event, RunClaimed):
                claims.append(record)
    return scheduled, claims


def throughput(path: Path, runs: int, agents: int) -> dict[str, Any]:
    """Drain a grid sweep of ``runs`` cells with ``agents`` processes; figures and checks."""
    sweep_id = asyncio.run(make_sweep(path, runs))
    command = [sys.executable, __file__, "--claim-worker", str(path), sweep_id]
    processes = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(agents)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"a claim worker said {line!r} instead of 'ready'")
        released = time.time()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=900)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process in processes:
        if process.returncode != 0:
            raise SystemExit(f"a claim worker exited with {process.returncode}")
    results = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    ended = max(result["ended"] for result in results)
    seconds = ended - released

    claimed = [run_id for result in results for run_id in result["claimed"]]
    scheduled, claims = asyncio.run(sweep_events(path, sweep_id))
    claimed_in_log = [record.event.run_id for record in claims]
    problems = []
    if len(claimed) != runs or len(set(claimed)) != runs:
        twice = [run_id for run_id, n in Counter(claimed).items() if n > 1]
        problems.append(
            f"the agents claimed {len(claimed)} runs, {len(set(claimed))} distinct, not "
            f"{runs} (claimed twice: {twice[:5]})"
        )
    if len(claims) != runs or set(claimed_in_log) != set(claimed):
        problems.append(
            f"the sweep stream holds {len(claims)} RunClaimed for {len(set(claimed_in_log))} "
            "runs, not the runs the agents claimed"
        )
    if any(record.event.requeue for record in claims):
        problems.append("a claim of a new run says requeue=True")
    cells = {event.params["a"] for event in scheduled}
    if len(scheduled) != runs or len(cells) != runs:
        problems.append(
            f"the sweep stream holds {len(scheduled)} RunScheduled over {len(cells)} cells, "
            f"not {runs}"
        )
    if problems:
        raise SystemExit("claim throughput: " + "; ".join(problems))
    calls = [ms for result in results for ms in result["call_ms"]]
    return {
        "claims_per_s": runs / seconds,
        "seconds": seconds,
        "claims": len(claimed),
        "distinct": len(set(claimed)),
        "per_agent": sorted((len(result["claimed"]) for result in results), reverse=True),
        "release_skew_ms": (max(r["began"] for r in results) - released) * 1e3,
        "call_ms": calls,
        "errors": [error for result in results for error in result["errors"]],
    }


async def preempt_latency(path: Path, preemptions: int, poll_ms: float) -> dict[str, Any]:
    """Preempt ``preemptions`` runs one at a time; the exit -> claim latencies (ms)."""
    sweep_id = await make_sweep(path, preemptions)
    mine = await api.register_agent(sweep_id, store=path)
    async with open_store(path, create=False) as store:
        works = [await api.claim(sweep_id, mine, store=store) for _ in range(preemptions)]
    run_ids = [work.run_id for work in works if work is not None]
    if len(run_ids) != preemptions:
        raise SystemExit(f"the parent claimed {len(run_ids)} runs, not {preemptions}")

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--wait-agent",
        str(path),
        sweep_id,
        "--poll-ms",
        str(poll_ms),
        "--count",
        str(preemptions),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    seen: dict[str, int] = {}
    saved = {name: os.environ.get(name) for name in ("RUNLOG_SWEEP_ID", "RUNLOG_RUN_ID")}
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WAIT_TIMEOUT_S)
        if line.strip() != b"ready":
            raise SystemExit(f"the waiting agent said {line!r} instead of 'ready'")
        os.environ["RUNLOG_SWEEP_ID"] = sweep_id
        jitter = random.Random(preemptions)
        for run_id in run_ids:
            await asyncio.sleep(jitter.uniform(0.0, max(5 * poll_ms, 20.0)) / 1e3)
            os.environ["RUNLOG_RUN_ID"] = run_id
            run = await api.init(project=PROJECT, id=run_id, resume="allow", store=path)
            await run.mark_preempting()
            await run.finish(EXIT_PREEMPTED)
            line = await asyncio.wait_for(process.stdout.readline(), WAIT_TIMEOUT_S)
            said = json.loads(line)
            if said["run_id"] != run_id or not said["requeue"]:
                raise SystemExit(f"the waiting agent claimed {said}, not {run_id} (requeued)")
            seen[run_id] = said["seen_us"]
        tail = json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT_TIMEOUT_S))
        await asyncio.wait_for(process.wait(), WAIT_TIMEOUT_S)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise SystemExit(f"the waiting agent exited with {process.returncode}")

    exited: dict[str, int] = {}
    async with open_store(path, create=False) as store:
        for run_id in run_ids:
            async for record in store.read_stream(f"run:{PROJECT}/{run_id}"):
                if isinstance(record.event, RunExited):
                    exited[run_id] = record.recorded_at_us
    _, claims = await sweep_events(path, sweep_id)
    requeued = {
        record.event.run_id: record.recorded_at_us for record in claims if record.event.requeue
    }
    if set(requeued) != set(run_ids) or set(exited) != set(run_ids):
        raise SystemExit(
            f"{len(requeued)} requeued claims and {len(exited)} exits in the log, "
            f"not {preemptions} of each"
        )
    return {
        "latency_ms": [(requeued[r] - exited[r]) / 1e3 for r in run_ids],
        "seen_ms": [(seen[r] - exited[r]) / 1e3 for r in run_ids],
        "polls": tail["polls"],
        "poll_ms_median": tail["poll_ms_median"],
    }


# --- the script --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=2000,
        help="runs (grid cells, so claims) of the throughput sweep; see --max-runs",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=2000,
        help="the most runs --events may ask for; above it, --smoke-runs (draining is quadratic)",
    )
    parser.add_argument(
        "--smoke-runs",
        type=int,
        default=200,
        help="runs when --events is above --max-runs (the suite's smoke runs pass 5000)",
    )
    parser.add_argument("--agents", type=int, default=8, help="claiming agent processes")
    parser.add_argument(
        "--preemptions", type=int, default=50, help="preempted runs per round, one at a time"
    )
    parser.add_argument(
        "--poll-ms", type=float, default=10.0, help="the waiting agent's sleep between polls"
    )
    parser.add_argument("--commits", type=int, default=1000, help="raw baseline commits")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (raw commits, claim throughput, preempted exit -> claim)",
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
        "--claim-worker",
        nargs=2,
        metavar=("PATH", "SWEEP_ID"),
        help="be one claiming agent process of the throughput measurement",
    )
    parser.add_argument(
        "--wait-agent",
        nargs=2,
        metavar=("PATH", "SWEEP_ID"),
        help="be the waiting agent of the latency measurement (with --poll-ms, --count)",
    )
    parser.add_argument("--count", type=int, default=1, help="with --wait-agent: claims to make")
    args = parser.parse_args()

    if args.claim_worker is not None:
        path, sweep_id = args.claim_worker
        print(json.dumps(asyncio.run(claim_worker(Path(path), sweep_id))))
        return
    if args.wait_agent is not None:
        path, sweep_id = args.wait_agent
        asyncio.run(wait_agent(Path(path), sweep_id, args.poll_ms, args.count))
        return
    if min(args.events, args.max_runs, args.smoke_runs, args.agents, args.preemptions) < 1:
        parser.error("--events, --max-runs, --smoke-runs, --agents and --preemptions must be >= 1")
    if min(args.commits, args.repeat) < 1 or args.poll_ms < 0:
        parser.error("--commits and --repeat must be positive, --poll-ms not negative")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-claims-", dir=args.dir))
    try:
        run(args, workdir)
    finally:
        if args.keep:
            print(f"kept the database files in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def sizes(args: argparse.Namespace) -> tuple[int, str | None]:
    """The runs to drain, and why they are not ``--events`` (None if they are)."""
    if args.events <= args.max_runs:
        return args.events, None
    return args.smoke_runs, (
        f"--events {args.events:,} is above --max-runs {args.max_runs:,}: read as the "
        f"suite's smoke size, --smoke-runs {args.smoke_runs:,}"
    )


def run(args: argparse.Namespace, workdir: Path) -> None:
    runs, why = sizes(args)
    repeat, agents, preemptions = args.repeat, args.agents, args.preemptions
    capped = f" ({why})" if why else ""
    print(
        f"claims: {agents} agent processes drain a grid sweep of {runs:,} runs{capped}; "
        f"{preemptions} preempted runs claimed by a waiting agent polling every "
        f"{args.poll_ms:g} ms; raw baseline {args.commits:,} single-row commits; SQLite "
        f"{sqlite3.sqlite_version}, WAL, synchronous=NORMAL; {repeat} rounds, interleaved "
        "(raw, claims, preemptions), fresh files"
    )
    raw_runs: list[list[float]] = []
    claim_runs: list[dict[str, Any]] = []
    latency_runs: list[dict[str, Any]] = []
    for round_number in range(1, repeat + 1):
        raw_path = workdir / f"raw-{round_number}.db"
        claims_path = workdir / f"claims-{round_number}.db"
        latency_path = workdir / f"preempt-{round_number}.db"
        raw_runs.append(raw_commits(raw_path, args.commits))
        claim_runs.append(throughput(claims_path, runs, agents))
        latency_runs.append(asyncio.run(preempt_latency(latency_path, preemptions, args.poll_ms)))
        raw_us = [x * 1e6 for x in raw_runs[-1]]
        figures, latency = claim_runs[-1], latency_runs[-1]
        print(
            f"  round {round_number}/{repeat}: raw commit median {statistics.median(raw_us):.1f} "
            f"us; {figures['claims']:,} claims in {figures['seconds']:.2f} s = "
            f"{figures['claims_per_s']:,.1f} claims/s (per agent {figures['per_agent']}, "
            f"call median {statistics.median(figures['call_ms']):.2f} ms); preempted exit -> "
            f"claim median {statistics.median(latency['latency_ms']):.2f} ms, max "
            f"{max(latency['latency_ms']):.2f} ms ({latency['polls']:,} empty polls of "
            f"{latency['poll_ms_median']} ms median)"
        )
        if not args.keep:
            for path in (raw_path, claims_path, latency_path):
                remove_db(path)
    report(args, runs, why, raw_runs, claim_runs, latency_runs)


def report(
    args: argparse.Namespace,
    runs: int,
    why: str | None,
    raw_runs: list[list[float]],
    claim_runs: list[dict[str, Any]],
    latency_runs: list[dict[str, Any]],
) -> None:
    repeat = args.repeat
    raw_us = [[x * 1e6 for x in latencies] for latencies in raw_runs]
    raw_rates = [len(latencies) / sum(latencies) for latencies in raw_runs]
    raw_median = statistics.median(statistics.median(us) for us in raw_us)
    raw_p99 = nearest_rank([x for us in raw_us for x in us], 99)
    rates = [figures["claims_per_s"] for figures in claim_runs]
    calls = [figures["call_ms"] for figures in claim_runs]
    call_median = statistics.median(statistics.median(ms) for ms in calls)
    call_p99 = nearest_rank([x for ms in calls for x in ms], 99)
    latencies = [figures["latency_ms"] for figures in latency_runs]
    seens = [figures["seen_ms"] for figures in latency_runs]
    latency_median = statistics.median(statistics.median(ms) for ms in latencies)
    latency_p99 = nearest_rank([x for ms in latencies for x in ms], 99)
    seen_median = statistics.median(statistics.median(ms) for ms in seens)
    seen_p99 = nearest_rank([x for ms in seens for x in ms], 99)
    polls = [f["poll_ms_median"] for f in latency_runs if f["poll_ms_median"] is not None]
    errors = [error for figures in claim_runs for error in figures["errors"]]
    best, best_raw = max(rates), max(raw_rates)

    print(f"  {'':46}{'median':>10}{'p99':>10}  (median of per-round medians; p99 pooled)")
    for label, median, p99, unit in (
        ("raw sqlite3 INSERT+COMMIT", raw_median, raw_p99, "us"),
        (f"api.claim call, {args.agents} agents racing", call_median, call_p99, "ms"),
        ("preempted exit -> claim (log stamps)", latency_median, latency_p99, "ms"),
        ("preempted exit -> claim seen by the agent", seen_median, seen_p99, "ms"),
    ):
        print(f"  {label:46}{median:>10.2f}{p99:>10.2f}  {unit}")
    print(
        f"  claims/s, {args.agents} agents, {runs:,} runs: {best:,.1f} best, "
        f"{statistics.median(rates):,.1f} median; raw commits/s {best_raw:,.0f} best"
    )
    if polls:
        print(
            f"  the waiting agent's empty poll: {statistics.median(polls):.2f} ms median "
            f"(+ {args.poll_ms:g} ms sleep)"
        )
    if errors:
        print(f"  {len(errors)} api.claim calls gave up (SweepError) and were retried: {errors[0]}")
    ratio = best / best_raw
    print(
        f"  ratio claims/s / raw commits/s (best of {repeat}): {ratio:.4f}; one claim costs "
        f"{best_raw / best:,.0f} raw commits; requeue latency = "
        f"{latency_median * 1e3 / raw_median:,.0f} raw commits"
    )
    print(
        json.dumps(
            {
                "bench": "claims",
                "runs_requested": args.events,
                "runs": runs,
                "capped": why,
                "agents": args.agents,
                "preemptions": args.preemptions,
                "poll_ms": args.poll_ms,
                "commits": args.commits,
                "repeat": repeat,
                "aggregate": (
                    f"{repeat} interleaved rounds: claims/s best of {repeat}; medians are "
                    "the median of per-round medians, p99 over all samples pooled"
                ),
                "claims_per_s": round(best, 1),
                "claims_per_s_median": round(statistics.median(rates), 1),
                "claims": [figures["claims"] for figures in claim_runs],
                "distinct_runs_claimed": [figures["distinct"] for figures in claim_runs],
                "claims_per_agent": [figures["per_agent"] for figures in claim_runs],
                "claim_errors": len(errors),
                "claim_call_ms_median": round(call_median, 3),
                "claim_call_ms_p99": round(call_p99, 3),
                "latency_ms_median": round(latency_median, 3),
                "latency_ms_p99": round(latency_p99, 3),
                "seen_ms_median": round(seen_median, 3),
                "seen_ms_p99": round(seen_p99, 3),
                "empty_poll_ms_median": round(statistics.median(polls), 3) if polls else None,
                "raw_commit_us_median": round(raw_median, 1),
                "raw_commit_us_p99": round(raw_p99, 1),
                "raw_commits_per_s": round(best_raw),
                "raw_commits_per_s_median": round(statistics.median(raw_rates)),
                "ratio": round(ratio, 5),
                "claim_commits": round(best_raw / best, 1),
                "latency_ratio": round(raw_median / (latency_median * 1e3), 5),
                "claims_per_s_samples": [round(rate, 1) for rate in rates],
                "claim_seconds_samples": [round(f["seconds"], 3) for f in claim_runs],
                "release_skew_ms_samples": [round(f["release_skew_ms"], 1) for f in claim_runs],
                "claim_call_ms_median_samples": [round(statistics.median(ms), 3) for ms in calls],
                "latency_ms_median_samples": [round(statistics.median(ms), 3) for ms in latencies],
                "latency_ms_max_samples": [round(max(ms), 3) for ms in latencies],
                "raw_commit_us_median_samples": [round(statistics.median(us), 1) for us in raw_us],
                "raw_commits_per_s_samples": [round(rate) for rate in raw_rates],
                "sqlite": sqlite3.sqlite_version,
                "python": sys.version.split()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
