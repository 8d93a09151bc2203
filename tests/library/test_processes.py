"""The library against real OS processes: kills, signals, two writers, exit paths."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from eventstore import RunExited, StepLogged, open_store
from projections import RunState, RunStatus, open_projector

from ..conformance.test_multiprocess import Lines

TRAINER = str(Path(__file__).parent.parent / "_trainer.py")
pytestmark = pytest.mark.slow


async def spawn(mode: str, store: Path, run_id: str = "r1", marker: Path | None = None) -> Process:
    args = [sys.executable, TRAINER, mode, str(store), run_id]
    if marker is not None:
        args.append(str(marker))
    return await anyio.open_process(args)


async def state_of(store: Path, run_id: str = "r1") -> RunState:
    async with open_store(store) as opened, open_projector(opened) as projector:
        state = await projector.run("p", run_id)
    assert state is not None
    return state


async def steps_of(store: Path, run_id: str = "r1") -> list[int]:
    async with open_store(store) as opened:
        return [
            r.event.step
            async for r in opened.read_stream(f"run:p/{run_id}")
            if isinstance(r.event, StepLogged)
        ]


async def wait_for(lines: Lines, prefix: str) -> str:
    with anyio.fail_after(60):
        while True:
            line = await lines.next()
            if line.startswith(prefix):
                return line


async def test_sigkill_after_flush_resumes_at_the_last_flushed_step_plus_one(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store.db"
    async with await spawn("flushing", store) as child:
        assert child.stdout is not None
        lines = Lines(child.stdout)
        flushed = -1
        while flushed < 40:
            flushed = int((await wait_for(lines, "flushed")).split()[1])
        child.kill()  # SIGKILL: nothing runs in the child any more
        await child.wait()
    logged = await steps_of(store)
    assert logged[: flushed + 1] == list(range(flushed + 1))  # nothing flushed is missing
    assert logged == list(range(len(logged)))  # and nothing is duplicated or out of order
    async with await spawn("flushing", store) as child:
        assert child.stdout is not None
        started = int((await wait_for(Lines(child.stdout), "started")).split()[1])
        child.kill()
        await child.wait()
    assert started == len(logged)  # the resume continues right after the last logged step
    assert (await state_of(store)).incarnation == 2


async def test_sigterm_with_handle_preemption_ends_preempted(tmp_path: Path) -> None:
    store, marker = tmp_path / "store.db", tmp_path / "checkpoint.txt"
    async with await spawn("preemptible", store, marker=marker) as child:
        assert child.stdout is not None
        await wait_for(Lines(child.stdout), "step")
        child.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            code = await child.wait()
    assert code == 128 + signal.SIGTERM
    state = await state_of(store)
    assert (state.status, state.exit_code, state.preempting) == (RunStatus.PREEMPTED, 143, True)
    assert marker.read_text().startswith("checkpoint at step")
    assert marker.name in state.files  # the checkpoint was saved with the run
    checkpoint_step = int(marker.read_text().split()[-1])
    logged = await steps_of(store)
    assert logged == list(range(len(logged)))
    assert len(logged) >= checkpoint_step  # every step logged before the signal was written


async def test_an_older_process_is_fenced_and_steps_never_interleave(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    async with await spawn("contender", store) as old:
        assert old.stdout is not None
        old_lines = Lines(old.stdout)
        await wait_for(old_lines, "started")
        await anyio.sleep(0.3)
        async with await spawn("contender", store) as new:
            assert new.stdout is not None
            assert (await wait_for(Lines(new.stdout), "started")).split()[1] == "2"
            await wait_for(old_lines, "fenced")
            with anyio.fail_after(30):
                assert await old.wait() == 3
            await anyio.sleep(0.3)
            new.kill()
            await new.wait()
    async with open_store(store) as opened:
        incarnations = [
            r.event.incarnation
            async for r in opened.read_stream("run:p/r1")
            if isinstance(r.event, StepLogged)
        ]
    first_new = incarnations.index(2)
    assert set(incarnations[:first_new]) == {1}
    assert set(incarnations[first_new:]) == {2}  # no step of incarnation 1 after the takeover


@pytest.mark.parametrize(
    ("mode", "process_code", "code", "status"),
    [
        ("exit-0", 0, 0, RunStatus.FINISHED),
        ("exit-7", 0, 7, RunStatus.FAILED),
        ("raise", 1, 1, RunStatus.FAILED),
        ("interrupt", -signal.SIGINT, 255, RunStatus.KILLED),  # Python dies by SIGINT
        ("sys-exit-5", 5, 5, RunStatus.FAILED),
        ("sync-atexit", 0, 0, RunStatus.FINISHED),
    ],
)
async def test_how_a_script_ends_decides_the_runs_state(
    tmp_path: Path, mode: str, process_code: int, code: int, status: RunStatus
) -> None:
    store = tmp_path / "store.db"
    done = await anyio.run_process(
        [sys.executable, TRAINER, mode, str(store), "r1"], check=False, stderr=subprocess.PIPE
    )
    assert done.returncode == process_code, done.stderr
    state = await state_of(store)
    assert (state.status, state.exit_code) == (status, code)
    assert await steps_of(store) == [0, 1, 2, 3, 4]
    async with open_store(store) as opened:
        exits = [r.event async for r in opened.read_all() if isinstance(r.event, RunExited)]
    assert len(exits) == 1
    assert exits[0].interrupted is (mode == "interrupt")


async def test_the_blocking_facade_handles_sigterm_too(tmp_path: Path) -> None:
    store, marker = tmp_path / "store.db", tmp_path / "checkpoint.txt"
    async with await spawn("sync-preemptible", store, marker=marker) as child:
        assert child.stdout is not None
        await wait_for(Lines(child.stdout), "step")
        child.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            code = await child.wait()
    assert code == 143
    state = await state_of(store)
    assert (state.status, state.exit_code) == (RunStatus.PREEMPTED, 143)
    assert marker.exists()
    logged = await steps_of(store)
    assert logged == list(range(len(logged)))
    assert len(logged) >= 50
