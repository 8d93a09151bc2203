"""The slider's past states equal ``Projector.run_as_of``, whatever order they are asked
in and wherever the copies they start from were taken."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import api
from api._server import _timetravel
from api._server._timetravel import TimeTravel
from eventstore import PreemptMarked, RunExited, RunInitialized, StepLogged, open_store
from projections import open_projector

from . import _dashstore


async def _positions(store: object, streams: list[str]) -> list[int]:
    from eventstore import EventStore

    assert isinstance(store, EventStore)
    return sorted({r.position for s in streams async for r in store.read_stream(s)})


@pytest.mark.parametrize("every", [5, 50_000])
async def test_past_states_equal_run_as_of_in_any_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    monkeypatch.setattr(_timetravel, "_EVERY", every)
    path = tmp_path / "runlog.db"
    await _dashstore.bulk_runs(path, 3, 10)  # other runs' events in between
    await _dashstore.twice_preempted(path)
    async with open_store(str(path)) as store, open_projector(store) as projector:
        travel = TimeTravel(store)
        positions = await _positions(store, ["run:vision/twice"])
        asked = [*positions, positions[0] - 1, positions[-1] + 5]
        random.Random(3).shuffle(asked)
        for position in asked:
            expected = await projector.run_as_of("vision", "twice", position=position)
            got = await travel.run_as_of(("vision", "twice"), None, position)
            assert got == expected, position


async def test_past_states_of_a_sweep_run_fold_its_sweep_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_timetravel, "_EVERY", 3)
    path = tmp_path / "runlog.db"
    store_arg = str(path)
    sweep_id = await api.create_sweep(
        {"method": "grid", "parameters": {"x": {"values": [1, 2]}}}, project="s",
        store=store_arg, sweep_id="tt")  # fmt: skip
    agent = await api.register_agent(sweep_id, store=store_arg)
    work = await api.claim(sweep_id, agent, store=store_arg)
    assert work is not None
    # Another run's claim in between: folds that read only the sweep's events about it
    # leave this run's state untouched, and the copies must still hold it.
    other = await api.claim(sweep_id, await api.register_agent(sweep_id, store=store_arg),
                            store=store_arg)  # fmt: skip
    assert other is not None
    stream = f"run:s/{work.run_id}"
    async with open_store(store_arg) as store:
        await store.append(stream, [
            RunInitialized(project="s", run_id=work.run_id, incarnation=1, resumed=False,
                           starting_step=0, sweep_id=sweep_id),
            StepLogged(incarnation=1, step=0, metrics={"y": 1.0}),
            PreemptMarked(incarnation=1),
            RunExited(incarnation=1, exit_code=143),
        ])  # fmt: skip
    again = await api.claim(sweep_id, agent, store=store_arg)
    assert again is not None
    async with open_store(store_arg) as store, open_projector(store) as projector:
        travel = TimeTravel(store)
        positions = await _positions(store, [stream, f"sweep:{sweep_id}"])
        for position in [*positions[::-1], *positions]:
            expected = await projector.run_as_of("s", work.run_id, position=position)
            got = await travel.run_as_of(("s", work.run_id), sweep_id, position)
            assert got == expected, position


@pytest.mark.parametrize("every", [2, 7])
async def test_past_states_from_the_read_models_copies_equal_run_as_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    from projections import _copies

    monkeypatch.setattr(_copies, "COPY_EVERY", every)  # copies every few events
    monkeypatch.setattr(_timetravel, "_EVERY", 50_000)  # none kept in memory on the way
    path = tmp_path / "runlog.db"
    await _dashstore.bulk_runs(path, 3, 10)
    await _dashstore.twice_preempted(path)
    async with open_store(str(path)) as store, open_projector(store) as projector:
        await projector.rebuild()  # the copies at this COPY_EVERY
        assert await projector.run_copy("vision", "twice", await store.head()) is not None
        travel = TimeTravel(store, projector)
        positions = await _positions(store, ["run:vision/twice"])
        asked = [*positions, positions[0] - 1, positions[-1] + 5]
        random.Random(5).shuffle(asked)
        for position in asked:
            expected = await projector.run_as_of("vision", "twice", position=position)
            got = await travel.run_as_of(("vision", "twice"), None, position)
            assert got == expected, position
        assert (await projector.check()).ok


async def test_a_sweep_runs_past_states_from_stored_copies_fold_its_sweep_after_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from projections import _copies

    monkeypatch.setattr(_copies, "COPY_EVERY", 2)
    path = tmp_path / "runlog.db"
    store_arg = str(path)
    sweep_id = await api.create_sweep(
        {"method": "grid", "parameters": {"x": {"values": [1, 2]}}}, project="s",
        store=store_arg, sweep_id="tc")  # fmt: skip
    agent = await api.register_agent(sweep_id, store=store_arg)
    work = await api.claim(sweep_id, agent, store=store_arg)
    assert work is not None
    stream = f"run:s/{work.run_id}"
    async with open_store(store_arg) as store:
        await store.append(stream, [
            RunInitialized(project="s", run_id=work.run_id, incarnation=1, resumed=False,
                           starting_step=0, sweep_id=sweep_id),
            StepLogged(incarnation=1, step=0, metrics={"y": 1.0}),
            StepLogged(incarnation=1, step=1, metrics={"y": 0.5}),
            PreemptMarked(incarnation=1),
            RunExited(incarnation=1, exit_code=143),
        ])  # fmt: skip
    again = await api.claim(sweep_id, agent, store=store_arg)
    assert again is not None
    async with open_store(store_arg) as store, open_projector(store) as projector:
        await projector.rebuild()
        travel = TimeTravel(store, projector)
        positions = await _positions(store, [stream, f"sweep:{sweep_id}"])
        for position in [*positions[::-1], *positions]:
            expected = await projector.run_as_of("s", work.run_id, position=position)
            got = await travel.run_as_of(("s", work.run_id), sweep_id, position)
            assert got == expected, position
