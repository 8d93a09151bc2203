"""Resume latency: ``api.init(resume="must")`` on a long run, through the first ``log``.

What it measures
    One run, ``run:bench/r1``, is written first with the store: a ``RunInitialized``
    (incarnation 1), ``N`` 4-metric ``StepLogged`` events for steps 0 .. N-1, and a
    ``RunExited(exit_code=143)`` (a preempted job), appended in batches of 1000 events
    built one batch at a time, through a store that keeps run heads (as ``api`` opens
    every store). By default the shared read model is then left at position 0: the run's
    whole history is *unfolded*, as after a crash nothing caught it up (issue 16's
    case; the bar is 50 ms). With ``--caught-up`` it is caught up once first, untimed
    (its time is reported), as after any earlier use of the store.

    Then a *fresh* Python process (imports done, untimed) times, with
    ``time.perf_counter``, from calling
    ``api.init(project="bench", id="r1", resume="must", store=path)`` to the first
    ``await run.log({...})`` returning: what a preempted training job pays, once it is
    started again, before its loop runs. ``init`` opens the store, reads the run's head
    (one row, whatever the read model's lag), appends the new incarnation's ``RunInitialized`` and starts
    the writer; the first ``log`` only buffers. The child reports the split (init, first
    log) and checks that ``run.resumed`` is true, that ``run.step`` is the step after
    the last one logged, and that the incarnation is the next one; it then finishes the
    run with exit code 143 (untimed; its time is reported), so every round resumes a run
    in the same kind of state. The bar is ``--bar-ms`` (default 50 ms).

    Each resume adds an incarnation and a step: round ``k`` resumes at step ``N + k - 1``
    with incarnation ``k + 1``. The script checks after the rounds that the read model
    is still where it was (init never folds the backlog).

Baseline, for scale, also in fresh processes
    stdlib ``sqlite3.connect(path)`` + one ``SELECT data FROM events WHERE position = ?``
    (by primary key: the run's last step), timed the same way: the least any read of
    this file costs in a new process. ``ratio`` = raw / store of the fastest round of
    each (a rate ratio, as in the other benchmarks: 1.0 would mean "as fast as a bare
    connect and select").

Before the measurements the database file is read once, untimed, so that they all find
it in the OS page cache.

Repeats: interleaved
    The log is written once; then the two fresh-process measurements run ``--repeat N``
    times (default 5), interleaved: raw, store, raw, store, ... For each side the script
    reports the min, median and max over the N runs (the min is the headline, because on
    a noisy machine interference only ever slows a run down; the bar is checked on the
    median and the max as well). Every sample is in the JSON line, with the wall time of
    each child process as seen by the parent (interpreter start-up and imports included)
    for context.

Run ``python benchmarks/bench_resume.py`` (1,000,000 steps, 5 rounds) or ``--events 5000``
for a smoke run. ``--resume-only PATH [--impl store|raw] --expect-step S`` runs one
measurement of an existing store (this is what the fresh processes run). The last line
of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

from _shared import catch_up, fresh_process, metrics, spread, warm_page_cache

import api
from eventstore import Event, RunExited, RunInitialized, StepLogged, default_codec, open_store
from projections import open_projector, run_heads

PROJECT = "bench"
RUN_ID = "r1"
STREAM = f"run:{PROJECT}/{RUN_ID}"
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a preempted job exits with


def batches(steps: int, batch: int) -> Iterator[list[Event]]:
    """``RunInitialized``, ``steps`` steps, ``RunExited(143)``, as lists of at most ``batch``."""
    total = steps + 2
    for start in range(0, total, batch):
        out: list[Event] = []
        for index in range(start, min(start + batch, total)):
            if index == 0:
                out.append(
                    RunInitialized(
                        project=PROJECT,
                        run_id=RUN_ID,
                        incarnation=1,
                        resumed=False,
                        starting_step=0,
                    )
                )
            elif index == total - 1:
                out.append(RunExited(incarnation=1, exit_code=EXIT_PREEMPTED))
            else:
                step = index - 1
                out.append(StepLogged(incarnation=1, step=step, metrics=metrics(step)))
        yield out


async def write_log(path: Path, steps: int, batch: int) -> float:
    """Append the run in batches; return events/s of the appends."""
    elapsed = 0.0
    async with open_store(path, inline=run_heads()) as store:
        for number, chunk in enumerate(batches(steps, batch)):
            began = perf_counter()
            await store.append(STREAM, chunk, "no_stream" if number == 0 else "any")
            elapsed += perf_counter() - began
    return (steps + 2) / elapsed


async def resume_store(path: Path) -> dict[str, Any]:
    """Resume the run and log once; the times of each part, in ms, and what init said."""
    first = metrics(0)
    began = perf_counter()
    run = await api.init(project=PROJECT, id=RUN_ID, resume="must", store=path)
    initialized = perf_counter()
    step, resumed, incarnation = run.step, run.resumed, run.incarnation
    await run.log(first)
    logged = perf_counter()
    await run.finish(EXIT_PREEMPTED)
    finished = perf_counter()
    return {
        "ms": (logged - began) * 1e3,
        "init_ms": (initialized - began) * 1e3,
        "first_log_ms": (logged - initialized) * 1e3,
        "finish_ms": (finished - logged) * 1e3,
        "step": step,
        "resumed": resumed,
        "incarnation": incarnation,
    }


def resume_raw(path: Path, position: int) -> dict[str, Any]:
    """``sqlite3.connect`` + one ``SELECT`` by primary key, in ms (closing not included)."""
    began = perf_counter()
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT data FROM events WHERE position = ?", (position,)).fetchone()
        answered = perf_counter()
    finally:
        conn.close()
    closed = perf_counter()
    if row is None:
        raise SystemExit(f"no event at position {position}")
    event = default_codec.decode(row[0])
    if not isinstance(event, StepLogged) or event.step != position - 2:
        raise SystemExit(f"position {position} holds {event!r}, not step {position - 2}")
    return {"ms": (answered - began) * 1e3, "close_ms": (closed - answered) * 1e3}


def resume_only(path: Path, impl: str, expect_step: int) -> dict[str, Any]:
    """One measurement in this process, as a dict of figures (printed as the JSON line)."""
    if impl == "store":
        figures = asyncio.run(resume_store(path))
    else:
        # The run's last step, N - 1, is at position N + 1 (after the RunInitialized).
        figures = resume_raw(path, expect_step + 1)
    rounded = {
        key: round(value, 3) if isinstance(value, float) else value
        for key, value in figures.items()
    }
    return {"bench": "resume-only", "impl": impl, **rounded}


def resume_in_fresh_process(path: Path, impl: str, expect_step: int) -> dict[str, Any]:
    """Run ``--resume-only`` in a new interpreter; its JSON figures and its wall time."""
    return fresh_process(
        __file__, "--resume-only", path, "--impl", impl, "--expect-step", expect_step
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="steps of the run")
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="rounds of (raw, store), interleaved, each in fresh processes; min, median, max",
    )
    parser.add_argument(
        "--bar-ms", type=float, default=50.0, help="the init + first log time to stay under"
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
        "--caught-up",
        action="store_true",
        help="catch the read model up before resuming (default: leave the whole run unfolded)",
    )
    parser.add_argument(
        "--resume-only",
        type=Path,
        metavar="PATH",
        help="only resume the run in the existing store at PATH and log once, in this process",
    )
    parser.add_argument(
        "--impl",
        choices=("store", "raw"),
        default="store",
        help="with --resume-only: through api.init, or raw sqlite3 connect + SELECT",
    )
    parser.add_argument(
        "--expect-step",
        type=int,
        default=None,
        help="with --resume-only: the step the resumed run must start at",
    )
    args = parser.parse_args()

    if args.resume_only is not None:
        if args.expect_step is None:
            parser.error("--resume-only needs --expect-step")
        print(json.dumps(resume_only(args.resume_only, args.impl, args.expect_step)))
        return
    if min(args.events, args.batch, args.repeat) < 1:
        parser.error("--events, --batch and --repeat must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="runlog-bench-resume-", dir=args.dir))
    try:
        run(args.events, args.batch, args.repeat, args.bar_ms, workdir, args.caught_up)
    finally:
        if args.keep:
            print(f"kept the database file in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def folded_position(path: Path) -> int:
    """Where the shared read model stands, without moving it."""
    async with open_store(path) as store, open_projector(store) as projector:
        return await projector.stored_position()


def run(steps: int, batch: int, repeat: int, bar_ms: float, workdir: Path, caught_up: bool) -> None:
    path = workdir / "store.db"
    print(
        f"resume: one run of {steps:,} steps (4 metrics each) then RunExited(143), written in "
        f"batches of {batch:,}, SQLite {sqlite3.sqlite_version}; api.init(resume='must') "
        f"through the first log; {repeat} rounds, interleaved (raw, store, ...), each in a "
        f"fresh process"
    )
    write_rate = asyncio.run(write_log(path, steps, batch))
    log_mb = path.stat().st_size / 1e6
    print(f"  wrote the log: {write_rate:,.0f} events/s (append only), file {log_mb:,.1f} MB")
    if caught_up:
        head, seconds = asyncio.run(catch_up(path))
        full_mb = path.stat().st_size / 1e6
        print(
            f"  caught the read model up once (untimed): {seconds:.2f} s, "
            f"{head / seconds:,.0f} events/s; file with the read model {full_mb:,.1f} MB"
        )
    else:
        head, seconds, full_mb = steps + 2, 0.0, log_mb
        print(
            f"  the read model is left at position {asyncio.run(folded_position(path))}: "
            f"{head:,} events unfolded"
        )
    folded = asyncio.run(folded_position(path))
    if caught_up and folded != steps + 2:
        raise SystemExit(f"the read model is at {folded}, not {steps + 2}")

    warm_page_cache(path)
    raw_runs: list[dict[str, Any]] = []
    store_runs: list[dict[str, Any]] = []
    for round_number in range(1, repeat + 1):
        raw_runs.append(resume_in_fresh_process(path, "raw", steps))
        expect_step = steps + round_number - 1
        figures = resume_in_fresh_process(path, "store", expect_step)
        store_runs.append(figures)
        wanted = {"step": expect_step, "resumed": True, "incarnation": round_number + 1}
        got = {key: figures[key] for key in wanted}
        if got != wanted:
            raise SystemExit(f"round {round_number}: the resumed run says {got}, not {wanted}")
        print(
            f"  round {round_number}/{repeat}: raw {raw_runs[-1]['ms']:.2f} ms, store "
            f"{figures['ms']:.2f} ms (init {figures['init_ms']:.2f}, first log "
            f"{figures['first_log_ms']:.3f}; finish {figures['finish_ms']:.2f}), step "
            f"{figures['step']:,}, incarnation {figures['incarnation']}"
        )
    if asyncio.run(folded_position(path)) != folded:
        raise SystemExit("init moved the read model: it folded the backlog")
    store = spread([figures["ms"] for figures in store_runs])
    raw = spread([figures["ms"] for figures in raw_runs])
    parts = {
        part: spread([figures[f"{part}_ms"] for figures in store_runs])
        for part in ("init", "first_log", "finish")
    }
    print(f"  {'(ms, each in a fresh process)':52}{'min':>9}{'median':>9}{'max':>9}")
    for label, figures in (
        ("raw sqlite3 connect + SELECT by primary key", raw),
        ("api.init(resume='must') + first await run.log", store),
        ("  of which init", parts["init"]),
        ("  of which the first log", parts["first_log"]),
        ("finish(143) (not in the figure above)", parts["finish"]),
    ):
        print(f"  {label:52}{figures['min']:>9.2f}{figures['median']:>9.2f}{figures['max']:>9.2f}")
    ratio = raw["min"] / store["min"]
    print(
        f"  ratio raw/store (fastest of {repeat}): {ratio:.3f}; bar {bar_ms:g} ms: median "
        f"{'met' if store['median'] < bar_ms else 'NOT met'}, max "
        f"{'met' if store['max'] < bar_ms else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "bench": "resume",
                "steps": steps,
                "events": head,
                "unfolded_events": head - folded,
                "repeat": repeat,
                "aggregate": f"min, median and max of {repeat}, interleaved, fresh processes",
                "log_file_mb": round(log_mb, 1),
                "file_with_read_model_mb": round(full_mb, 1),
                "write_events_per_s": round(write_rate),
                "catch_up_s": round(seconds, 3),
                "catch_up_events_per_s": round(head / seconds) if seconds else None,
                "store_ms": store["min"],
                "store_ms_median": store["median"],
                "store_ms_max": store["max"],
                "init_ms_median": parts["init"]["median"],
                "first_log_ms_median": parts["first_log"]["median"],
                "finish_ms_median": parts["finish"]["median"],
                "raw_ms": raw["min"],
                "raw_ms_median": raw["median"],
                "raw_ms_max": raw["max"],
                "ratio": round(ratio, 3),
                "bar_ms": bar_ms,
                "meets_bar_median": store["median"] < bar_ms,
                "meets_bar_max": store["max"] < bar_ms,
                "store_ms_samples": [figures["ms"] for figures in store_runs],
                "init_ms_samples": [figures["init_ms"] for figures in store_runs],
                "first_log_ms_samples": [figures["first_log_ms"] for figures in store_runs],
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
