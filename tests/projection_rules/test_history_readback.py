"""A run's history read back whole: every step with its metrics and time, in step order,
however many chunks the read-back takes and however the runs' events interleave."""

from __future__ import annotations

from eventstore import EventStore, StepLogged
from projections import open_projector

from ._log import init

STEPS = 12_000  # more than two read-back chunks


def _metrics(step: int) -> dict[str, float]:
    return {"loss": 1 / (step + 1), "acc": step / STEPS}


async def _interleaved_runs(store: EventStore) -> None:
    """Runs a and b, their steps appended in alternating batches of 700."""
    for run_id in ("a", "b"):
        await store.append(f"run:p/{run_id}", [init(run_id)], "no_stream")
    for start in range(0, STEPS, 700):
        for run_id in ("a", "b"):
            await store.append(
                f"run:p/{run_id}",
                [
                    StepLogged(incarnation=1, step=s, metrics=_metrics(s))
                    for s in range(start, min(start + 700, STEPS))
                ],
            )


async def test_a_full_history_reads_back_every_step_in_order(store: EventStore) -> None:
    await _interleaved_runs(store)
    async with open_projector(store) as projector:
        history = await projector.history("p", "b")
        assert [point.step for point in history] == list(range(STEPS))
        assert all(point.metrics == _metrics(point.step) for point in history)
        records = await store.read_positions([point.position for point in history[::997]])
        assert [r.stream for r in records] == ["run:p/b"] * len(records)
        assert [r.recorded_at_us for r in records] == [p.recorded_at_us for p in history[::997]]


async def test_a_history_window_with_keys_keeps_only_those_metrics(store: EventStore) -> None:
    await _interleaved_runs(store)
    async with open_projector(store) as projector:
        history = await projector.history("p", "a", keys=["acc"], start=4_990, stop=10_010)
    assert [point.step for point in history] == list(range(4_990, 10_010))
    assert all(point.metrics == {"acc": point.step / STEPS} for point in history)


async def test_catching_up_in_small_chunks_equals_the_replay(store: EventStore) -> None:
    await _interleaved_runs(store)
    async with open_projector(store, chunk=997) as projector:
        check = await projector.check()
        assert check.ok, check.differences
        assert check.history_rows == 2 * STEPS
        assert await projector.rebuild() == await store.head()
        assert (await projector.check()).ok
