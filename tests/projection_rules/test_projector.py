"""The projector over real stores: current after every append, persistent, checkable."""

from __future__ import annotations

import itertools
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from eventstore import (
    EventStore,
    InvalidArgument,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunScheduled,
    StepLogged,
    open_store,
)
from projections import RunStatus, SweepStatus, open_projector

from .._backends import StoreFactory
from ._log import init, sweep_created


async def start_run(
    store: EventStore, run_id: str = "a", steps: int = 0, project: str = "p"
) -> None:
    stream = f"run:{project}/{run_id}"
    await store.append(stream, [init(run_id)], "no_stream")
    if steps:
        await store.append(
            stream,
            [
                StepLogged(incarnation=1, step=s, metrics={"loss": 1 / (s + 1), "acc": s})
                for s in range(steps)
            ],
        )


async def test_a_query_sees_an_append_that_just_returned(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await start_run(store)
        assert (await projector.run("p", "a")).status is RunStatus.RUNNING  # type: ignore[union-attr]
        await store.append("run:p/a", [RunExited(incarnation=1, exit_code=0)])
        assert (await projector.run("p", "a")).status is RunStatus.FINISHED  # type: ignore[union-attr]


async def test_a_query_sees_an_append_made_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    script = (
        "import asyncio, sys\n"
        "from eventstore import open_store, RunInitialized, RunExited\n"
        "async def main():\n"
        "    async with open_store(sys.argv[1]) as store:\n"
        "        await store.append('run:p/x', [RunInitialized(project='p', run_id='x', incarnation=1,"
        " resumed=False, starting_step=0), RunExited(incarnation=1, exit_code=1)])\n"
        "asyncio.run(main())\n"
    )
    async with open_store(path) as store, open_projector(store) as projector:
        assert await projector.run("p", "x") is None
        await anyio.run_process([sys.executable, "-c", script, str(path)])
        state = await projector.run("p", "x")
        assert state is not None
        assert state.status is RunStatus.FAILED


async def test_reopening_a_file_store_does_not_replay(persistent_factory: StoreFactory) -> None:
    async with persistent_factory.open() as store, open_projector(store) as projector:
        await start_run(store, steps=50)
        await projector.catch_up()
        head = await store.head()
    async with persistent_factory.open() as store, open_projector(store) as projector:
        assert projector.position == head  # the checkpoint was stored with the read model
        state = await projector.run("p", "a")
        assert state is not None
        assert state.last_step == 49


async def test_two_projectors_on_one_file_share_the_read_model(
    persistent_factory: StoreFactory,
) -> None:
    async with (
        persistent_factory.open() as one,
        persistent_factory.open() as two,
        open_projector(one, chunk=7) as first,
        open_projector(two, chunk=5) as second,
    ):
        await start_run(one, "a", steps=30)
        await start_run(two, "b", steps=20)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.catch_up)
            tg.start_soon(second.catch_up)
        assert [r.run_id for r in await first.runs("p")] == ["a", "b"]
        assert (await second.run("p", "a")) == (await first.run("p", "a"))
        assert (await first.check()).ok


async def test_rebuild_gives_exactly_the_incremental_state(factory: StoreFactory) -> None:
    async with factory.open() as store, open_projector(store, chunk=3) as projector:
        await seed_sweep(store)
        before = (await projector.runs(), await projector.sweeps())
        check = await projector.check()
        assert check.ok, check.differences
        assert (check.runs, check.sweeps) == (2, 1)
        await projector.rebuild()
        assert (await projector.runs(), await projector.sweeps()) == before
        assert (await projector.check()).ok


