"""The agent protocol (contract §9.2, §9.3): heartbeats with live runs, the signal
cascade, and sweep ids in W&B's ``entity/project/ID`` form."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

import api
from eventstore import AgentHeartbeat, RunExited, RunInitialized, StepLogged, open_store
from projections import RunStatus

from .test_agents import RUNLOG, agent_command, first_step_logged, states

pytestmark = pytest.mark.slow
GRID = {"method": "grid", "parameters": {"lr": {"values": [0.1]}}}


async def a_step_after(store_target: str, position: int) -> int:
    """Wait for a step logged after ``position``; return the position of that step."""
    async with (
        open_store(store_target) as store,
        store.subscribe(position, poll_interval=0.05) as log,
    ):
        with anyio.fail_after(30):
            async for record in log:
                if isinstance(record.event, StepLogged) and record.position > position:
                    return record.position
    raise AssertionError("unreachable")  # pragma: no cover


async def child_pid(store_target: str, run_id: str) -> int:
    async with open_store(store_target) as store:
        async for record in store.read_stream(f"run:p/{run_id}"):
            if isinstance(record.event, RunInitialized):
                return record.event.pid
    raise AssertionError(f"run {run_id} never started")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def runlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNLOG, *args], capture_output=True, text=True, timeout=60)


async def test_an_agent_heartbeats_its_live_run_and_sweep_show_lists_it(
    root: Path, store_target: str
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store_target)
    async with await anyio.open_process(agent_command(store_target, sweep_id, "long")) as agent:
        await first_step_logged(store_target)
        [run_id] = await states(store_target)
        shown = runlog("sweep", "show", sweep_id, "--store", store_target, "--json")
        text = runlog("sweep", "show", sweep_id, "--store", store_target)
        await api.cancel_sweep(sweep_id, store=store_target)
        with anyio.fail_after(30):
            await agent.wait()
    [(agent_id, info)] = json.loads(shown.stdout)["agents"].items()
    assert info["run_ids"] == [run_id]
    assert f"{agent_id}  live" in text.stdout
    async with open_store(store_target) as store:
        beats = [
            r.event.run_ids
            async for r in store.read_stream(f"sweep:{sweep_id}")
            if isinstance(r.event, AgentHeartbeat)
        ]
    assert [run_id] in beats
    assert beats[-1] == []  # the run ended: the last beat says so


async def test_sweep_ids_are_accepted_in_wandbs_entity_project_id_form(
    root: Path, store_target: str
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store_target)
    await api.register_agent(sweep_id, store=store_target)  # RUNNING: it can be paused
    paused = runlog("sweep", "--pause", f"me/p/{sweep_id}", "--store", store_target)
    assert paused.returncode == 0, paused.stderr
    assert "PAUSED" in paused.stdout.upper()
    shown = runlog("sweep", "show", f"p/{sweep_id}", "--store", store_target)
    assert shown.returncode == 0, shown.stderr
    await api.resume_sweep(sweep_id, store=store_target)
    seen: list[str] = []

    async def train() -> None:
        async with api.init() as run:
            seen.append(run.id)

    assert await api.agent(f"me/p/{sweep_id}", train, store=store_target, poll_interval=0.05) == 1
    assert len(seen) == 1


async def test_a_sweep_id_with_another_project_is_refused_naming_it(
    root: Path, store_target: str
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store_target)
    done = runlog("agent", f"me/q/{sweep_id}", "--store", store_target, "--", "true")
    assert done.returncode != 0
    assert f"sweep {sweep_id!r} belongs to project 'p', not 'q'" in done.stderr
    assert await states(store_target) == {}  # nothing claimed


async def send_and_see_it_live_on(
    agent: Process, store_target: str, position: int, signum: signal.Signals
) -> int:
    agent.send_signal(signum)
    return await a_step_after(store_target, position)


async def test_the_third_shutdown_signal_sigkills_a_child_that_ignores_the_first_two(
    root: Path, store_target: str
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store_target)
    command = agent_command(store_target, sweep_id, "stubborn", "--forward-signals")
    async with await anyio.open_process(command) as agent:
        await first_step_logged(store_target)
        [run_id] = await states(store_target)
        pid = await child_pid(store_target, run_id)
        # 1st: passed on (ignored) and the agent waits; 2nd: SIGTERM (ignored) and waits.
        position = await send_and_see_it_live_on(agent, store_target, 0, signal.SIGTERM)
        position = await send_and_see_it_live_on(agent, store_target, position, signal.SIGHUP)
        await a_step_after(store_target, position)
        assert agent.returncode is None
        agent.send_signal(signal.SIGTERM)  # 3rd: SIGKILL
        with anyio.fail_after(30):
            assert await agent.wait() == 0
    assert gone(pid)
    async with open_store(store_target) as store:
        exits = [
            r async for r in store.read_stream(f"run:p/{run_id}") if isinstance(r.event, RunExited)
        ]
    assert exits == []  # SIGKILL: the run's end is the watchdog's to decide
    assert await states(store_target) == {run_id: RunStatus.RUNNING}


async def test_term_timeout_sigkills_a_child_still_alive_after_a_signal(
    root: Path, store_target: str
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store_target)
    command = agent_command(
        store_target, sweep_id, "stubborn", "--forward-signals", "--term-timeout", "1"
    )
    async with await anyio.open_process(command) as agent:
        await first_step_logged(store_target)
        [run_id] = await states(store_target)
        pid = await child_pid(store_target, run_id)
        agent.send_signal(signal.SIGTERM)  # one signal only: the timeout does the rest
        with anyio.fail_after(30):
            assert await agent.wait() == 0
    assert gone(pid)


def test_term_timeout_without_forward_signals_is_refused(root: Path, store_target: str) -> None:
    done = runlog("agent", "any", "--store", store_target, "--term-timeout", "5", "--", "true")
    assert done.returncode != 0
    assert "add --forward-signals" in done.stderr


def test_a_sweep_path_with_too_many_parts_is_refused() -> None:
    from api._sweeping._sweep_path import split_sweep_path

    assert split_sweep_path("e/p/abc") == ("p", "abc")
    assert split_sweep_path("abc") == (None, "abc")
    with pytest.raises(api.SweepNotFound, match="write ID, project/ID or entity/project/ID"):
        split_sweep_path("a/b/c/d")
