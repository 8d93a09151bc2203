"""The W&B surface's events (summary, config, metric definitions, rewind, fork) fold to
the same state and history on every path: incremental, one at a time, rebuilt."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import (
    ConfigUpdated,
    Event,
    MetricDefined,
    RecordedEvent,
    RunForked,
    RunInitialized,
    RunRewound,
    StepLogged,
    SummaryUpdated,
)
from projections import Fold

from .._backends import Backend
from .test_properties import PROPERTY, RUNS, incarnations, play, run_events, sweep_events

wandb_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        SummaryUpdated,
        values=st.sampled_from([{"best": 1.0}, {"loss": 0.5}, {}]),
        incarnation=st.one_of(st.none(), incarnations),
        removed=st.sampled_from([[], ["acc"], ["best"]]),
    ),
    st.builds(
        ConfigUpdated,
        values=st.sampled_from([{"lr": 0.3}, {"bs": 8}]),
        incarnation=st.one_of(st.none(), incarnations),
    ),
    st.builds(
        MetricDefined,
        name=st.sampled_from(["loss", "acc", "l*"]),
        incarnation=incarnations,
        summary=st.sampled_from([None, "min", "max,last", "bogus"]),
        goal=st.sampled_from([None, "maximize"]),
    ),
    st.builds(
        RunRewound,
        incarnation=incarnations,
        step=st.integers(0, 12),
        summary=st.sampled_from([{}, {"loss": 2.0}]),
        rows=st.integers(0, 5),
        last_step=st.one_of(st.none(), st.integers(0, 12)),
    ),
    st.builds(
        RunForked,
        source_project=st.just("p"),
        source_run_id=st.sampled_from(RUNS),
        step=st.integers(0, 12),
        source_position=st.integers(0, 40),
        summary=st.sampled_from([{}, {"loss": 2.0}]),
    ),
)
entries = st.one_of(
    st.tuples(st.sampled_from([f"run:p/{r}" for r in RUNS]), st.one_of(run_events, wandb_events)),
    st.tuples(st.just("sweep:s"), sweep_events),
)
scripts = st.lists(st.one_of(st.none(), st.lists(entries, min_size=1, max_size=4)), max_size=30)


@PROPERTY
@given(script=scripts, chunk=st.integers(1, 8), restart_at=st.one_of(st.none(), st.integers(0, 29)))
def test_every_path_folds_the_wandb_events_to_the_same_state(
    backend: Backend, script, chunk: int, restart_at: int | None
) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(play(backend.target(Path(tmp)), script, chunk, restart_at))


def test_a_rewind_folds_summary_rows_and_the_cut() -> None:
    events: list[Event] = [
        RunInitialized(project="p", run_id="r", incarnation=1, resumed=False, starting_step=0),
        *[StepLogged(incarnation=1, step=s, metrics={"loss": float(s)}) for s in range(5)],
        RunRewound(incarnation=2, step=1, summary={"loss": 1.0}, rows=2, last_step=1),
        RunInitialized(project="p", run_id="r", incarnation=2, resumed=True, starting_step=2),
        StepLogged(incarnation=2, step=2, metrics={"loss": 9.0}),
    ]
    model = Fold()
    for position, event in enumerate(events, start=1):
        model.apply(RecordedEvent(position, "run:p/r", position - 1, 1000 + position, event))
    state = model.runs[("p", "r")]
    assert (state.summary, state.steps, state.last_step, state.next_step) == (
        {"loss": 9.0},
        3,
        2,
        3,
    )
    assert state.rewinds == [(1, 7)]


def test_the_folds_old_name_model_still_works_with_a_deprecation_warning() -> None:
    import projections

    with pytest.warns(DeprecationWarning, match="projections.Fold"):
        old = projections.Model
    assert old is Fold
