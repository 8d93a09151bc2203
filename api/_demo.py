"""The demo behind ``runlog demo``: a preempted run resumed, told from the log.

At this stage runlog is its event store, so the demo writes the events a training
library will write (issue 4 replaces it with a real training script) and then replays
the log to show what can be derived from it alone.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from eventstore import (
    GENESIS_HASH,
    NO_STREAM,
    Event,
    EventStore,
    NewEvent,
    PreemptMarked,
    RunExited,
    RunInitialized,
    StepLogged,
    open_store,
)
from projections import open_projector

__all__ = ["DEFAULT_STORE", "run_demo"]

DEFAULT_STORE = Path("runlog") / "runlog.db"


def _steps(incarnation: int, start: int, stop: int) -> list[Event]:
    return [
        StepLogged(
            incarnation=incarnation,
            step=step,
            metrics={"loss": round(2.0 * math.exp(-step / 40), 4), "lr": 1e-3},
        )
        for step in range(start, stop)
    ]


async def run_demo(target: str | os.PathLike[str], say: Callable[[str], None] = print) -> str:
    """Write a preempted-then-resumed run to the store at ``target`` and replay it.

    Returns the run id it used.
    """
    run_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    stream = f"run:demo/{run_id}"
    host, pid = socket.gethostname(), os.getpid()
    async with open_store(target) as store:
        say(f"store: {store.url}")
        first = RunInitialized(
            project="demo",
            run_id=run_id,
            incarnation=1,
            resumed=False,
            starting_step=0,
            config={"lr": 1e-3, "epochs": 3},
            host=host,
            pid=pid,
        )
        await store.append(stream, [first], NO_STREAM)
        say(f"incarnation 1 starts run {run_id} and logs steps 0-59")
        for start in range(0, 60, 20):
            await store.append(stream, _steps(1, start, start + 20))
        say("SIGTERM arrives: mark preempting, exit 143")
        await store.append(
            stream, [PreemptMarked(incarnation=1), RunExited(incarnation=1, exit_code=143)]
        )

        last_step = await _last_step(store, stream)
        say(f"a new process resumes: the log says the last step was {last_step}")
        version = await store.stream_version(stream)
        resume = NewEvent(
            RunInitialized(
                project="demo",
                run_id=run_id,
                incarnation=2,
                resumed=True,
                starting_step=last_step + 1,
                resume="allow",
                host=host,
                pid=pid,
            )
        )
        await store.append(stream, [resume], version)
        # A retry of the same append (say, after a timeout) stores nothing twice.
        retried = await store.append(stream, [resume], version)
        say(
            f"incarnation 2 continues at step {last_step + 1} (a retried append was deduplicated: "
            f"{retried.deduplicated})"
        )
        await store.append(stream, _steps(2, last_step + 1, 100))
        await store.append(stream, [RunExited(incarnation=2, exit_code=0)])

        say("")
        say(f"replay of {stream}:")
        await _print_timeline(store, stream, say)
        async with open_projector(store) as projector:
            state = await projector.run("demo", run_id)
            assert state is not None
            check = await projector.check()
        say("")
        say(
            f"state folded from the log: {state.status}, incarnation {state.incarnation}, "
            f"{state.resumes} resume, last step {state.last_step}, loss {state.summary['loss']}"
        )
        say(f"read model equals a replay from position 0: {check.ok}")
        checked = await _check_chain(store)
        say(f"hash chain verified over all {checked} events in the store")
    return run_id


async def _last_step(store: EventStore, stream: str) -> int:
    last = -1
    async for record in store.read_stream(stream):
        if isinstance(record.event, StepLogged):
            last = max(last, record.event.step)
    return last


async def _print_timeline(store: EventStore, stream: str, say: Callable[[str], None]) -> None:
    steps: list[StepLogged] = []

    def flush_steps() -> None:
        if steps:
            say(
                f"  {'':>6}  StepLogged x{len(steps):<4} steps {steps[0].step}-{steps[-1].step}, "
                f"loss {steps[0].metrics['loss']} -> {steps[-1].metrics['loss']}"
            )
            steps.clear()

    async for record in store.read_stream(stream):
        event = record.event
        if isinstance(event, StepLogged):
            steps.append(event)
            continue
        flush_steps()
        detail = ""
        if isinstance(event, RunInitialized):
            detail = (
                f"incarnation {event.incarnation}, resumed={event.resumed}, "
                f"starting_step={event.starting_step}"
            )
        elif isinstance(event, RunExited):
            detail = f"exit code {event.exit_code}"
        say(f"  #{record.position:<5} {record.type:<15} {detail}".rstrip())
    flush_steps()


async def _check_chain(store: EventStore) -> int:
    previous, count = GENESIS_HASH, 0
    async for stored in store.read_stored():
        expected = stored.expected_hash(previous)
        if stored.hash != expected:
            raise SystemExit(f"hash chain broken at position {stored.position}")
        previous, count = stored.hash, count + 1
    return count