async def test_check_reports_a_read_model_that_disagrees_with_the_log(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store, open_projector(store) as projector:
        await start_run(store, steps=10)
        await projector.catch_up()
        with sqlite3.connect(path) as db:  # damage the cache, not the log
            db.execute("DELETE FROM rm_history WHERE step = 3")
            db.execute("DELETE FROM rm_runs")
        db.close()
        check = await projector.check()
        assert not check.ok
        assert "run p/a is in the replay but not in the read model" in check.differences
        assert "history of run p/a differs from the replay" in check.differences
        await projector.rebuild()
        assert (await projector.check()).ok


async def seed_sweep(store: EventStore) -> None:
    await store.append("sweep:s", [sweep_created("s", run_cap=5)])
    for run_id in ("a", "b"):
        await store.append("sweep:s", [RunScheduled(run_id=run_id, params={"lr": 0.1})])
        await store.append("sweep:s", [RunClaimed(run_id=run_id, agent_id="g")])
        await store.append(f"run:p/{run_id}", [init(run_id, sweep_id="s")])
    await store.append(
        "run:p/a", [PreemptMarked(incarnation=1), RunExited(incarnation=1, exit_code=143)]
    )


async def test_a_sweep_with_its_queue(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await seed_sweep(store)
        sweep = await projector.sweep("s")
        assert sweep is not None
        assert (sweep.queue, sweep.counts) == (["a"], {"preempted": 1, "running": 1})
        assert [s.sweep_id for s in await projector.sweeps(project="p")] == ["s"]
        assert await projector.sweeps(status="paused") == []
        assert [s.sweep_id for s in await projector.sweeps(status=SweepStatus.RUNNING)] == ["s"]


async def test_runs_filtered_by_project_and_status(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await start_run(store, "a")
        await start_run(store, "b")
        await start_run(store, "c", project="other")
        await store.append("run:p/b", [RunExited(incarnation=1, exit_code=1)])
        assert [r.run_id for r in await projector.runs("p")] == ["a", "b"]
        assert [r.run_id for r in await projector.runs("p", "failed")] == ["b"]
        assert [r.run_id for r in await projector.runs(status=RunStatus.RUNNING)] == ["a", "c"]
        with pytest.raises(InvalidArgument, match="unknown run status"):
            await projector.runs("p", "sleeping")


async def test_a_run_resumed_into_a_sweep_is_counted_by_the_read_model(
    store: EventStore,
) -> None:
    async with open_projector(store, chunk=1) as projector:
        await store.append("run:p/a", [init("a")])
        await projector.catch_up()
        await store.append("sweep:s", [sweep_created("s")])
        await projector.catch_up()
        await store.append("run:p/a", [init("a", incarnation=2, sweep_id="s")])
        sweep = await projector.sweep("s")
        assert sweep is not None
        assert sweep.counts == {"running": 1}
        assert (await projector.check()).ok


async def test_a_page_of_runs_is_the_oldest_first(store: EventStore) -> None:
    async with open_projector(store) as projector:
        for run_id in ("a", "b", "c"):
            await start_run(store, run_id)
        await start_run(store, "d", project="other")
        assert [r.run_id for r in await projector.runs("p", limit=2)] == ["a", "b"]
        assert [r.run_id for r in await projector.runs(limit=3)] == ["a", "b", "c"]
        assert await projector.runs("p", limit=0) == []
        with pytest.raises(InvalidArgument, match="limit"):
            await projector.runs(limit=-1)


async def test_history_of_all_steps_a_range_and_some_keys(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await start_run(store, steps=20)
        every = await projector.history("p", "a")
        assert [p.step for p in every] == list(range(20))
        assert every[3].metrics == {"loss": 0.25, "acc": 3}
        window = await projector.history("p", "a", start=5, stop=8, keys=["acc"])
        assert [(p.step, p.metrics) for p in window] == [
            (5, {"acc": 5}),
            (6, {"acc": 6}),
            (7, {"acc": 7}),
        ]
        assert await projector.history("p", "nobody") == []


async def test_downsampled_history_keeps_the_first_and_last_step(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await start_run(store, steps=1000)
        points = await projector.history("p", "a", points=50)
        steps = [p.step for p in points]
        assert len(steps) == 50
        assert (steps[0], steps[-1]) == (0, 999)
        gaps = {b - a for a, b in itertools.pairwise(steps)}
        assert gaps <= {20, 21}  # evenly spread
        few = await projector.history("p", "a", start=10, stop=13, points=50)
        assert [p.step for p in few] == [10, 11, 12]


async def test_history_points_must_be_positive(store: EventStore) -> None:
    async with open_projector(store) as projector:
        with pytest.raises(InvalidArgument):
            await projector.history("p", "a", points=0)


async def test_a_run_as_of_a_past_position(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await seed_sweep(store)
        exit_position = await store.head()
        await store.append("sweep:s", [RunClaimed(run_id="a", agent_id="g2", requeue=True)])
        now = await projector.run("p", "a")
        before = await projector.run_as_of("p", "a", position=exit_position)
        earlier = await projector.run_as_of("p", "a", position=exit_position - 1)
        assert now is not None
        assert before is not None
        assert earlier is not None
        assert (now.status, before.status, earlier.status) == (
            RunStatus.PENDING,
            RunStatus.PREEMPTED,
            RunStatus.PREEMPTING,
        )
        assert await projector.run_as_of("p", "a", position=1) is None


async def test_a_sweep_as_of_a_past_position_has_its_queue_then(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await seed_sweep(store)
        queued_at = await store.head()
        await store.append("sweep:s", [RunClaimed(run_id="a", agent_id="g2", requeue=True)])
        then = await projector.sweep_as_of("s", position=queued_at)
        now = await projector.sweep("s")
        assert then is not None
        assert now is not None
        assert (then.queue, now.queue) == (["a"], [])


async def test_state_as_of_a_past_time(factory: StoreFactory) -> None:
    clock = iter(float(t) for t in range(1000, 2000))
    async with factory.open(clock=lambda: next(clock)) as store, open_projector(store) as projector:
        await start_run(store)  # at t=1000
        await store.append("run:p/a", [RunExited(incarnation=1, exit_code=0)])  # t=1001
        then = await projector.run_as_of("p", "a", recorded_at_us=1_000_500_000)
        assert then is not None
        assert then.status is RunStatus.RUNNING
        with pytest.raises(InvalidArgument, match="exactly one"):
            await projector.run_as_of("p", "a")


async def test_queries_need_no_write_lock_when_the_read_model_is_current(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store, open_projector(store) as projector:
        await start_run(store, steps=5)
        await projector.catch_up()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # a writer holds the lock throughout
    try:
        with anyio.fail_after(5):
            async with (
                open_store(path, lock_timeout=30) as store,
                open_projector(store) as projector,
            ):
                state = await projector.run("p", "a")
                assert state is not None
                assert state.last_step == 4
                assert [p.step for p in await projector.history("p", "a", points=2)] == [0, 4]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_sampling_is_even_in_step_values_across_a_gap(store: EventStore) -> None:
    async with open_projector(store) as projector:
        await start_run(store, steps=10)
        await store.append("run:p/a", [StepLogged(incarnation=1, step=1000, metrics={"loss": 0.0})])
        steps = [p.step for p in await projector.history("p", "a", points=3)]
        assert steps == [0, 1000]  # targets 0, 500, 1000: nothing was logged between 9 and 1000
