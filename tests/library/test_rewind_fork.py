"""Rewind (``resume_from``) and fork (``fork_from``), contract §3.4: every rule and
error, history and summary as of the rewind, the original segment readable as of its
position, and two rewinds in a row, exactly; through a real SQLite store."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import api
from eventstore import InvalidArgument, open_store
from projections import RunState, history_as_of, open_projector

STORE = Path("runlog") / "runlog.db"


async def log_steps(run: api.Run, steps: range, tag: str) -> None:
    for step in steps:
        await run.log({"loss": f"{tag}{step}"}, step=step)


async def history(root: Path, run_id: str = "r") -> list[tuple[int, Any]]:
    async with open_store(root / STORE) as store, open_projector(store) as projector:
        points = await projector.history("p", run_id)
    return [(p.step, p.metrics["loss"]) for p in points]


async def state_of(root: Path, run_id: str = "r") -> RunState:
    async with open_store(root / STORE) as store, open_projector(store) as projector:
        state = await projector.run("p", run_id)
        check = await projector.check()
    assert check.ok, check.differences
    assert state is not None
    return state


async def head(root: Path) -> int:
    async with open_store(root / STORE) as store:
        return await store.head()


def expected(*segments: tuple[range, str]) -> list[tuple[int, str]]:
    return [(step, f"{tag}{step}") for steps, tag in segments for step in steps]


@pytest.mark.parametrize(
    "value",
    ["r", "r?_step", "r?_step=", "r?epoch=3", "r?_step=-1", "r?_step=2.5", "r?_step=x", 7],
)
async def test_a_malformed_resume_from_names_the_expected_format(root: Path, value: Any) -> None:
    with pytest.raises(ValueError, match=r'"<run_id>\?_step=<n>"'):
        await api.init(project="p", resume_from=value)


async def test_resume_resume_from_and_fork_from_are_mutually_exclusive(root: Path) -> None:
    message = "`fork_from`, `resume`, or `resume_from` are mutually exclusive"
    with pytest.raises(ValueError, match=message):
        await api.init(project="p", resume="allow", resume_from="r?_step=1")
    with pytest.raises(ValueError, match=message):
        await api.init(project="p", resume_from="r?_step=1", fork_from="r?_step=1")


async def test_a_resume_from_the_environment_counts_for_the_exclusion(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_RESUME", "allow")
    with pytest.raises(ValueError, match="mutually exclusive"):
        await api.init(project="p", fork_from="r?_step=1")


async def test_rewinding_a_run_that_never_started_is_run_not_found(root: Path) -> None:
    with pytest.raises(api.RunNotFound, match="'r' was never started"):
        await api.init(project="p", resume_from="r?_step=0")


async def test_rewinding_past_the_last_logged_step_is_refused(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await log_steps(run, range(3), "a")
    with pytest.raises(ValueError, match="step 3 is after the last logged step"):
        await api.init(project="p", resume_from="r?_step=3")


async def test_rewinding_with_another_id_is_refused(root: Path) -> None:
    with pytest.raises(ValueError, match="differs from the run in resume_from"):
        await api.init(project="p", id="other", resume_from="r?_step=1")


async def test_a_rewind_hides_the_later_rows_and_continues_from_n_plus_one(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await log_steps(run, range(10), "a")
    before = await head(root)
    async with api.init(project="p", resume_from="r?_step=4") as run:
        assert (run.id, run.step, run.starting_step, run.resumed) == ("r", 5, 5, True)
        await log_steps(run, range(5, 8), "b")
    assert await history(root) == expected((range(5), "a"), (range(5, 8), "b"))
    state = await state_of(root)
    assert (state.last_step, state.next_step, state.steps) == (7, 8, 8)
    async with open_store(root / STORE) as store:
        original = await history_as_of(store, "p", "r", before)
    assert [(p.step, p.metrics["loss"]) for p in original] == expected((range(10), "a"))


async def test_the_summary_is_recomputed_as_of_the_rewind_step(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        run.define_metric("best", summary="min")
        for step in range(6):
            await run.log({"loss": 10 - step, "best": 10 - step}, step=step)
            if step == 2:
                run.summary["note"] = "after step 2"
        await run.log({"late": 1}, step=6)
        run.summary["note"] = "at the end"
    async with api.init(project="p", resume_from="r?_step=3") as run:
        assert dict(run.summary) == {"loss": 7, "best.min": 7, "note": "after step 2"}
        await run.log({"loss": 0.5, "best": 0.5})
        client = dict(run.summary)
    assert client == {"loss": 0.5, "best.min": 0.5, "note": "after step 2"}
    assert (await state_of(root)).summary == client


async def test_a_rewind_merges_the_config_as_a_resume_does(root: Path) -> None:
    async with api.init(project="p", id="r", config={"lr": 0.1, "bs": 8}) as run:
        await log_steps(run, range(3), "a")
    async with api.init(project="p", resume_from="r?_step=1", config={"lr": 0.05}) as run:
        assert dict(run.config) == {"lr": 0.05, "bs": 8}


async def test_two_rewinds_in_a_row_are_each_exact(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await log_steps(run, range(10), "a")
    async with api.init(project="p", resume_from="r?_step=6") as run:
        await log_steps(run, range(7, 9), "b")
    after_first = await head(root)
    async with api.init(project="p", resume_from="r?_step=3") as run:
        assert run.step == 4
        await log_steps(run, range(4, 6), "c")
    assert await history(root) == expected((range(4), "a"), (range(4, 6), "c"))
    async with api.init(project="p", resume_from="r?_step=5") as run:
        await log_steps(run, range(6, 9), "d")
    assert await history(root) == expected((range(4), "a"), (range(4, 6), "c"), (range(6, 9), "d"))
    state = await state_of(root)
    assert (state.steps, state.last_step, state.summary) == (9, 8, {"loss": "d8"})
    assert [step for step, _ in state.rewinds] == [6, 3, 5]
    async with open_store(root / STORE) as store:
        first = await history_as_of(store, "p", "r", after_first)
    assert [(p.step, p.metrics["loss"]) for p in first] == expected(
        (range(7), "a"), (range(7, 9), "b")
    )


async def test_a_rewind_to_a_step_of_the_new_segment_keeps_it(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await log_steps(run, range(10), "a")
    async with api.init(project="p", resume_from="r?_step=2") as run:
        await log_steps(run, range(3, 6), "b")
    async with api.init(project="p", resume_from="r?_step=4") as run:
        await log_steps(run, range(5, 7), "c")
    assert await history(root) == expected((range(3), "a"), (range(3, 5), "b"), (range(5, 7), "c"))


async def test_a_fork_is_a_new_run_starting_with_the_sources_history(root: Path) -> None:
    async with api.init(project="p", id="src", config={"lr": 0.1}) as run:
        await log_steps(run, range(6), "a")
        run.summary["kept"] = True
    async with api.init(project="p", id="f", fork_from="src?_step=2") as run:
        assert (run.step, run.starting_step, run.resumed) == (3, 3, False)
        assert dict(run.summary) == {"loss": "a2"}
        assert run.config.lr == 0.1
        await log_steps(run, range(3, 5), "f")
    assert await history(root, "f") == expected((range(3), "a"), (range(3, 5), "f"))
    assert await history(root, "src") == expected((range(6), "a"))
    state = await state_of(root, "f")
    assert state.forked_from is not None
    assert state.forked_from[:3] == ("p", "src", 2)
    assert (state.steps, state.last_step, state.summary) == (5, 4, {"loss": "f4"})


async def test_a_fork_keeps_the_source_history_it_was_forked_from(root: Path) -> None:
    async with api.init(project="p", id="src") as run:
        await log_steps(run, range(6), "a")
    async with api.init(project="p", id="f", fork_from="src?_step=4") as run:
        pass
    async with api.init(project="p", resume_from="src?_step=1") as run:
        await log_steps(run, range(2, 6), "b")  # the source re-logs the forked steps
    assert await history(root, "f") == expected((range(5), "a"))


async def test_a_fork_of_a_fork_and_a_rewind_into_the_source_part(root: Path) -> None:
    async with api.init(project="p", id="a") as run:
        await log_steps(run, range(4), "a")
    async with api.init(project="p", id="b", fork_from="a?_step=3") as run:
        await log_steps(run, range(4, 6), "b")
    async with api.init(project="p", id="c", fork_from="b?_step=4") as run:
        await log_steps(run, range(5, 7), "c")
    assert await history(root, "c") == expected(
        (range(4), "a"), (range(4, 5), "b"), (range(5, 7), "c")
    )
    async with api.init(project="p", resume_from="c?_step=1") as run:
        assert dict(run.summary) == {"loss": "a1"}
        await log_steps(run, range(2, 3), "d")
    assert await history(root, "c") == expected((range(2), "a"), (range(2, 3), "d"))


async def test_fork_errors(root: Path) -> None:
    with pytest.raises(api.RunNotFound, match="'src' was never started"):
        await api.init(project="p", fork_from="src?_step=0")
    async with api.init(project="p", id="src") as run:
        await log_steps(run, range(3), "a")
    with pytest.raises(ValueError, match="use resume_from"):
        await api.init(project="p", id="src", fork_from="src?_step=1")
    with pytest.raises(ValueError, match="after the last logged step"):
        await api.init(project="p", fork_from="src?_step=9")
    async with api.init(project="p", id="taken"):
        pass
    with pytest.raises(api.RunAlreadyExists, match="a fork is a new run"):
        await api.init(project="p", id="taken", fork_from="src?_step=1")
    with pytest.raises(InvalidArgument):
        await api.init(project="p", fork_from="src?loss=1")


def test_the_blocking_facade_rewinds_too(root: Path) -> None:
    from api import sync

    with sync.init(project="p", id="r") as run:
        for step in range(5):
            run.log({"loss": step})
    with sync.init(project="p", resume_from="r?_step=2") as run:
        assert run.step == 3


async def test_two_rewinds_in_a_row_are_exact_on_every_backend(store_target: str) -> None:
    async with api.init(project="p", id="r") as run:
        await log_steps(run, range(8), "a")
    async with api.init(project="p", resume_from="r?_step=5") as run:
        await log_steps(run, range(6, 8), "b")
    async with api.init(project="p", resume_from="r?_step=2") as run:
        await log_steps(run, range(3, 5), "c")
    async with open_store(store_target) as store, open_projector(store) as projector:
        points = await projector.history("p", "r")
        state = await projector.run("p", "r")
        check = await projector.check()
    assert [(p.step, p.metrics["loss"]) for p in points] == expected(
        (range(3), "a"), (range(3, 5), "c")
    )
    assert state is not None
    assert (state.steps, state.last_step, state.summary) == (5, 4, {"loss": "c4"})
    assert check.ok, check.differences


CRASHING = """
import os, signal, sys
import api

async def main():
    run = await api.init(project="p", id="r", resume_from=sys.argv[1] or None)
    for step in range(run.step, 10):
        await run.log({"loss": f"{sys.argv[2]}{step}"})
        await run.flush()
    if sys.argv[2] == "a":
        os.kill(os.getpid(), signal.SIGKILL)  # the crash: nothing more is written
    await run.finish()

import asyncio
asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_crashed_run_re_logs_the_steps_after_its_checkpoint(root: Path) -> None:
    crashed = await anyio.run_process(
        [sys.executable, "-c", CRASHING, "", "a"], cwd=root, check=False
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    again = await anyio.run_process(
        [sys.executable, "-c", CRASHING, "r?_step=5", "b"], cwd=root, check=False
    )
    assert again.returncode == 0, again.stderr
    assert await history(root) == expected((range(6), "a"), (range(6, 10), "b"))
    state = await state_of(root)
    assert (state.status.value, state.incarnation, state.summary) == ("finished", 2, {"loss": "b9"})
