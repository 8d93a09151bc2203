"""The resume argument (contract §3): normalisation, the mode x existence table, races."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import api
from eventstore import open_store
from projections import open_projector

# Every test here runs on a SQLite file and on PostgreSQL (RUNLOG_STORE).
pytestmark = pytest.mark.usefixtures("store_target")


async def start_and_finish(run_id: str = "r1", exit_code: int = 0, steps: int = 3) -> None:
    run = await api.init(project="p", id=run_id)
    for _ in range(steps):
        await run.log({"loss": 1.0})
    await run.finish(exit_code)


# --- §3.3 mode x existence ----------------------------------------------------------------


@pytest.mark.parametrize("resume", [None, False, "never"])
async def test_an_existing_run_is_not_overwritten_without_resume(
    root: Path, resume: object
) -> None:
    await start_and_finish()
    with pytest.raises(api.RunAlreadyExists) as caught:
        await api.init(project="p", id="r1", resume=resume)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "'r1'" in message
    assert "'p'" in message
    assert 'resume="allow"' in message


@pytest.mark.parametrize("resume", [None, False, "never", "allow", "auto", True])
async def test_a_missing_run_is_created_and_not_resumed(root: Path, resume: object) -> None:
    async with api.init(project="p", id="r1", resume=resume) as run:  # type: ignore[arg-type]
        assert (run.resumed, run.step, run.incarnation) == (False, 0, 1)


@pytest.mark.parametrize("resume", ["allow", "auto", True, "must"])
async def test_an_existing_run_is_resumed_at_the_next_step(root: Path, resume: object) -> None:
    await start_and_finish(steps=3)
    async with api.init(project="p", id="r1", resume=resume) as run:  # type: ignore[arg-type]
        assert (run.resumed, run.starting_step, run.step, run.incarnation) == (True, 3, 3, 2)


async def test_must_on_a_missing_run_is_run_not_found(root: Path) -> None:
    with pytest.raises(api.RunNotFound, match="'r9' was never started in project 'p'"):
        await api.init(project="p", id="r9", resume="must")


async def test_a_resume_of_a_run_without_history_starts_at_step_0(root: Path) -> None:
    await start_and_finish(steps=0)
    async with api.init(project="p", id="r1", resume="allow") as run:
        assert (run.resumed, run.starting_step) == (True, 0)


@pytest.mark.parametrize("status_code", [0, 1, 143])
async def test_any_ended_run_resumes_as_running(root: Path, status_code: int) -> None:
    await start_and_finish(exit_code=status_code)
    async with (
        api.init(project="p", id="r1", resume="allow") as run,
        open_projector(run.store) as projector,
    ):
        state = await projector.run("p", "r1")
        assert state is not None
        assert state.status.value == "running"


async def test_must_while_another_run_is_active_is_refused(root: Path) -> None:
    await start_and_finish("r1")
    async with api.init(project="p", id="other"):
        with pytest.raises(api.ActiveRunError, match="another run is active"):
            await api.init(project="p", id="r1", resume="must")
        async with api.init(project="p", id="r1", resume="must", reinit="create_new") as run:
            assert run.resumed


# --- §3.1 normalisation -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["sometimes", "ALLOW", ""])
async def test_an_unknown_resume_string_is_refused(root: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a resume mode"):
        await api.init(project="p", resume=bad)


async def test_the_legacy_resume_run_id_form_says_what_to_write(root: Path) -> None:
    with pytest.raises(ValueError, match="id='abc12345', resume=\"allow\""):
        await api.init(project="p", resume="abc12345")


# --- §3.3 atomic decision -----------------------------------------------------------------


async def test_two_racing_allows_give_one_creation_and_one_resume(store_target: str) -> None:
    async with open_store(store_target) as store:
        runs: list[api.Run] = []

        async def start() -> None:
            runs.append(await api.init(project="p", id="r1", resume="allow", store=store))

        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            tg.start_soon(start)
        assert sorted(r.resumed for r in runs) == [False, True]
        assert sorted(r.incarnation for r in runs) == [1, 2]
        older = min(runs, key=lambda r: r.incarnation)
        newer = max(runs, key=lambda r: r.incarnation)
        await newer.finish()
        await older.log({"x": 1.0})  # buffered; the write is what gets fenced
        with pytest.raises(api.FencedWriter):
            await older.flush()
        with pytest.raises(api.FencedWriter):
            await older.finish()
