"""Exact resume under preemption: a deterministic training loop preempted (SIGTERM) and
killed (SIGKILL) at random points, many times, ends with exactly the history of an
uninterrupted run: no hole, no dropped or doubled step, no diverged value. Also: what a
run records is durable in the order it was called."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from eventstore import FileSaved, StepLogged, open_store
from projections import RunState, RunStatus, open_projector

from .. import _boundary_trainer as trainer

SCRIPT = str(Path(trainer.__file__))
pytestmark = pytest.mark.slow


def launch(
    api: str, store: Path, steps: int, every: int, grace: float = 10.0
) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, SCRIPT, api, str(store), "r1", str(steps), str(every), str(grace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("started"):
        _, err = child.communicate(timeout=60)
        raise AssertionError(f"the trainer did not start: {err}")
    return child


def ended(child: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    """Wait for ``child``; its exit code and what it printed on stderr."""
    _, err = child.communicate(timeout=timeout)
    return child.returncode, err


async def finished(store: Path) -> bool:
    async with open_store(store) as opened, open_projector(opened) as projector:
        state = await projector.run("p", "r1")
    return state is not None and state.status is RunStatus.FINISHED


async def history(store: Path) -> list[tuple[int, dict[str, object]]]:
    async with open_store(store) as opened:
        return [
            (r.event.step, r.event.metrics)
            async for r in opened.read_stream("run:p/r1")
            if isinstance(r.event, StepLogged)
        ]


@pytest.mark.parametrize("api", ["sync", "async"])
def test_random_preemptions_and_kills_end_with_the_uninterrupted_history(
    tmp_path: Path, api: str
) -> None:
    steps, every = 400, 40
    store = tmp_path / "store.db"
    chance = random.Random(f"boundary-{api}")
    interruptions = {"SIGTERM": 0, "SIGKILL": 0}
    for _ in range(40):
        child = launch(api, store, steps, every)
        time.sleep(chance.uniform(0.02, 0.3))
        kill = chance.random() < 0.3
        child.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        code, err = ended(child)
        if code == 0 or (code == -signal.SIGTERM and asyncio.run(finished(store))):
            code = 0
            break  # it finished before the signal (or the signal met the exiting interpreter)
        assert code == (-signal.SIGKILL if kill else 128 + signal.SIGTERM), err
        interruptions["SIGKILL" if kill else "SIGTERM"] += 1
    if code != 0:
        code, err = ended(launch(api, store, steps, every))  # let it finish
        assert code == 0, err
    assert interruptions["SIGTERM"] >= 3, interruptions  # the seed makes this many happen
    rows = asyncio.run(history(store))
    assert [step for step, _ in rows] == list(range(steps))  # no hole, nothing twice
    assert dict(rows) == trainer.reference(steps)  # nothing diverged
    assert asyncio.run(finished(store))


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_loop_that_does_not_log_in_time_leaves_after_the_grace_period(
    tmp_path: Path, api: str
) -> None:
    store = tmp_path / "store.db"
    child = launch(api, store, 0, 1, grace=0.5)
    child.send_signal(signal.SIGTERM)
    code, err = ended(child, 60)
    assert code == 128 + signal.SIGTERM, err

    async def recorded() -> tuple[RunState | None, list[FileSaved]]:
        async with open_store(store) as opened, open_projector(opened) as projector:
            events = [r.event async for r in opened.read_stream("run:p/r1")]
            return await projector.run("p", "r1"), [e for e in events if isinstance(e, FileSaved)]

    state, saved = asyncio.run(recorded())
    assert state is not None
    assert (state.status, state.exit_code) == (RunStatus.PREEMPTED, 143)
    assert [f.name for f in saved] == ["ckpt.json"]  # the checkpoint callback still ran


DURABLE_ORDER = {
    "sync": """
import os, signal, sys
from api import sync
run = sync.init(project="p", id="r1", store=sys.argv[1])
for s in range(200):
    run.log({"loss": 1.0}, step=s)
open(sys.argv[2], "w").write("weights after step 199")
run.save(sys.argv[2])
os.kill(os.getpid(), signal.SIGKILL)
""",
    "async": """
import asyncio, os, signal, sys
import api
async def main():
    run = await api.init(project="p", id="r1", store=sys.argv[1])
    for s in range(200):
        await run.log({"loss": 1.0}, step=s)
    open(sys.argv[2], "w").write("weights after step 199")
    await run.save(sys.argv[2])
    os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(main())
""",
}


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_file_saved_after_a_step_is_never_durable_before_that_step(
    tmp_path: Path, api: str
) -> None:
    store, checkpoint = tmp_path / "store.db", tmp_path / "ckpt.txt"
    done = await anyio.run_process(
        [sys.executable, "-c", DURABLE_ORDER[api], str(store), str(checkpoint)], check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    async with open_store(store) as opened:
        events = [r.event async for r in opened.read_stream("run:p/r1")]
    kinds = [type(e) for e in events]
    assert FileSaved in kinds
    before = [e.step for e in events[: kinds.index(FileSaved)] if isinstance(e, StepLogged)]
    assert before == list(range(200))  # step 199 is stored, and stored first
