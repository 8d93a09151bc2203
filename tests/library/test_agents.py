"""Agents: in-process and as child processes (contract §8, §9.2, §9.3)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import pytest

import api
from eventstore import RunClaimed, RunExited, StepLogged, open_store
from projections import RunStatus, SweepStatus, open_projector

SCRIPT = str(Path(__file__).parent.parent / "_sweep_trainer.py")
RUNLOG = str(Path(sys.executable).with_name("runlog"))
GRID = {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01]}}}
pytestmark = pytest.mark.slow


def agent_command(store: Path | str, sweep_id: str, mode: str, *options: str) -> list[str]:
    """``runlog agent`` running the sweep trainer in ``mode`` as its child."""
    return [
        RUNLOG,
        "agent",
        sweep_id,
        "--store",
        str(store),
        "--poll",
        "0.1",
        *options,
        "--",
        sys.executable,
        SCRIPT,
        mode,
    ]


async def states(store_path: Path, project: str = "p") -> dict[str, RunStatus]:
    async with open_store(store_path) as store, open_projector(store) as projector:
        return {r.run_id: r.status for r in await projector.runs(project)}


async def first_step_logged(store_path: Path) -> None:
    """Wait until the agent's child has logged a step (its run is running)."""
    async with open_store(store_path) as store, store.subscribe(poll_interval=0.05) as log:
        with anyio.fail_after(30):
            async for record in log:
                if isinstance(record.event, StepLogged):
                    return


async def first_exit(store_path: Path) -> None:
    """Wait until a run of the sweep has exited."""
    async with open_store(store_path) as store, store.subscribe(poll_interval=0.05) as log:
        with anyio.fail_after(30):
            async for record in log:
                if isinstance(record.event, RunExited):
                    return


async def test_the_in_process_agent_runs_the_function_for_each_grid_cell(
    root: Path, store_target: str
) -> None:
    store = store_target
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    seen: list[dict[str, object]] = []

    async def train() -> None:
        async with api.init() as run:
            seen.append(dict(run.config))
            await run.log({"loss": 1.0})

    assert await api.agent(sweep_id, train, store=store, poll_interval=0.05) == 2
    assert seen == [{"lr": 0.1}, {"lr": 0.01}]
    assert set((await states(store)).values()) == {RunStatus.FINISHED}
    async with open_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
    assert sweep is not None
    assert (sweep.status, sweep.finish_reason, sweep.agents) == (
        SweepStatus.FINISHED,
        "exhausted",
        {},
    )


