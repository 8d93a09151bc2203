"""A resume is decided from the run's head, never by catching up the shared read model.

After a crash the read model may be far behind the log; ``init`` must decide (exists?
which incarnation? from which step?) from the run head the store keeps in every
append's transaction, and must not fold the backlog first.
"""

from __future__ import annotations

import pytest

import api
from eventstore import RunInitialized, StepLogged, open_store, run_stream
from projections import open_projector

pytestmark = pytest.mark.anyio


async def _crashed_run_with_unfolded_steps(target: str, steps: int) -> int:
    """A run that logged ``steps`` steps and died, written straight to the log (as a
    crashed trainer leaves it) while the read model stays at position 0."""
    async with open_store(target) as store, open_projector(store) as projector:
        stream = run_stream("p", "r1")
        await store.append(
            stream,
            [RunInitialized(project="p", run_id="r1", incarnation=1, resumed=False, starting_step=0)],
        )
        for first in range(0, steps, 1000):
            await store.append(
                stream,
                [
                    StepLogged(incarnation=1, step=s, metrics={"loss": float(s)})
                    for s in range(first, min(first + 1000, steps))
                ],
            )
        assert await projector.stored_position() == 0
        return await store.head()


async def test_resume_is_decided_without_folding_the_backlog(store_target: str) -> None:
    head = await _crashed_run_with_unfolded_steps(store_target, 3000)
    run = await api.init(project="p", id="r1", resume="must")
    assert (run.resumed, run.step) == (True, 3000)
    await run.log({"loss": 0.0})
    await run.finish()
    async with open_store(store_target) as store, open_projector(store) as projector:
        assert await projector.stored_position() < head  # init left the backlog alone
        state = await projector.run("p", "r1")  # and the read model agrees once caught up
        assert state is not None
        assert (state.incarnation, state.last_step) == (2, 3000)


async def test_a_store_passed_open_keeps_heads_once_init_uses_it(store_target: str) -> None:
    await _crashed_run_with_unfolded_steps(store_target, 10)
    async with open_store(store_target) as store:
        run = await api.init(project="p", id="r1", resume="allow", store=store)
        assert (run.resumed, run.step) == (True, 10)
        await run.finish()
        assert store.inline is not None  # type: ignore[attr-defined]
        stored = await store.stored_heads()  # type: ignore[attr-defined]
        version = await store.stream_version("run:p/r1")
        assert [(h.stream, h.version) for h in stored] == [("run:p/r1", version)]
