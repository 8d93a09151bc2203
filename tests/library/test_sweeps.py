"""Sweeps: commands (contract §9.1), claims and the queue (§8), the watchdog (§6.3)."""

from __future__ import annotations

import anyio
import pytest

import api
from eventstore import EventStore, PreemptMarked, RunExited, RunKilled, open_store
from projections import RunStatus, SweepStatus, open_projector

GRID = {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01]}, "bs": {"values": [16, 32]}}}


@pytest.fixture
async def store(store_target: str):  # type: ignore[no-untyped-def]
    async with open_store(store_target) as opened:
        yield opened


async def running_sweep(store: EventStore, config: dict[str, object] = GRID) -> str:
    sweep_id = await api.create_sweep(config, project="p", store=store, seed=1)
    await api.register_agent(sweep_id, store=store, agent_id="agent-1")
    return sweep_id


async def start(store: EventStore, work: api.Work) -> api.Run:
    """What the agent's child does: init with the agent's id, resume allowed."""
    import os

    os.environ["RUNLOG_SWEEP_ID"] = work.sweep_id
    try:
        return await api.init(project=work.project, id=work.run_id, resume="allow", store=store)
    finally:
        del os.environ["RUNLOG_SWEEP_ID"]


async def first_run(store: EventStore) -> tuple[str, api.Work, api.Run]:
    """A running sweep, its first cell claimed by agent-1, and that run started."""
    sweep_id = await running_sweep(store)
    work = await api.claim(sweep_id, "agent-1", store=store)
    assert work is not None
    return sweep_id, work, await start(store, work)


async def sweep_state(store: EventStore, sweep_id: str):  # type: ignore[no-untyped-def]
    async with open_projector(store) as projector:
        return await projector.sweep(sweep_id)


async def test_a_created_sweep_is_pending_and_an_agent_makes_it_running(store: EventStore) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    assert (await sweep_state(store, sweep_id)).status is SweepStatus.PENDING
    assert await api.claim(sweep_id, "agent-1", store=store) is None  # nobody serves it yet
    await api.register_agent(sweep_id, store=store)
    assert (await sweep_state(store, sweep_id)).status is SweepStatus.RUNNING


async def test_a_sweep_id_is_created_once(store: EventStore) -> None:
    await api.create_sweep(GRID, project="p", store=store, sweep_id="s1")
    with pytest.raises(api.SweepError, match="already exists"):
        await api.create_sweep(GRID, project="p", store=store, sweep_id="s1")


async def test_commands_on_an_unknown_sweep_say_so(store: EventStore) -> None:
    with pytest.raises(api.SweepNotFound):
        await api.pause_sweep("nope", store=store)


# --- §9.1 commands ------------------------------------------------------------------------


async def test_pause_and_resume(store: EventStore) -> None:
    sweep_id = await running_sweep(store)
    assert (await api.pause_sweep(sweep_id, store=store)).status is SweepStatus.PAUSED
    assert (await api.pause_sweep(sweep_id, store=store)).status is SweepStatus.PAUSED  # no-op
    assert (await api.resume_sweep(sweep_id, store=store)).status is SweepStatus.RUNNING


async def test_pausing_a_pending_sweep_is_refused_with_the_contracts_words(
    store: EventStore,
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    with pytest.raises(api.SweepError, match=r"^Cannot pause PENDING sweep\.$"):
        await api.pause_sweep(sweep_id, store=store)


async def test_stop_finishes_and_a_second_stop_is_refused(store: EventStore) -> None:
    sweep_id = await running_sweep(store)
    state = await api.stop_sweep(sweep_id, store=store)
    assert (state.status, state.finish_reason) == (SweepStatus.FINISHED, "stopped")
    with pytest.raises(api.SweepError, match=r"^Sweep already FINISHED\.$"):
        await api.stop_sweep(sweep_id, store=store)
    assert (await api.resume_sweep(sweep_id, store=store)).status is SweepStatus.RUNNING  # reopen


async def test_a_cancelled_sweep_cannot_be_resumed_or_cancelled_again(store: EventStore) -> None:
    sweep_id = await running_sweep(store)
    await api.cancel_sweep(sweep_id, store=store)
    with pytest.raises(api.SweepError, match=r"^Sweep is CANCELED and cannot be resumed\.$"):
        await api.resume_sweep(sweep_id, store=store)
    with pytest.raises(api.SweepError, match=r"^Sweep already CANCELED\.$"):
        await api.cancel_sweep(sweep_id, store=store)


async def test_a_refused_command_writes_nothing(store: EventStore) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store)
    head = await store.head()
    with pytest.raises(api.SweepError):
        await api.pause_sweep(sweep_id, store=store)
    assert await store.head() == head