async def test_count_stops_the_agent(root: Path, store_target: str) -> None:
    store = store_target
    sweep_id = await api.create_sweep(
        {**GRID, "method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}},
        project="p",
        store=store,
    )

    async def train() -> None:
        async with api.init():
            pass

    assert await api.agent(sweep_id, train, store=store, count=3) == 3


async def test_a_preempted_run_is_resumed_first_at_its_step_by_the_cli_agent(
    root: Path, store_target: str
) -> None:
    store = store_target
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    done = await anyio.run_process(
        [
            RUNLOG,
            "agent",
            sweep_id,
            "--store",
            str(store),
            "--poll",
            "0.1",
            "--count",
            "3",
            "--",
            sys.executable,
            SCRIPT,
            "preempt-once",
        ],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.decode().splitlines() if line.startswith("run ")]
    first, again, second = lines
    assert (again[1], again[2], again[3]) == (first[1], "2", "5")  # same run, incarnation 2, step 5
    assert second[1] != first[1]
    async with open_store(store) as opened:
        claims = [
            r.event
            for r in [r async for r in opened.read_stream(f"sweep:{sweep_id}")]
            if isinstance(r.event, RunClaimed)
        ]
        steps = [
            r.event.step
            async for r in opened.read_stream(f"run:p/{first[1]}")
            if isinstance(r.event, StepLogged)
        ]
    assert [(c.run_id, c.requeue) for c in claims][:2] == [(first[1], False), (first[1], True)]
    assert steps == list(range(10))  # no step lost or repeated across the requeue
    # The third run was preempted too and waits in the queue for the next agent.
    async with open_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
    assert sweep is not None
    assert sweep.queue == [second[1]]


async def test_cancel_kills_a_running_child_which_ends_killed(
    root: Path, store_target: str
) -> None:
    store = store_target
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    async with await anyio.open_process(agent_command(store, sweep_id, "long")) as agent:
        await first_step_logged(store)
        await api.cancel_sweep(sweep_id, store=store)
        with anyio.fail_after(15):  # bounded: the agent polls the sweep every second at most
            assert await agent.wait() == 0
    assert set((await states(store)).values()) == {RunStatus.KILLED}


async def preempted_by_a_forwarded_sigterm(
    store: str, mode: str
) -> tuple[str, dict[str, RunStatus]]:
    """A new grid sweep whose agent (forwarding signals) runs the trainer in ``mode`` and
    is sent SIGTERM once its child logged a step; the sweep id and the run statuses."""
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    async with await anyio.open_process(
        agent_command(store, sweep_id, mode, "--forward-signals")
    ) as agent:
        await first_step_logged(store)
        agent.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await agent.wait()
    return sweep_id, await states(store)


async def test_forwarded_sigterm_preempts_the_child_and_queues_its_run(
    root: Path, store_target: str
) -> None:
    store = store_target
    sweep_id, statuses = await preempted_by_a_forwarded_sigterm(store, "long")
    assert list(statuses.values()) == [RunStatus.PREEMPTED]
    async with open_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
    assert sweep is not None
    assert sweep.queue == list(statuses)  # requeued for the next agent, which asks no more


async def test_the_seed_handler_pattern_under_forwarded_signals_is_requeued_and_resumed(
    root: Path, store_target: str
) -> None:
    store = store_target
    sweep_id, statuses = await preempted_by_a_forwarded_sigterm(store, "seed-handler")
    assert list(statuses.values()) == [RunStatus.PREEMPTED]
    (run_id,) = statuses
    async with open_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
        run = await projector.run("p", run_id)
    assert sweep is not None
    assert sweep.queue == [run_id]
    assert run is not None
    assert run.exit_code == 143
    stopped_at = run.last_step
    assert stopped_at is not None
    # The next agent claims the queued run first and the script resumes it.
    done = await anyio.run_process(
        agent_command(store, sweep_id, "seed-handler", "--count", "1"), check=False
    )
    assert done.returncode == 0, done.stderr
    async with open_store(store) as opened, open_projector(opened) as projector:
        run = await projector.run("p", run_id)
        claims = [
            (r.event.run_id, r.event.requeue)
            async for r in opened.read_stream(f"sweep:{sweep_id}")
            if isinstance(r.event, RunClaimed)
        ]
        steps = [
            r.event.step
            async for r in opened.read_stream(f"run:p/{run_id}")
            if isinstance(r.event, StepLogged)
        ]
    assert claims == [(run_id, False), (run_id, True)]
    assert run is not None
    assert run.status is RunStatus.FINISHED
    assert run.incarnation == 2
    assert f"{run_id}.ckpt" in run.files  # the handler's checkpoint is kept with the run
    assert steps == list(range(stopped_at + 6))  # resumed right after, nothing lost or doubled


@pytest.mark.parametrize(
    ("command", "agent_exits"),
    [(api.pause_sweep, False), (api.stop_sweep, True)],
    ids=["pause", "stop"],
)
async def test_pause_and_stop_let_the_running_child_finish_and_start_nothing_new(
    root: Path, store_target: str, command: object, agent_exits: bool
) -> None:
    store = store_target
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    async with await anyio.open_process(agent_command(store, sweep_id, "short")) as agent:
        await first_step_logged(store)
        await command(sweep_id, store=store)  # type: ignore[operator]
        await first_exit(store)
        await anyio.sleep(0.5)  # several agent polls: it must not start the next cell
        assert list((await states(store)).values()) == [RunStatus.FINISHED]
        if agent_exits:
            with anyio.fail_after(15):
                assert await agent.wait() == 0
        else:
            await api.resume_sweep(sweep_id, store=store)  # resume restarts creation
            with anyio.fail_after(30):
                assert await agent.wait() == 0
            assert list((await states(store)).values()) == [RunStatus.FINISHED] * 2


async def test_a_killed_agent_leaves_its_childs_run_to_finish_not_in_limbo(
    root: Path, store_target: str
) -> None:
    store = store_target
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    async with await anyio.open_process(agent_command(store, sweep_id, "short")) as agent:
        await first_step_logged(store)
        agent.kill()  # SIGKILL: the agent dies; its child, in its own session, does not
        await agent.wait()
    await first_exit(store)
    assert list((await states(store)).values()) == [RunStatus.FINISHED]
