"""``runlog agent SWEEP`` without a command runs the config's program (contract §9.5)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import anyio
import pytest
import yaml

import api
from eventstore import RunInitialized, StepLogged, open_store
from projections import RunStatus, open_projector

from .test_agents import RUNLOG, SCRIPT, first_step_logged, states

TRAINER = str(Path(__file__).parent.parent / "_argparse_trainer.py")
pytestmark = pytest.mark.slow


def write_config(root: Path, **config: object) -> Path:
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump({"program": TRAINER, **config}, sort_keys=False))
    return path


def agent(store: str, sweep_id: str, *options: str) -> list[str]:
    return [RUNLOG, "agent", sweep_id, "--store", store, "--poll", "0.1", *options]


def printed(output: bytes, tag: str) -> list[list[str]]:
    return [
        line.split(" ", 1)[1:]
        for line in output.decode().splitlines()
        if line.startswith(tag + " ")
    ]


async def test_the_agent_runs_the_program_with_its_parameters_as_flags(
    root: Path, store_target: str
) -> None:
    config = write_config(
        root,
        method="grid",
        parameters={
            "lr": {"values": [0.1, 1e-05]},
            "epochs": {"value": 3},
            "augment": {"value": True},
            "layers": {"value": [4, 2]},
        },
    )
    sweep_id = await api.create_sweep(config, project="p", store=store_target)
    done = await anyio.run_process(agent(store_target, sweep_id), check=False)
    assert done.returncode == 0, done.stderr.decode()
    argvs = [sorted(json.loads(line[0])) for line in printed(done.stdout, "argv")]
    assert argvs == [
        ["--augment=True", "--epochs=3", "--layers=[4, 2]", "--lr=0.1"],
        ["--augment=True", "--epochs=3", "--layers=[4, 2]", "--lr=1e-05"],
    ]
    assert list((await states(store_target)).values()) == [RunStatus.FINISHED] * 2
    async with open_store(store_target) as opened, open_projector(opened) as projector:
        runs = await projector.runs("p")
    assert sorted(run.config["lr"] for run in runs) == [1e-05, 0.1]
    assert {run.steps for run in runs} == {3}


async def test_a_preempted_program_run_is_requeued_and_continues_its_steps(
    root: Path, store_target: str
) -> None:
    config = write_config(
        root,
        method="grid",
        command=["${env}", "${interpreter}", "${program}", "${args}"],
        parameters={"lr": {"value": 0.5}, "epochs": {"value": 40}, "pause": {"value": 0.05}},
    )
    sweep_id = await api.create_sweep(config, project="p", store=store_target)
    async with await anyio.open_process(
        agent(store_target, sweep_id, "--forward-signals")
    ) as first:
        await first_step_logged(store_target)
        first.send_signal(signal.SIGTERM)  # the platform preempts the agent's job
        with anyio.fail_after(30):
            await first.wait()
    [(run_id, status)] = (await states(store_target)).items()
    assert status is RunStatus.PREEMPTED
    done = await anyio.run_process(agent(store_target, sweep_id), check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert (await states(store_target)) == {run_id: RunStatus.FINISHED}
    async with open_store(store_target) as opened:
        records = [r.event async for r in opened.read_stream(f"run:p/{run_id}")]
    starts = [e for e in records if isinstance(e, RunInitialized)]
    steps = [e.step for e in records if isinstance(e, StepLogged)]
    assert [s.incarnation for s in starts] == [1, 2]
    assert 0 < starts[1].starting_step < 40  # resumed mid-way, not from 0
    assert steps == list(range(40))  # continued: no step lost or repeated
    [argv] = [json.loads(line[0]) for line in printed(done.stdout, "argv")]
    assert sorted(argv) == ["--epochs=40", "--lr=0.5", "--pause=0.05"]


async def test_a_command_after_the_separator_wins_over_the_program(
    root: Path, store_target: str
) -> None:
    config = write_config(root, method="grid", parameters={"lr": {"value": 0.1}})
    sweep_id = await api.create_sweep(config, project="p", store=store_target)
    done = await anyio.run_process(
        [*agent(store_target, sweep_id), "--", sys.executable, SCRIPT, "short"], check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert printed(done.stdout, "argv") == []  # the sweep trainer ran, not the program
    assert list((await states(store_target)).values()) == [RunStatus.FINISHED]


async def test_an_agent_without_command_or_program_is_refused_before_claiming(
    root: Path, store_target: str
) -> None:
    sweep_id = await api.create_sweep(
        {"method": "grid", "parameters": {"lr": {"value": 0.1}}}, project="p", store=store_target
    )
    done = await anyio.run_process(agent(store_target, sweep_id), check=False)
    assert done.returncode != 0
    assert "neither 'program' nor 'command'" in done.stderr.decode()
    assert await states(store_target) == {}
