"""Agents act on stop commands: Hyperband's and a single-run stop (contract §9.2, §9.6)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

import api
from eventstore import (
    RunExited,
    RunInitialized,
    RunKilled,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    open_store,
)
from projections import RunStatus, open_projector

from .test_agent_program import TRAINER
from .test_agents import RUNLOG, agent_command, first_step_logged, states

pytestmark = pytest.mark.slow


async def finished_good_run(store_target: str, sweep_id: str) -> None:
    """Grid cell 0 ran before the agent came: 10 values of 0.1, finished."""
    async with open_store(store_target) as store:
        await store.append(
            f"sweep:{sweep_id}", [RunScheduled(run_id="good", params={"lr": 0.1}, index=0)]
        )
        await store.append(
            "run:p/good",
            [
                RunInitialized(
                    project="p",
                    run_id="good",
                    incarnation=1,
                    resumed=False,
                    starting_step=0,
                    sweep_id=sweep_id,
                ),
                *[StepLogged(incarnation=1, step=s, metrics={"loss": 0.1}) for s in range(10)],
                RunExited(incarnation=1, exit_code=0),
            ],
        )


async def test_hyperband_stops_an_agents_child_which_ends_killed_not_queued(
    root: Path, store_target: str
) -> None:
    config = {
        "method": "grid",
        "metric": {"name": "loss"},
        "early_terminate": {"type": "hyperband", "min_iter": 2},
        "program": TRAINER,
        "parameters": {
            "lr": {"values": [0.1, 0.5]},
            "epochs": {"value": 1000},
            "layers": {"value": [1]},
            "pause": {"value": 0.3},
        },
    }
    sweep_id = await api.create_sweep(config, project="p", store=store_target)
    await finished_good_run(store_target, sweep_id)
    # The agent's child logs a loss near 500: at band 2 (or 6) it is worse than 0.1.
    # Later bands hold only the child itself, so the stop must come before band 18.
    command = [RUNLOG, "agent", sweep_id, "--store", store_target, "--poll", "0.1"]
    with anyio.fail_after(60):
        done = await anyio.run_process(command, check=False)
    assert done.returncode == 0, done.stderr.decode()
    statuses = await states(store_target)
    [child] = [run_id for run_id in statuses if run_id != "good"]
    assert statuses == {"good": RunStatus.FINISHED, child: RunStatus.KILLED}
    async with open_store(store_target) as store, open_projector(store) as projector:
        [stop] = [
            r.event
            async for r in store.read_stream(f"run:p/{child}")
            if isinstance(r.event, RunStopRequested)
        ]
        sweep = await projector.sweep(sweep_id)
    assert (stop.rule, stop.threshold) == ("hyperband", 0.1)
    assert stop.band in (2, 6)
    assert stop.value is not None
    assert stop.value > 400
    assert sweep is not None
    assert sweep.queue == []  # handle_preemption exited 143, yet nothing is requeued
    lines = await api.explain("p", child, store=store_target)
    assert f"at band {stop.band} its {stop.value:.6g} is worse than the threshold 0.1" in lines[-1]


async def test_a_run_that_ignores_sigterm_is_killed_after_the_kill_delay(
    root: Path, store_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_AGENT_KILL_DELAY", "1")  # W&B's name works too
    grid = {"method": "grid", "parameters": {"lr": {"values": [0.1]}}}
    sweep_id = await api.create_sweep(grid, project="p", store=store_target)
    async with await anyio.open_process(
        agent_command(store_target, sweep_id, "stubborn"), env=dict(os.environ)
    ) as agent:
        await first_step_logged(store_target)
        [run_id] = await states(store_target)
        stop = await anyio.run_process(
            [RUNLOG, "sweep", "stop-run", f"p/{run_id}", "--store", store_target], check=False
        )
        assert stop.returncode == 0, stop.stderr.decode()
        with anyio.fail_after(60):
            assert await agent.wait() == 0
    assert await states(store_target) == {run_id: RunStatus.KILLED}
    async with open_store(store_target) as store:
        events = [r.event async for r in store.read_stream(f"run:p/{run_id}")]
    assert not any(isinstance(e, RunExited) for e in events)  # SIGKILL: no exit written
    [killed] = [e for e in events if isinstance(e, RunKilled)]
    assert killed.reason == "stopped on request"


async def test_stopping_a_run_that_is_not_running_is_refused(root: Path, store_target: str) -> None:
    grid = {"method": "grid", "parameters": {"lr": {"values": [0.1]}}}
    sweep_id = await api.create_sweep(grid, project="p", store=store_target)
    await finished_good_run(store_target, sweep_id)
    with pytest.raises(api.SweepError, match="is finished; only a running run can be stopped"):
        await api.stop_run("p", "good", store=store_target)
    done = await anyio.run_process(
        [RUNLOG, "sweep", "stop-run", "p/nobody", "--store", store_target], check=False
    )
    assert done.returncode != 0
    assert "never mentions run p/nobody" in done.stderr.decode()


def test_the_kill_delay_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    from api._sweeping._agent import kill_delay

    monkeypatch.setenv("RUNLOG_AGENT_KILL_DELAY", "soon")
    with pytest.raises(api.ConfigurationError, match="RUNLOG_AGENT_KILL_DELAY must be"):
        kill_delay()
    assert sys.modules["api._sweeping._agent"] is not None
