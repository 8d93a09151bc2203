"""8 agent processes drain a 200-run sweep with random preemptions (contract §8)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

import api
from eventstore import RunClaimed, StepLogged, open_store
from projections import RunStatus, SweepStatus, open_projector

AGENT = str(Path(__file__).parent.parent / "_agent_process.py")
pytestmark = pytest.mark.slow


async def test_eight_agents_drain_200_runs_exactly_once(root: Path, store_target: str) -> None:
    store = store_target
    grid = {
        "method": "grid",
        "parameters": {"a": {"min": 1, "max": 20}, "b": {"min": 1, "max": 10}},
    }
    sweep_id = await api.create_sweep(grid, project="p", store=store)
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(anyio.run_process, [sys.executable, AGENT, str(store), sweep_id])

    async with open_store(store) as opened, open_projector(opened) as projector:
        sweep = await projector.sweep(sweep_id)
        runs = {r.run_id: r for r in await projector.runs("p")}
        claims = [
            r.event
            async for r in opened.read_stream(f"sweep:{sweep_id}")
            if isinstance(r.event, RunClaimed)
        ]
        steps: Counter[str] = Counter()
        async for record in opened.read_all():
            if isinstance(record.event, StepLogged):
                steps[record.stream.rpartition("/")[2]] += 1
        check = await projector.check()

    assert sweep is not None
    assert (sweep.status, sweep.finish_reason, sweep.queue) == (
        SweepStatus.FINISHED,
        "exhausted",
        [],
    )
    assert len(runs) == 200
    assert len({(r.params["a"], r.params["b"]) for r in runs.values() if r.params}) == 200
    new_claims = Counter(c.run_id for c in claims if not c.requeue)
    requeue_claims = Counter(c.run_id for c in claims if c.requeue)
    assert set(new_claims.values()) == {1}  # every run started exactly once
    preempted = {run_id for run_id, r in runs.items() if r.incarnation == 2}
    assert preempted  # some runs really were preempted
    assert set(requeue_claims) == preempted  # and every one was claimed from the queue
    assert set(requeue_claims.values()) == {1}  # once per queue entry
    assert all(r.status is RunStatus.FINISHED for r in runs.values())  # none lost
    for run_id, r in runs.items():
        assert steps[run_id] == (6 if run_id in preempted else 3)  # none doubled
        assert r.last_step == steps[run_id] - 1
    assert check.ok, check.differences