async def test_cancel_kills_live_runs_and_queued_runs(store: EventStore) -> None:
    sweep_id = await running_sweep(store)
    first = await api.claim(sweep_id, "agent-1", store=store)
    second = await api.claim(sweep_id, "agent-1", store=store)
    pending = await api.claim(sweep_id, "agent-1", store=store)
    assert first
    assert second
    assert pending
    running = await start(store, first)
    preempted = await start(store, second)
    await preempted.mark_preempting()
    await preempted.finish(143)
    await api.cancel_sweep(sweep_id, store=store)
    async with open_projector(store) as projector:
        states = {r.run_id: r.status for r in await projector.runs("p")}
        sweep = await projector.sweep(sweep_id)
    assert states == {
        first.run_id: RunStatus.KILLED,
        second.run_id: RunStatus.KILLED,
        pending.run_id: RunStatus.KILLED,
    }
    assert sweep is not None
    assert sweep.queue == []
    await running.log({"x": 1.0})  # its process may still write before its agent kills it
    await running.finish()
    async with open_projector(store) as projector:
        assert (await projector.run("p", first.run_id)).status is RunStatus.KILLED  # type: ignore[union-attr]
    kills = [r async for r in store.read_all() if isinstance(r.event, RunKilled)]
    assert len(kills) == 2  # the live runs; the queued one is killed by the fold


# --- claims and the queue -----------------------------------------------------------------


async def test_grid_claims_each_combination_once_in_order_then_finishes(store: EventStore) -> None:
    sweep_id = await running_sweep(store)
    claims = [await api.claim(sweep_id, "agent-1", store=store) for _ in range(4)]
    assert [c.params for c in claims if c] == [  # W&B's order: sorted names, bs slowest
        {"bs": 16, "lr": 0.1},
        {"bs": 16, "lr": 0.01},
        {"bs": 32, "lr": 0.1},
        {"bs": 32, "lr": 0.01},
    ]
    assert (
        await api.claim(sweep_id, "agent-1", store=store) is None
    )  # exhausted, runs still pending
    for work in claims:
        assert work is not None
        run = await start(store, work)
        await run.finish(1)  # a failed run never changes the sweep's status
    assert (await sweep_state(store, sweep_id)).status is SweepStatus.RUNNING
    assert await api.claim(sweep_id, "agent-1", store=store) is None
    state = await sweep_state(store, sweep_id)
    assert (state.status, state.finish_reason) == (SweepStatus.FINISHED, "exhausted")


async def exhausted_sweep(store: EventStore) -> str:
    """A grid sweep whose every cell ran and that finished itself (exhausted)."""
    sweep_id = await running_sweep(store)
    while (work := await api.claim(sweep_id, "agent-1", store=store)) is not None:
        await (await start(store, work)).finish()
    assert await api.claim(sweep_id, "agent-1", store=store) is None
    assert (await sweep_state(store, sweep_id)).status is SweepStatus.FINISHED
    return sweep_id


async def test_reopening_an_exhausted_sweep_finishes_it_again_at_once(store: EventStore) -> None:
    sweep_id = await exhausted_sweep(store)
    reopened = await api.resume_sweep(sweep_id, store=store)
    assert (reopened.status, reopened.finish_reason) == (SweepStatus.FINISHED, "exhausted")


