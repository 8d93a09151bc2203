"""Logging (contract §4.1 step rules), notes, heartbeats, files; all through a real store."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import api
from eventstore import Heartbeat, InvalidArgument, NotesEdited, StepLogged, open_store
from projections import open_projector


async def logged_steps(run: api.Run) -> list[tuple[int, dict[str, object]]]:
    await run.flush()
    stream = f"run:{run.project}/{run.id}"
    return [
        (r.event.step, r.event.metrics)
        async for r in run.store.read_stream(stream)
        if isinstance(r.event, StepLogged)
    ]


async def test_log_without_step_uses_the_current_step_then_advances(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1})
        await run.log({"a": 2})
        assert run.step == 2
        assert await logged_steps(run) == [(0, {"a": 1}), (1, {"a": 2})]


async def test_commit_false_accumulates_into_the_current_step(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1}, commit=False)
        await run.log({"b": 2}, commit=False)
        assert run.step == 0
        await run.log({"c": 3})
        assert await logged_steps(run) == [(0, {"a": 1, "b": 2, "c": 3})]


async def test_a_higher_step_writes_the_pending_row_and_moves_there(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1}, step=2)
        await run.log({"a": 2}, step=5)
        assert run.step == 5
        await run.log({"b": 3}, step=5)  # step 5 is still pending: this merges into it
    async with open_store(root / "runlog" / "runlog.db") as store:
        rows = [
            (r.event.step, r.event.metrics)
            async for r in store.read_all()
            if isinstance(r.event, StepLogged)
        ]
    assert rows == [(2, {"a": 1}), (5, {"a": 2, "b": 3})]  # finish() wrote the pending row


async def test_flush_commits_the_pending_row_and_moves_past_its_step(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1}, step=5)
        assert await logged_steps(run) == [(5, {"a": 1})]
        assert run.step == 6
        with pytest.warns(api.StepDroppedWarning):
            await run.log({"a": 2}, step=5)  # that step is written: later rows are dropped
        assert run.dropped_steps == 1


async def test_the_same_step_merges_into_the_pending_row(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1}, step=3)
        await run.log({"b": 2}, step=3)
        await run.log({"c": 3})  # no step: the current (3), then advance
        assert run.step == 4
        assert await logged_steps(run) == [(3, {"a": 1, "b": 2, "c": 3})]


async def test_a_lower_step_is_dropped_with_a_warning_and_counted(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1})
        await run.log({"a": 2})
        with pytest.warns(
            api.StepDroppedWarning, match="step 0 that is less than the current step 2"
        ):
            await run.log({"a": 9}, step=0)
        assert run.dropped_steps == 1
        assert await logged_steps(run) == [(0, {"a": 1}), (1, {"a": 2})]


async def test_the_dropped_step_warning_comes_once_per_run_and_every_drop_is_counted(
    root: Path,
) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1}, step=10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # even so: the run itself warns only once
            for step in range(5):
                await run.log({"a": 9}, step=step)
        assert [w.category for w in caught] == [api.StepDroppedWarning]
        assert run.dropped_steps == 5
    async with api.init(project="p", id="other") as other:
        await other.log({"a": 1}, step=3)
        with pytest.warns(api.StepDroppedWarning):  # another run warns for itself
            await other.log({"a": 1}, step=1)


def test_importing_api_leaves_the_global_warning_filters_alone() -> None:
    code = (
        "import warnings; before = list(warnings.filters); import api, api.sync; "
        "assert warnings.filters == before, warnings.filters[:3]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_the_warning_can_be_made_an_error(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1})
        with warnings.catch_warnings():
            warnings.simplefilter("error", api.StepDroppedWarning)
            with pytest.raises(api.StepDroppedWarning):
                await run.log({"a": 9}, step=0)
        assert await logged_steps(run) == [(0, {"a": 1})]


@pytest.mark.parametrize(
    "metrics",
    [{1: 2.0}, {"x": object()}, ["loss", 1.0], {"x": 1 + 2j}],
    ids=["int-key", "object", "list", "complex"],
)
async def test_bad_metrics_are_refused_at_log_and_nothing_else_is_lost(
    root: Path, metrics: object
) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1})
        with pytest.raises(InvalidArgument):
            await run.log(metrics)  # type: ignore[arg-type]
        await run.log({"a": 2})
        assert await logged_steps(run) == [(0, {"a": 1}), (1, {"a": 2})]


@pytest.mark.parametrize("step", [-1, 1.5, True])
async def test_a_bad_step_is_refused(root: Path, step: object) -> None:
    async with api.init(project="p", id="r") as run:
        with pytest.raises(InvalidArgument, match="step"):
            await run.log({"a": 1}, step=step)  # type: ignore[arg-type]


async def test_a_full_buffer_makes_log_wait_for_a_commit(root: Path) -> None:
    async with api.init(
        project="p", id="r", batch_size=10, max_buffer=50, flush_interval=60
    ) as run:
        for i in range(200):
            await run.log({"i": i})
            assert len(run._buffer) < 50  # the buffer never grows past max_buffer
        assert len(await logged_steps(run)) == 200


async def test_batches_commit_on_the_interval_without_flush(root: Path) -> None:
    import anyio

    async with api.init(project="p", id="r", flush_interval=0.05) as run:
        async with run.store.subscribe(2) as written:  # position 1 is RunInitialized
            await run.log({"a": 1})
            with anyio.fail_after(5):
                record = await anext(written)
        assert isinstance(record.event, StepLogged)


async def test_notes_set_and_kept(root: Path) -> None:
    async with api.init(project="p", id="r", notes="first") as run:
        assert run.notes == "first"
        run.notes = "second"
        await run.set_notes("third")
    async with api.init(project="p", id="r", resume="allow") as run:
        assert run.notes == "third"
        kinds = [type(r.event) async for r in run.store.read_all()]
        assert kinds.count(NotesEdited) == 2


async def test_heartbeats_are_written_only_when_nothing_else_was(root: Path) -> None:
    import anyio

    async with api.init(project="p", id="r", heartbeat_interval=0.1, flush_interval=0.02) as run:
        for _ in range(20):  # busy: every interval sees a write
            await run.log({"a": 1})
            await anyio.sleep(0.02)
        busy = [type(r.event) async for r in run.store.read_all()].count(Heartbeat)
        await anyio.sleep(0.5)  # idle
        idle = [type(r.event) async for r in run.store.read_all()].count(Heartbeat)
    assert busy <= 1
    assert idle >= 3


async def test_a_saved_file_is_restored_by_a_resumed_run_elsewhere(
    tmp_path: Path, store_target: str
) -> None:
    store = store_target
    checkpoint = tmp_path / "machine-a" / "model-best.h5"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(os.urandom(100_000))
    async with api.init(project="p", id="r", store=store, dir=tmp_path / "machine-a") as run:
        assert await run.save(checkpoint) == "model-best.h5"
        await run.finish(143)
    async with api.init(
        project="p", id="r", resume="must", store=store, dir=tmp_path / "machine-b"
    ) as run:
        restored = await run.restore("model-best.h5")
        assert restored == tmp_path / "machine-b" / "model-best.h5"
        assert restored.read_bytes() == checkpoint.read_bytes()
        with pytest.raises(InvalidArgument, match="saved no file 'nope'"):
            await run.restore("nope")


async def test_a_resume_keeps_and_replaces_fields_as_the_contract_says(root: Path) -> None:
    async with api.init(
        project="p",
        id="r",
        config={"opt": {"lr": 0.1, "m": 0.9}, "seed": 1},
        tags=["a"],
        name="first",
        notes="n1",
    ) as run:
        await run.log({"loss": 1.0, "acc": 0.1})
    async with api.init(
        project="p", id="r", resume="allow", config={"opt": {"lr": 0.01}}, tags=[]
    ) as run:
        assert run.config == {"opt": {"lr": 0.01}, "seed": 1}
        assert run.notes == "n1"
        await run.log({"loss": 0.5})
        await run.flush()
        async with open_projector(run.store) as projector:
            state = await projector.run("p", "r")
    assert state is not None
    assert (state.tags, state.name, state.summary) == (["a"], "first", {"loss": 0.5, "acc": 0.1})


async def test_mark_preempting_is_durable_and_idempotent_and_refused_after_finish(
    root: Path,
) -> None:
    run = await api.init(project="p", id="r")
    await run.mark_preempting()
    await run.mark_preempting()
    async with open_store(root / "runlog" / "runlog.db") as other:  # another connection sees it
        kinds = [type(r.event).__name__ async for r in other.read_all()]
    assert kinds.count("PreemptMarked") == 1
    await run.finish(143)
    with pytest.raises(api.RunFinishedError):
        await run.mark_preempting()
    with pytest.raises(api.RunFinishedError):
        await run.log({"a": 1})


async def test_a_run_declared_dead_while_alive_revives_on_its_next_write(root: Path) -> None:
    from eventstore import HeartbeatExpired, RunRevived

    async with api.init(project="p", id="r") as run:
        await run.log({"a": 1})
        await run.flush()
        # the watchdog (another writer) decides this incarnation went silent
        await run.store.append(
            "run:p/r",
            [HeartbeatExpired(incarnation=1, last_position=2, observed_at_us=0, timeout_s=300)],
        )
        async with open_projector(run.store) as projector:
            assert (await projector.run("p", "r")).status.value == "crashed"  # type: ignore[union-attr]
            await run.log({"a": 2})
            await run.flush()
            assert (await projector.run("p", "r")).status.value == "running"  # type: ignore[union-attr]
        kinds = [type(r.event) async for r in run.store.read_stream("run:p/r")]
    assert kinds[-3:-1] == [HeartbeatExpired, RunRevived]
    assert kinds[-1] is StepLogged
