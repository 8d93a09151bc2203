"""Run heads: the inline projection every store keeps in the append's own transaction.

A head must always equal the fold of its whole stream, however it was written: inline,
left behind by appends made without the projection, damaged, or rebuilt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventstore import (
    EventStore,
    InvalidArgument,
    RecordedEvent,
    RunExited,
    RunInitialized,
    StepLogged,
    SummaryUpdated,
    open_store,
    run_stream,
)
from projections import Fold, RunHeads, RunState, check_heads, run_heads

from .._backends import BACKENDS, Backend

pytestmark = pytest.mark.anyio

STREAM = run_stream("p", "r1")


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def local(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=[b for b in BACKENDS if b.persistent], ids=lambda b: b.name)
def reopened(request: pytest.FixtureRequest) -> Backend:
    """The local backends whose log outlives the store object."""
    return request.param  # type: ignore[no-any-return]


def _init(incarnation: int, starting_step: int = 0) -> RunInitialized:
    return RunInitialized(
        project="p",
        run_id="r1",
        incarnation=incarnation,
        resumed=incarnation > 1,
        starting_step=starting_step,
        config={"lr": 0.1},
        sweep_id="s1",
    )


def _steps(incarnation: int, first: int, count: int) -> list[StepLogged]:
    return [
        StepLogged(incarnation=incarnation, step=step, metrics={"loss": 1.0 / (step + 1)})
        for step in range(first, first + count)
    ]


async def _replayed(store: EventStore, stream: str = STREAM) -> RunState | None:
    fold = Fold()
    fold.apply_all([record async for record in store.read_stream(stream)])
    return fold.runs.get(("p", stream.rpartition("/")[2]))


async def _two_incarnations(store: EventStore) -> None:
    await store.append(STREAM, [_init(1), *_steps(1, 0, 300)])
    await store.append(STREAM, _steps(1, 300, 200))
    await store.append(STREAM, [SummaryUpdated(values={"best": 0.5}, incarnation=1)])
    await store.append(STREAM, [RunExited(incarnation=1, exit_code=143)])
    await store.append(STREAM, [_init(2, 500), *_steps(2, 500, 10)])


async def test_a_head_is_the_fold_of_its_stream(local: Backend, tmp_path: Path) -> None:
    async with open_store(local.target(tmp_path), inline=run_heads()) as store:
        await _two_incarnations(store)
        head = await store.stream_head(STREAM)  # type: ignore[attr-defined]
        assert head is not None
        state = RunHeads.decode(head.state)
        assert state is not None
        assert (state.incarnation, state.last_step, state.steps) == (2, 509, 510)
        assert state.summary["best"] == 0.5
        assert state.sweep_id == "s1"  # as the run's init named it
        expected = await _replayed(store)
        assert expected is not None
        expected.sweep_id = "s1"  # the full fold names a sweep only once it exists
        assert state == expected
        assert head.info == await store.stream_info(STREAM)


async def test_appends_keep_the_stored_head_at_the_stream_version(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, inline=run_heads()) as store:
        await _two_incarnations(store)
        version = await store.stream_version(STREAM)
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT version FROM stream_heads").fetchall()
    assert stored == (version,)


async def test_a_head_left_behind_by_appends_without_the_projection_is_caught_up(
    reopened: Backend, tmp_path: Path
) -> None:
    target = reopened.target(tmp_path)
    async with open_store(target, inline=run_heads()) as store:
        await store.append(STREAM, [_init(1), *_steps(1, 0, 50)])
    async with open_store(target) as plain:  # an older runlog, or a plain eventstore user
        await plain.append(STREAM, _steps(1, 50, 70))
    async with open_store(target, inline=run_heads()) as store:
        stored = await store.stored_heads()  # type: ignore[attr-defined]
        assert [(h.stream, h.version) for h in stored] == [(STREAM, 50)]
        head = await store.stream_head(STREAM)  # type: ignore[attr-defined]
        state = RunHeads.decode(head.state)
        assert state is not None
        assert state.last_step == 119
        check = await check_heads(store)
        assert check.ok
        assert check.behind == 1
        await store.append(STREAM, _steps(1, 120, 1))  # the next append catches the row up
        stored = await store.stored_heads()  # type: ignore[attr-defined]
        assert [(h.stream, h.version) for h in stored] == [(STREAM, 121)]


async def test_a_store_without_the_projection_refuses_head_reads(
    local: Backend, tmp_path: Path
) -> None:
    async with open_store(local.target(tmp_path)) as store:
        await store.append(STREAM, [_init(1)])
        with pytest.raises(InvalidArgument, match="inline projection"):
            await store.stream_head(STREAM)  # type: ignore[attr-defined]


async def test_a_head_of_another_fold_version_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, inline=run_heads()) as store:
        await store.append(STREAM, [_init(1), *_steps(1, 0, 5)])

    class NextVersion(RunHeads):
        name = "runlog.run-heads/next"

    async with open_store(path, inline=NextVersion()) as store:
        assert await store.stored_heads() == []  # type: ignore[attr-defined]
        head = await store.stream_head(STREAM)  # type: ignore[attr-defined]
        assert RunHeads.decode(head.state).last_step == 4  # type: ignore[union-attr]


async def test_keeping_a_second_projection_is_refused(local: Backend, tmp_path: Path) -> None:
    class Other(RunHeads):
        name = "other"

    async with open_store(local.target(tmp_path), inline=run_heads()) as store:
        with pytest.raises(InvalidArgument, match="already keeps"):
            await store.keep_inline(Other())  # type: ignore[attr-defined]
        await store.keep_inline(run_heads())  # type: ignore[attr-defined]  # the same: fine


async def test_a_damaged_head_is_found_by_check_and_repaired_by_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, inline=run_heads()) as store:
        await _two_incarnations(store)
        good = RunHeads.decode((await store.stream_head(STREAM)).state)  # type: ignore[attr-defined]
    wrong = RunHeads.decode(
        sqlite3.connect(path).execute("SELECT state FROM stream_heads").fetchone()[0]
    )
    assert wrong is not None
    wrong.last_step = 3
    import msgspec

    with sqlite3.connect(path) as db:
        db.execute("UPDATE stream_heads SET state = ?", (msgspec.msgpack.encode(wrong),))
    async with open_store(path, inline=run_heads()) as store:
        check = await check_heads(store)
        assert not check.ok
        assert STREAM in check.differences[0]
        assert await store.rebuild_heads() == 1  # type: ignore[attr-defined]
        assert (await check_heads(store)).ok
        repaired = RunHeads.decode((await store.stream_head(STREAM)).state)  # type: ignore[attr-defined]
        assert repaired == good


async def test_an_undecodable_head_is_refolded_from_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, inline=run_heads()) as store:
        await _two_incarnations(store)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stream_heads SET state = x'c1c1c1'")
    async with open_store(path, inline=run_heads()) as store:
        head = await store.stream_head(STREAM)  # type: ignore[attr-defined]
        assert RunHeads.decode(head.state).last_step == 509  # type: ignore[union-attr]
        await store.append(STREAM, _steps(2, 510, 1))  # and appends go on
        head = await store.stream_head(STREAM)  # type: ignore[attr-defined]
        assert RunHeads.decode(head.state).last_step == 510  # type: ignore[union-attr]


class _Broken(RunHeads):
    name = "broken"

    def fold(self, stream: str, state: bytes | None, events: Sequence[RecordedEvent]) -> bytes:
        raise RuntimeError("a bug in a fold")


async def test_a_failing_fold_never_stops_an_append(local: Backend, tmp_path: Path) -> None:
    async with open_store(local.target(tmp_path), inline=_Broken()) as store:
        result = await store.append(STREAM, [_init(1), *_steps(1, 0, 3)])
        assert result.version == 3
        assert await store.stored_heads() == []  # type: ignore[attr-defined]
        assert len([r async for r in store.read_stream(STREAM)]) == 4


async def test_rebuild_gives_the_heads_appends_gave(local: Backend, tmp_path: Path) -> None:
    async with open_store(local.target(tmp_path), inline=run_heads()) as store:
        for run in range(5):
            stream = run_stream("p", f"r{run}")
            await store.append(
                stream,
                [
                    RunInitialized(
                        project="p", run_id=f"r{run}", incarnation=1, resumed=False, starting_step=0
                    )
                ],
            )
            await store.append(stream, _steps(1, 0, 20 * run + 1))
        before = await store.stored_heads()  # type: ignore[attr-defined]
        assert await store.rebuild_heads(page=7) == 5  # type: ignore[attr-defined]
        assert await store.stored_heads() == before  # type: ignore[attr-defined]
        assert (await check_heads(store)).ok


async def test_an_import_keeps_heads_current_as_an_append_does(
    local: Backend, tmp_path: Path
) -> None:
    async with open_store(tmp_path / "source.db") as source:
        await _two_incarnations(source)
        stored = [e async for e in source.read_stored()]
    (tmp_path / "target").mkdir()
    async with open_store(local.target(tmp_path / "target"), inline=run_heads()) as target:
        await target.import_events(stored[:200])
        await target.import_events(stored[200:])
        heads = await target.stored_heads()  # type: ignore[attr-defined]
        assert [(h.stream, h.version) for h in heads] == [
            (STREAM, await target.stream_version(STREAM))
        ]
        state = RunHeads.decode(heads[0].state)
        expected = await _replayed(target)
        assert expected is not None
        expected.sweep_id = "s1"
        assert state == expected
        assert (await check_heads(target)).ok