async def test_reopening_a_random_sweep_makes_it_running(store: EventStore) -> None:
    config = {"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}
    sweep_id = await running_sweep(store, config)
    await api.stop_sweep(sweep_id, store=store)
    assert (await api.resume_sweep(sweep_id, store=store)).status is SweepStatus.RUNNING


async def test_an_agent_leaving_with_its_count_finishes_an_exhausted_sweep(
    store: EventStore,
) -> None:
    sweep_id = await api.create_sweep(GRID, project="p", store=store)

    async def train() -> None:
        async with api.init():
            pass

    assert await api.agent(sweep_id, train, store=store, count=4) == 4  # the whole grid
    state = await sweep_state(store, sweep_id)
    assert (state.status, state.finish_reason) == (SweepStatus.FINISHED, "exhausted")


async def test_a_preempted_run_is_claimed_before_any_new_suggestion(store: EventStore) -> None:
    sweep_id, work, run = await first_run(store)
    await run.log({"loss": 1.0})
    await run.mark_preempting()
    await run.finish(143)
    again = await api.claim(sweep_id, "agent-2", store=store)
    assert again is not None
    assert (again.run_id, again.requeue, again.params) == (work.run_id, True, work.params)
    resumed = await start(store, again)
    assert (resumed.resumed, resumed.step) == (True, 1)
    await resumed.finish()


async def test_a_paused_sweep_hands_out_nothing_and_keeps_its_queue(store: EventStore) -> None:
    sweep_id, work, run = await first_run(store)
    await run.mark_preempting()
    await run.finish(143)
    await api.pause_sweep(sweep_id, store=store)
    assert await api.claim(sweep_id, "agent-1", store=store) is None
    assert (await sweep_state(store, sweep_id)).queue == [work.run_id]


async def test_run_cap_limits_runs_that_start(store: EventStore) -> None:
    sweep_id = await running_sweep(store, {**GRID, "run_cap": 2})
    first = await api.claim(sweep_id, "a", store=store)
    second = await api.claim(sweep_id, "a", store=store)
    assert first
    assert second
    assert await api.claim(sweep_id, "a", store=store) is None
    for work in (first, second):
        await (await start(store, work)).finish()
    assert await api.claim(sweep_id, "a", store=store) is None
    state = await sweep_state(store, sweep_id)
    assert (state.status, state.finish_reason, state.ever_running) == (
        SweepStatus.FINISHED,
        "run_cap",
        2,
    )


async def test_racing_agents_claim_every_combination_exactly_once(store_target: str) -> None:
    path = store_target
    big = {"method": "grid", "parameters": {"a": {"min": 1, "max": 5}, "b": {"min": 1, "max": 4}}}
    async with open_store(path) as store:
        sweep_id = await running_sweep(store, big)
    claimed: list[api.Work] = []

    async def agent(name: str) -> None:
        async with open_store(path) as own:  # each agent its own connection
            while (work := await api.claim(sweep_id, name, store=own)) is not None:
                claimed.append(work)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(agent, f"agent-{i}")
    assert len(claimed) == 20
    assert len({w.run_id for w in claimed}) == 20
    assert len({(w.params["a"], w.params["b"]) for w in claimed}) == 20


# --- the watchdog -------------------------------------------------------------------------

SECOND = 1_000_000


async def test_a_stale_marked_run_is_preempted_and_queued(store: EventStore) -> None:
    sweep_id, work, run = await first_run(store)
    await run.mark_preempting()
    await store.append(f"run:p/{work.run_id}", [PreemptMarked(incarnation=1)])  # any later write
    async with open_projector(store) as projector:
        last = (await projector.run("p", work.run_id)).last_event_us  # type: ignore[union-attr]
    decisions = await api.reap(store=store, timeout_s=300, now_us=last + 301 * SECOND)
    assert decisions == [f"p/{work.run_id}: silent for 301 s (over 300 s) -> preempted"]
    state = await sweep_state(store, sweep_id)
    assert state.queue == [work.run_id]
    await run.finish(0)  # a late process writing again does not take a queued run back
    assert (await sweep_state(store, sweep_id)).queue == [work.run_id]


async def test_a_stale_unmarked_run_is_crashed_and_not_queued(store: EventStore) -> None:
    sweep_id, work, run = await first_run(store)
    await run.flush()
    async with open_projector(store) as projector:
        last = (await projector.run("p", work.run_id)).last_event_us  # type: ignore[union-attr]
    assert await api.reap(store=store, timeout_s=300, now_us=last + 299 * SECOND) == []
    assert len(await api.reap(store=store, timeout_s=300, now_us=last + 301 * SECOND)) == 1
    async with open_projector(store) as projector:
        assert (await projector.run("p", work.run_id)).status is RunStatus.CRASHED  # type: ignore[union-attr]
    assert (await sweep_state(store, sweep_id)).queue == []
    await run.log({"late": 1.0})  # the contract's late writer: revived
    await run.finish()
    async with open_projector(store) as projector:
        assert (await projector.run("p", work.run_id)).status is RunStatus.FINISHED  # type: ignore[union-attr]


async def test_a_claim_whose_lease_lapses_is_offered_again(store: EventStore) -> None:
    sweep_id = await running_sweep(store)
    work = await api.claim(sweep_id, "agent-1", store=store, lease_s=30)
    assert work is not None
    [record] = await store.read_positions([work.claim_position])
    decisions = await api.reap(store=store, now_us=record.recorded_at_us + 31 * SECOND)
    assert decisions == [f"p/{work.run_id}: claim by agent-1 lapsed after 31 s (lease 30 s)"]
    again = await api.claim(sweep_id, "agent-2", store=store)
    assert again is not None
    assert (again.run_id, again.params) == (work.run_id, work.params)


async def test_a_run_writing_exit_before_the_watchdog_is_left_alone(store: EventStore) -> None:
    _sweep_id, work, run = await first_run(store)
    await run.finish(0)
    await store.append(f"run:p/{work.run_id}", [RunExited(incarnation=1, exit_code=0)])
    assert await api.reap(store=store, timeout_s=0, now_us=10**18) == []


# --- explain ------------------------------------------------------------------------------


async def test_explain_names_the_events_that_queued_a_run(store: EventStore) -> None:
    _sweep_id, work, run = await first_run(store)
    await run.mark_preempting()
    await run.finish(143)
    lines = await api.explain("p", work.run_id, store=store)
    assert lines[0] == f"run p/{work.run_id}: preempted, incarnation 1, last step None"
    assert any("claimed as a new run by agent-1" in line for line in lines)
    assert any("marked preempting (incarnation 1)" in line for line in lines)
    assert any("exited with code 143" in line for line in lines)
    assert (
        lines[-1] == "  why: marked preempting, then exit code 143: preempted, queued in its sweep"
    )


async def test_explain_says_why_a_marked_run_that_exits_0_is_not_queued(store: EventStore) -> None:
    _sweep_id, work, run = await first_run(store)
    await run.mark_preempting()
    await run.finish(0)
    lines = await api.explain("p", work.run_id, store=store)
    assert (
        lines[-1]
        == "  why: exited with 0: finished (a preempt mark does not requeue a run that exits 0)"
    )


async def test_explain_says_a_silent_unmarked_run_crashed(store: EventStore) -> None:
    async with api.init(project="p", id="lonely", store=store) as run:
        await run.flush()
        await api.reap(store=store, timeout_s=1, now_us=10**18)
        lines = await api.explain("p", "lonely", store=store)
        assert any("watchdog: silent for over 1 s" in line for line in lines)
        assert (
            lines[-1]
            == "  why: stopped writing without a preempt mark (or exited 254): crashed, not queued"
        )


async def test_explain_of_an_unknown_run_is_run_not_found(store: EventStore) -> None:
    with pytest.raises(api.RunNotFound, match="never mentions run p/nope"):
        await api.explain("p", "nope", store=store)
