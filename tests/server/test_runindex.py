"""The runs table's index: it stays equal to the read model however far the log moved."""

from __future__ import annotations

import random
from pathlib import Path

import api
from api._server._runindex import RunIndex, RunQuery, RunRow, row_of, select
from eventstore import RunExited, RunInitialized, StepLogged, open_store
from projections import open_projector


async def _rows_match_the_read_model(index: RunIndex, projector: object) -> None:
    from projections import Projector

    assert isinstance(projector, Projector)
    expected = {(s.project, s.run_id): row_of(s) for s in await projector.runs()}
    assert {(r.project, r.run_id): r for r in index.rows()} == expected


async def test_index_reloads_runs_moved_by_a_long_stretch_of_the_log(tmp_path: Path) -> None:
    path = tmp_path / "runlog.db"
    async with open_store(str(path)) as store, open_projector(store) as projector:
        await store.append(
            "run:p/a",
            [
                RunInitialized(
                    project="p", run_id="a", incarnation=1, resumed=False, starting_step=0
                )
            ],
        )
        index = RunIndex(store, projector)
        await index.refresh()
        assert [r.steps for r in index.rows()] == [0]
        # More events than the index reads one by one: it compares the streams instead.
        steps = [
            StepLogged(incarnation=1, step=i, metrics={"loss": 1 / (i + 1)}) for i in range(2500)
        ]
        await store.append("run:p/a", steps, expected_version=0)
        await store.append(
            "run:p/b",
            [
                RunInitialized(
                    project="p", run_id="b", incarnation=1, resumed=False, starting_step=0
                ),
                RunExited(incarnation=1, exit_code=0),
            ],
        )
        assert await index.refresh() == await store.head()
        await _rows_match_the_read_model(index, projector)
        rows, total = index.select(RunQuery(sort="steps", descending=True))
        assert total == 2
        assert [(r.run_id, r.steps, r.status) for r in rows] == [
            ("a", 2500, "running"),
            ("b", 0, "finished"),
        ]


async def test_index_sees_a_run_a_sweep_event_created(tmp_path: Path) -> None:
    path = tmp_path / "runlog.db"
    async with open_store(str(path)) as store, open_projector(store) as projector:
        sweep_id = await api.create_sweep(
            {"method": "grid", "parameters": {"x": {"values": [1, 2]}}}, project="s", store=store
        )
        index = RunIndex(store, projector)
        await index.refresh()
        assert index.rows() == []
        agent = await api.register_agent(sweep_id, store=store)
        work = await api.claim(sweep_id, agent, store=store)
        assert work is not None
        await index.refresh()
        await _rows_match_the_read_model(index, projector)
        assert [(r.run_id, r.sweep_id) for r in index.rows()] == [(work.run_id, sweep_id)]


def _row(i: int, rng: random.Random) -> RunRow:
    summary: dict[str, object] = {}
    # Mixed kinds in one column: numbers, strings, and runs without the value.
    if i % 5:
        summary["loss"] = rng.choice([rng.random(), rng.randint(0, 3)])
    if i % 7 == 0:
        summary["loss"] = "diverged"  # a string among numbers sorts after them
    return RunRow(
        project=f"p{i % 3}",
        run_id=f"r{i:04d}",
        name=None,
        status="finished",
        sweep_id=None,
        tags=[],
        group=None,
        steps=i % 13,
        last_step=None,
        created_us=i,
        updated_us=i,
        runtime_s=0.0,
        incarnation=1,
        config={},
        summary=summary,
        last_position=i,
    )


def test_every_page_of_a_sort_is_the_slice_of_the_whole_order() -> None:
    rng = random.Random(5)
    rows = sorted((_row(i, rng) for i in range(400)), key=lambda r: (r.project, r.run_id))
    for sort in ("summary.loss", "steps", "run_id"):
        for descending in (False, True):
            whole, total = select(rows, RunQuery(sort=sort, descending=descending, limit=10_000))
            assert total == 400
            assert len({(r.project, r.run_id) for r in whole}) == 400
            # Numbers first, missing values last, whichever the direction.
            kinds = [isinstance(r.summary.get("loss"), int | float) for r in whole]
            if sort == "summary.loss":
                assert kinds == sorted(kinds, reverse=True)
            missing = [r for r in whole if sort == "summary.loss" and "loss" not in r.summary]
            assert whole[len(whole) - len(missing) :] == missing
            numbers = (
                []
                if sort != "summary.loss"
                else [
                    r.summary["loss"]
                    for r in whole
                    if isinstance(r.summary.get("loss"), int | float)
                ]
            )
            assert numbers == sorted(numbers, reverse=descending)
            # Small pages (chosen from a heap) and large ones (a full sort) agree.
            for offset, limit in ((0, 5), (5, 20), (90, 50), (350, 100)):
                page, _ = select(
                    rows, RunQuery(sort=sort, descending=descending, offset=offset, limit=limit)
                )
                assert page == whole[offset : offset + limit]
