"""A store of realistic shape for the dashboard tests and screenshots: many runs with
configs, tags and summaries written straight as events (fast), plus a few written by the
library itself: a run preempted twice and resumed, and a grid sweep with a metric."""

from __future__ import annotations

import math
import random
from pathlib import Path

import api
from eventstore import RunExited, RunInitialized, StepLogged, open_store

PROJECTS = ("vision", "nlp", "rl")
OPTIMIZERS = ("adam", "sgd", "adamw")
SWEEP = {
    "method": "grid",
    "metric": {"name": "val_loss", "goal": "minimize"},
    "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}, "batch": {"values": [32, 64]}},
}


async def bulk_runs(path: Path | str, runs: int, steps: int, *, seed: int = 7) -> None:
    """``runs`` finished or failed runs of ``steps`` steps each, appended as events."""
    rng = random.Random(seed)
    async with open_store(str(path)) as store:
        for i in range(runs):
            project = PROJECTS[i % len(PROJECTS)]
            lr = 10 ** rng.uniform(-4, -1)
            config = {
                "lr": lr,
                "batch_size": rng.choice([32, 64, 128]),
                "optimizer": rng.choice(OPTIMIZERS),
                "model": {"depth": rng.choice([18, 34, 50])},
            }
            tags = [rng.choice(["baseline", "ablation", "final"])] + (["gpu"] if i % 3 else [])
            events: list = [
                RunInitialized(
                    project=project,
                    run_id=f"run-{i:05d}",
                    incarnation=1,
                    resumed=False,
                    starting_step=0,
                    config=config,
                    name=f"{config['optimizer']}-lr{lr:.0e}",
                    tags=tags,
                    host=f"node-{i % 8}",
                    pid=1000 + i,
                )
            ]
            floor = rng.uniform(0.05, 0.4)
            for step in range(steps):
                loss = floor + 2.0 * math.exp(-step / max(1, steps / 5)) + rng.gauss(0, 0.02)
                events.append(
                    StepLogged(
                        incarnation=1,
                        step=step,
                        metrics={
                            "loss": loss,
                            "val_loss": loss * 1.1,
                            "acc": 1 - loss / 2.5,
                            "lr": lr * (1 - step / max(1, steps)),
                        },
                    )
                )
            events.append(RunExited(incarnation=1, exit_code=0 if i % 11 else 1))
            await store.append(f"run:{project}/run-{i:05d}", events)


async def twice_preempted(
    path: Path | str, *, project: str = "vision", run_id: str = "twice"
) -> None:
    """A run the library preempts twice (exit 143 after ``mark_preempting``) and resumes
    each time, then finishes: three incarnations."""
    store = str(path)
    step = 0
    for incarnation in range(3):
        run = await api.init(
            project=project,
            id=run_id,
            store=store,
            resume=None if incarnation == 0 else "must",
            config={"lr": 0.01, "epochs": 3},
            tags=["preemptible"],
        )
        for _ in range(40):
            await run.log({"loss": 2.0 / (step + 1), "acc": step / 120})
            step += 1
        if incarnation < 2:
            await run.mark_preempting()
            await run.finish(143)
        else:
            await run.finish(0)


async def grid_sweep(path: Path | str, *, project: str = "tune") -> str:
    """A grid sweep whose runs logged ``val_loss``; returns its id."""
    store = str(path)
    sweep_id = await api.create_sweep(SWEEP, project=project, store=store, sweep_id="grid1")
    agent = await api.register_agent(sweep_id, store=store)
    async with open_store(store) as opened:
        for _ in range(4):
            work = await api.claim(sweep_id, agent, store=opened)
            assert work is not None
            lr, batch = float(work.params["lr"]), int(work.params["batch"])
            # What an agent's training process writes (the library takes the sweep from
            # the agent's environment); written directly to keep the test fast.
            events: list = [
                RunInitialized(
                    project=project,
                    run_id=work.run_id,
                    incarnation=1,
                    resumed=False,
                    starting_step=0,
                    sweep_id=sweep_id,
                    config=dict(work.params),
                )
            ]
            for step in range(30):
                value = abs(math.log10(lr) + 2) + 0.3 / (step + 1) + batch / 1000
                events.append(StepLogged(incarnation=1, step=step, metrics={"val_loss": value}))
            events.append(RunExited(incarnation=1, exit_code=0))
            await opened.append(f"run:{project}/{work.run_id}", events)
    return sweep_id


async def realistic(path: Path, runs: int = 300, steps: int = 200) -> str:
    """The screenshot store: bulk runs, the twice-preempted run and the sweep."""
    await bulk_runs(path, runs, steps)
    await twice_preempted(path)
    return await grid_sweep(path)
