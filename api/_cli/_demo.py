"""The demo behind ``runlog demo``: a training script preempted and resumed, told from the log.

It runs ``examples/train.py`` as a real process, sends it SIGTERM mid-training, starts
it again with the same id, and then prints what the log says happened: the timeline of
the run's events and its state, folded from the log alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from eventstore import (
    EventStore,
    FileSaved,
    PreemptMarked,
    RunExited,
    RunInitialized,
    RunLogError,
    StepLogged,
    StoreUnavailable,
    open_store,
    run_stream,
)
from projections import open_projector

from .._library._ids import generate_id

__all__ = ["find_script", "run_demo"]

_STEPS = 200
_PREEMPT_AFTER = 80


def find_script(script: str | os.PathLike[str] | None = None) -> Path:
    """The training script: ``script``, else ``examples/train.py`` of this checkout."""
    if script is not None:
        candidates = [Path(script)]
    else:
        checkout = Path(__file__).resolve().parents[2]  # api/_cli/_demo.py -> the checkout
        candidates = [checkout / "examples" / "train.py", Path("examples") / "train.py"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise StoreUnavailable(
        "the demo runs examples/train.py of a runlog checkout; run it from the checkout's "
        "root, or pass --script PATH"
    )


async def run_demo(
    target: str | os.PathLike[str],
    say: Callable[[str], None] = print,
    script: str | os.PathLike[str] | None = None,
) -> str:
    """Run the preemption story against the store at ``target``; return the run id."""
    trainer = find_script(script)
    run_id = generate_id()
    store = os.fspath(target)
    async with open_store(store):  # refuse a foreign file before starting anything
        pass
    command = [
        sys.executable,
        str(trainer),
        "--id",
        run_id,
        "--steps",
        str(_STEPS),
        "--store",
        store,
    ]

    say(f"1. start {trainer.name} as run {run_id} (store {store})")
    async with await anyio.open_process([*command, "--delay", "0.01"]) as first:
        assert first.stdout is not None
        lines = BufferedByteReceiveStream(first.stdout)
        with anyio.fail_after(120):
            while True:
                line = (await lines.receive_until(b"\n", 1 << 16)).decode()
                if line.startswith(f"step {_PREEMPT_AFTER}"):
                    break
        say(f"   it logged up to {line.split(' loss')[0]}; the platform preempts it: SIGTERM")
        first.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            code = await first.wait()
    say(
        "   it marked itself preempting at once, left at its next step boundary, saved its "
        f"checkpoint there and exited with {code}"
    )

    async with open_store(store) as opened, open_projector(opened) as projector:
        state = await projector.run("demo", run_id)
        assert state is not None
        say(f"   the log says: {state.status}, last step {state.last_step}")

    say('2. start it again with the same id (resume="allow")')
    done = await anyio.run_process(command, check=False)
    output = done.stdout.decode().splitlines()
    say(f"   {output[0]}")
    say(f"   {output[-1]} (exit {done.returncode})")

    async with open_store(store) as opened, open_projector(opened) as projector:
        say("")
        say(f"3. the run's timeline, replayed from the log (run:demo/{run_id}):")
        await _timeline(opened, run_stream("demo", run_id), say)
        state = await projector.run("demo", run_id)
        check = await projector.check()
    assert state is not None
    say("")
    say(
        f"state folded from the log: {state.status}, incarnation {state.incarnation}, "
        f"{state.resumes} resume, last step {state.last_step}, loss {state.summary['loss']:.4f}"
    )
    say(f"read model equals a replay from position 0: {check.ok}")
    say("")
    await _sweep_story(trainer, store, say)
    from .._audit._verify import verify

    report = await verify(store=store)
    say(
        f"7. runlog verify: {report.log.events} events, hash chain and positions intact, "
        f"read models equal the replay: {'ok' if report.ok else 'FAILED'}"
    )
    runlog = runlog_command()
    say(f"   {runlog} show demo/{run_id}, {runlog} history demo/{run_id} tell the rest")
    return run_id


def runlog_command() -> str:
    """How to type this ``runlog`` in a shell: ``runlog`` when it is the one on PATH,
    else its path (``.venv/bin/runlog`` right after the README's install command)."""
    beside = Path(sys.executable).parent / "runlog"
    if not beside.exists():
        return f"{sys.executable} -m api"
    found = shutil.which("runlog")
    if found is not None and Path(found).resolve() == beside.resolve():
        return "runlog"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


_AGENT_PATIENCE_S = 300


async def _sweep_story(trainer: Path, store: str, say: Callable[[str], None]) -> None:
    """A sweep whose first run is preempted, requeued, and resumed first by the next agent."""
    from .._audit._explain import explain
    from .._sweeping._sweeps import create_sweep

    sweep_id = await create_sweep(
        {"method": "grid", "parameters": {"lr": {"values": [0.05, 0.1, 0.2]}}},
        project="demo",
        store=store,
    )
    runlog = [sys.executable, "-m", "api", "agent", sweep_id, "--store", store, "--poll", "0.1"]
    command = ["--", sys.executable, str(trainer), "--steps", str(_STEPS // 2), "--store", store]
    say(f"4. a grid sweep {sweep_id} over lr in [0.05, 0.1, 0.2]; agent A starts its first run")
    async with await anyio.open_process(
        [*runlog, "--forward-signals", *command, "--delay", "0.01"]
    ) as agent_a:
        assert agent_a.stdout is not None
        lines = BufferedByteReceiveStream(agent_a.stdout)
        with anyio.fail_after(120):
            while True:
                line = (await lines.receive_until(b"\n", 1 << 16)).decode()
                if line.startswith("started run"):
                    preempted = line.split()[2]
                if line.startswith("step 40"):
                    break
        say(f"   run {preempted} reached step 40; agent A's node is preempted: SIGTERM")
        agent_a.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            await agent_a.wait()
    say("   the signal reached the run, which marked itself preempting and exited 143")
    say("5. agent B starts: it takes the queue first, then the rest of the grid")
    try:
        with anyio.fail_after(_AGENT_PATIENCE_S):
            done = await anyio.run_process([*runlog, *command], check=False)
    except TimeoutError:
        raise RunLogError(
            f"agent B did not finish the sweep within {_AGENT_PATIENCE_S} s; see "
            f"`{runlog_command()} sweep show {sweep_id} --store {store}` and "
            f"`{runlog_command()} runs`"
        ) from None
    for line in done.stdout.decode().splitlines():
        if line.startswith(("started run", "resumed run", "finished at")):
            say(f"   {line}")
    async with open_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
    assert sweep is not None
    say(f"   sweep {sweep_id}: {sweep.status} ({sweep.finish_reason}), runs {sweep.counts}")
    say(f"6. runlog explain demo/{preempted}:")
    for line in await explain("demo", preempted, store=store):
        say(f"   {line}")


async def _timeline(store: EventStore, stream: str, say: Callable[[str], None]) -> None:
    steps: list[int] = []

    def flush_steps() -> None:
        if steps:
            say(f"  {'':>6}  {'StepLogged':<15} x{len(steps)} (steps {steps[0]}-{steps[-1]})")
            steps.clear()

    async for record in store.read_stream(stream):
        event = record.event
        if isinstance(event, StepLogged):
            steps.append(event.step)
            continue
        flush_steps()
        detail = ""
        if isinstance(event, RunInitialized):
            detail = (
                f"incarnation {event.incarnation}, resumed={event.resumed}, "
                f"starting_step={event.starting_step}, pid {event.pid}"
            )
        elif isinstance(event, RunExited):
            detail = f"exit code {event.exit_code}"
        elif isinstance(event, FileSaved):
            detail = f"{event.name}, {event.size} bytes"
        elif isinstance(event, PreemptMarked):
            detail = f"incarnation {event.incarnation}"
        say(f"  #{record.position:<5} {record.type:<15} {detail}".rstrip())
    flush_steps()
