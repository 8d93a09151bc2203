"""Helpers the benchmark scripts share: metrics, the mixed run log, RSS, files, figures.

Each script stays a plain program (``python benchmarks/bench_x.py``); this module sits
beside them, so a script imports it directly.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from eventstore import (
    Event,
    ExpectedVersion,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunScheduled,
    StepLogged,
    SweepCreated,
    open_store,
)
from projections import open_projector

PROJECT = "bench"
PREEMPT_EVERY = 200  # a run's events i with i % 200 == 100, 101, 102 are a preemption
PREEMPT_AT = 100
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a preempted job exits with
FINISH_EVERY = 3  # runs r0, r3, r6, ... end with RunExited(0)
SWEEP_EVERY = 10  # runs r0, r10, r20, ... belong to a sweep


def metrics(step: int) -> dict[str, float]:
    """Four float metrics that vary with ``step``, like a training loop logs."""
    return {
        "loss": 2.0 / (1.0 + step * 1e-4) + (step % 97) * 1e-3,
        "acc": 1.0 - 1.0 / (2.0 + step * 1e-4),
        "lr": 3e-4 * 0.5 ** (step // 100_000),
        "grad_norm": 0.5 + (step * 7919 % 1000) / 1000.0,
    }


def remove_db(path: Path) -> None:
    """Delete a database file and its WAL/shared-memory files, if present."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def best_and_median(samples: list[float]) -> tuple[float, float]:
    """The best (highest) and the median of some events/s samples."""
    return max(samples), statistics.median(samples)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def fresh_process(script: str, *args: object) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a new interpreter; the JSON object on its last line,
    with ``process_wall_ms``, the child's whole life as seen from here."""
    began = perf_counter()
    done = subprocess.run(
        [sys.executable, script, *map(str, args)], check=True, capture_output=True, text=True
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_wall_ms"] = round((perf_counter() - began) * 1e3, 1)
    return figures


def warm_page_cache(path: Path) -> None:
    with path.open("rb") as file:
        while file.read(1 << 20):
            pass


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``, the peak of this process's own
    memory. ``ru_maxrss`` is not used there because ``exec`` folds the peak of the memory
    it replaces into it: a child started by ``subprocess`` from a 500 MB parent would
    report a 500 MB peak (the fork, or with vfork the parent itself, held it), whatever
    the child did. Elsewhere ``ru_maxrss`` is the best there is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # kB
    except (OSError, IndexError, ValueError):
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def current_rss_mb() -> float | None:
    """This process's resident set size now, in MB (Linux only, else None)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 1e6


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS, so start-up transients do not count.

    Linux only (``echo 5 > /proc/self/clear_refs``); returns False where unsupported.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RunWriter:
    """The events of one run's stream, built a batch at a time, and what they add up to."""

    def __init__(self, number: int, total: int, sweep_id: str | None) -> None:
        self.number = number
        self.run_id = f"r{number}"
        self.stream = f"run:{PROJECT}/{self.run_id}"
        self.total = total
        self.sweep_id = sweep_id
        self.finishes = number % FINISH_EVERY == 0
        self.written = 0
        # What the fold must end with:
        self.status = "pending"
        self.incarnation = 0
        self.resumes = 0
        self.preemptions = 0
        self.next_step = 0
        self.steps = 0

    def take(self, count: int) -> list[Event]:
        """The run's next ``count`` events."""
        out = [self._event(index) for index in range(self.written, self.written + count)]
        self.written += count
        return out

    def _event(self, index: int) -> Event:
        phase = index % PREEMPT_EVERY
        if index == 0:
            return self._start(resumed=False)
        if self.finishes and index == self.total - 1:
            if self.status in ("running", "preempting"):
                self.status = "finished"
            return RunExited(incarnation=self.incarnation, exit_code=0)
        if phase == PREEMPT_AT:
            self.status = "preempting"
            return PreemptMarked(incarnation=self.incarnation)
        if phase == PREEMPT_AT + 1:
            self.status = "preempted"
            self.preemptions += 1
            return RunExited(incarnation=self.incarnation, exit_code=EXIT_PREEMPTED)
        if phase == PREEMPT_AT + 2:
            return self._start(resumed=True)
        step = self.next_step
        self.next_step += 1
        self.steps += 1
        return StepLogged(incarnation=self.incarnation, step=step, metrics=metrics(step))

    def _start(self, *, resumed: bool) -> RunInitialized:
        """The run's first ``RunInitialized``, or a resume from the step after the last."""
        self.incarnation += 1
        self.resumes += resumed
        self.status = "running"
        config = {"lr": 3e-4, "batch_size": 64, "model": "resnet18", "seed": self.number}
        return RunInitialized(
            project=PROJECT,
            run_id=self.run_id,
            incarnation=self.incarnation,
            resumed=resumed,
            starting_step=self.next_step,
            config={} if resumed else config,
            sweep_id=self.sweep_id,
            host="bench-host",
            pid=4242 + self.incarnation,
        )


class Plan:
    """How ``events`` events split into sweeps and runs, and which batch goes where."""

    def __init__(self, events: int, runs: int, sweeps: int, batch: int) -> None:
        runs = max(1, min(runs, -(-events // batch)))
        while True:
            members = [k for k in range(runs) if k % SWEEP_EVERY == 0] if sweeps > 0 else []
            count = min(sweeps, len(members))
            self.sweeps: dict[str, list[int]] = {f"sweep-{i}": [] for i in range(count)}
            for k in members:
                self.sweeps[f"sweep-{(k // SWEEP_EVERY) % count}"].append(k)
            self.sweep_events = sum(1 + len(m) + len(m[::2]) for m in self.sweeps.values())
            self.run_events = events - self.sweep_events
            if self.run_events < 1:
                raise SystemExit(f"--events {events} is too small for the sweeps")
            fits = -(-self.run_events // batch)
            if fits >= runs:
                break
            runs = fits
        self.events = events
        self.batch = batch
        self.runs = runs
        self.batches = [
            (number % runs, min(batch, self.run_events - start))
            for number, start in enumerate(range(0, self.run_events, batch))
        ]
        totals = [0] * runs
        for run, count in self.batches:
            totals[run] += count
        sweep_of = {k: sweep_id for sweep_id, ks in self.sweeps.items() for k in ks}
        self.writers = [RunWriter(k, totals[k], sweep_of.get(k)) for k in range(runs)]


def sweep_events(sweep_id: str, number: int, members: list[int]) -> list[Event]:
    """A sweep's opening: created, its runs scheduled, every other one claimed."""
    out: list[Event] = [
        SweepCreated(
            sweep_id=sweep_id,
            project=PROJECT,
            method="random",
            config={
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"lr": {"min": 1e-5, "max": 1e-2}, "batch_size": [32, 64]},
            },
            seed=number,
        )
    ]
    for index, k in enumerate(members):
        params = {"lr": 1e-5 * (1 + k), "batch_size": 32 << (k % 2)}
        out.append(RunScheduled(run_id=f"r{k}", params=params, index=index))
    out.extend(RunClaimed(run_id=f"r{k}", agent_id=f"agent-{number}") for k in members[::2])
    return out


async def write_log(path: Path, plan: Plan) -> float:
    """Append the plan's sweeps, then its run batches round-robin; return events/s."""
    elapsed = 0.0
    async with open_store(path) as store:
        for number, (sweep_id, members) in enumerate(plan.sweeps.items()):
            chunk = sweep_events(sweep_id, number, members)
            began = perf_counter()
            await store.append(f"sweep:{sweep_id}", chunk, "no_stream")
            elapsed += perf_counter() - began
        for run, count in plan.batches:
            writer = plan.writers[run]
            expected: ExpectedVersion = "no_stream" if writer.written == 0 else "any"
            chunk = writer.take(count)
            began = perf_counter()
            await store.append(writer.stream, chunk, expected)
            elapsed += perf_counter() - began
    return plan.events / elapsed


async def catch_up(path: Path) -> tuple[int, float]:
    """Catch the read model up with the log; return its position and the seconds it took."""
    async with open_store(path, create=False) as store, open_projector(store) as projector:
        start = perf_counter()
        position = await projector.catch_up()
        elapsed = perf_counter() - start
    return position, elapsed


def cpu_mark() -> float:
    """CPU seconds so far, user + system, of this process (all threads) and its reaped
    children (worker processes); ``cpu_mark() - before`` is what a measurement used.
    On a shared machine the CPU a measurement needs is steadier than its wall time."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return process_time() + children.ru_utime + children.ru_stime


# --- the raw baseline of issue 16's write bar -------------------------------------------

RAW_EVENTS_SCHEMA = """CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    stream   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    data     BLOB NOT NULL,
    UNIQUE (stream, version)
)"""
"""The raw baseline's table: a primary key and ``UNIQUE(stream, version)``, nothing else."""
RAW_EVENTS_INSERT = "INSERT INTO events (stream, version, data) VALUES (?, ?, ?)"


def raw_events_connect(path: Path) -> Any:
    """A stdlib connection with the store's pragmas (WAL, ``synchronous=NORMAL``) and
    the raw baseline's ``events`` table created."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(RAW_EVENTS_SCHEMA)
    return conn
