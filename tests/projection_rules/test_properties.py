"""Property-based: any event sequence folds to the same state on every path."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    AgentHeartbeat,
    AgentStarted,
    ClaimLapsed,
    Event,
    Heartbeat,
    HeartbeatExpired,
    MetricDefined,
    NotesEdited,
    PreemptMarked,
    RecordedEvent,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunKilled,
    RunRevived,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    SweepCancelled,
    SweepCreated,
    SweepFinished,
    SweepPaused,
    SweepResumed,
    SweepStopped,
    open_store,
)
from projections import Fold, RunHeads, RunStatus, check_heads, open_projector, run_heads

from .._backends import Backend

RUNS = ["a", "b", "c"]
incarnations = st.integers(1, 3)

run_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        RunInitialized,
        project=st.just("p"),
        run_id=st.just("x"),  # the fold takes the id from the stream
        incarnation=incarnations,
        resumed=st.booleans(),
        starting_step=st.integers(0, 5),
        sweep_id=st.sampled_from([None, "s"]),
        tags=st.sampled_from([None, [], ["t"]]),
        notes=st.sampled_from([None, "n"]),
        config=st.sampled_from([{}, {"lr": 0.1}, {"lr": 0.2, "opt": {"m": 1}}]),
    ),
    st.builds(
        StepLogged,
        incarnation=incarnations,
        step=st.integers(0, 12),
        metrics=st.sampled_from([{"loss": 1.0}, {"acc": 0.5}]),
    ),
    st.builds(PreemptMarked, incarnation=incarnations),
    st.builds(Heartbeat, incarnation=incarnations),
    st.builds(
        RunExited,
        incarnation=incarnations,
        exit_code=st.sampled_from([0, 1, 130, 143, 254, 255]),
        interrupted=st.booleans(),
    ),
    st.builds(
        HeartbeatExpired,
        incarnation=incarnations,
        last_position=st.just(0),
        observed_at_us=st.just(0),
        timeout_s=st.just(300.0),
    ),
    st.builds(RunKilled, reason=st.just("r"), incarnation=st.one_of(st.none(), incarnations)),
    st.builds(RunRevived, incarnation=incarnations),
    st.builds(RunStopRequested, incarnation=incarnations, reason=st.just("stop")),
    st.builds(NotesEdited, notes=st.just("e"), incarnation=st.one_of(st.none(), incarnations)),
)
sweep_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        SweepCreated,
        sweep_id=st.just("s"),
        project=st.just("p"),
        method=st.just("grid"),
        config=st.just({}),
        seed=st.just(1),
    ),
    st.builds(RunScheduled, run_id=st.sampled_from(RUNS), params=st.just({"lr": 0.1})),
    st.builds(
        RunClaimed,
        run_id=st.sampled_from(RUNS),
        agent_id=st.sampled_from(["g1", "g2"]),
        requeue=st.booleans(),
    ),
    st.builds(ClaimLapsed, run_id=st.sampled_from(RUNS), claim_position=st.integers(1, 40)),
    st.builds(AgentStarted, agent_id=st.just("g1")),
    st.builds(AgentHeartbeat, agent_id=st.just("g1"), run_ids=st.just(["a"])),
    st.sampled_from(
        [
            SweepPaused(),
            SweepResumed(),
            SweepStopped(),
            SweepCancelled(),
            SweepFinished(reason="exhausted"),
        ]
    ),
)
entries = st.one_of(
    st.tuples(st.sampled_from([f"run:p/{r}" for r in RUNS]), run_events),
    st.tuples(st.just("sweep:s"), sweep_events),
)
# Each inner list is one append; None marks a query (a catch-up) between appends.
scripts = st.lists(st.one_of(st.none(), st.lists(entries, min_size=1, max_size=4)), max_size=30)

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


async def play(
    target: str, script: list[list[tuple[str, Event]] | None], chunk: int, restart_at: int | None
) -> None:
    store = await open_store(target)
    projector = await open_projector(store, chunk=chunk)
    try:
        for index, step in enumerate(script):
            if index == restart_at and target != ":memory:":
                await projector.aclose()
                await store.aclose()
                store = await open_store(target)
                projector = await open_projector(store, chunk=chunk)
            if step is None:
                await projector.catch_up()
                await check_queue_invariants(projector)
                continue
            for stream, event in step:
                await store.append(stream, [event])
        check = await projector.check()
        assert check.ok, check.differences
        model = Fold()
        for record in [r async for r in store.read_all()]:
            model.apply(record)  # one by one: the reference the fast paths must equal
        assert {(r.project, r.run_id): r for r in await projector.runs()} == model.runs
        assert {s.sweep_id: s for s in await projector.sweeps()} == model.sweeps
        await check_queue_invariants(projector)
        await projector.rebuild()
        assert {(r.project, r.run_id): r for r in await projector.runs()} == model.runs
    finally:
        await projector.aclose()
        await store.aclose()


async def check_queue_invariants(projector) -> None:  # type: ignore[no-untyped-def]
    for sweep in await projector.sweeps():
        assert len(sweep.queue) == len(set(sweep.queue)), "a run is queued twice"
        for run_id in sweep.queue:
            run = await projector.run(sweep.project, run_id)
            assert run is not None
            assert run.status is RunStatus.PREEMPTED, f"{run_id} is queued while {run.status}"
            assert run.claimed_by is None, f"{run_id} is queued while claimed"
            assert run_id not in sweep.claims
        counted = sum(sweep.counts.values())
        members = [r for r in await projector.runs() if r.sweep_id == sweep.sweep_id]
        assert counted == len(members)
        for status in RunStatus:
            assert sweep.counts.get(status.value, 0) == sum(r.status is status for r in members)


@PROPERTY
@given(script=scripts, chunk=st.integers(1, 8), restart_at=st.one_of(st.none(), st.integers(0, 29)))
def test_every_path_folds_to_the_same_state(
    backend: Backend, script, chunk: int, restart_at: int | None
) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(play(backend.target(Path(tmp)), script, chunk, restart_at))


step_stretches = st.lists(
    st.tuples(
        st.sampled_from([f"run:p/{r}" for r in RUNS]),
        st.integers(1, 3),  # incarnation
        st.lists(st.integers(0, 12), min_size=1, max_size=6),  # steps, some dropped
    ),
    max_size=6,
)


@PROPERTY
@given(
    st.lists(st.one_of(entries, step_stretches), max_size=40),
    st.lists(st.integers(1, 12), min_size=1, max_size=8),
)
def test_folding_a_batch_equals_folding_one_event_at_a_time(items, cuts) -> None:  # type: ignore[no-untyped-def]
    events: list[tuple[str, Event]] = []
    for item in items:
        if isinstance(item, list):
            for stream, incarnation, steps in item:
                if steps[0] % 2 == 0:  # often start the incarnation the steps belong to
                    events.append(
                        (
                            stream,
                            RunInitialized(
                                project="p",
                                run_id="x",
                                incarnation=incarnation,
                                resumed=incarnation > 1,
                                starting_step=0,
                                sweep_id="s" if incarnation == 2 else None,
                            ),
                        )
                    )
                events.extend(
                    (
                        stream,
                        StepLogged(step=s, metrics={"loss": float(s)}, incarnation=incarnation),
                    )
                    for s in steps
                )
        else:
            events.append(item)
    records = [
        RecordedEvent(position, stream, 0, 1000 + position, event)
        for position, (stream, event) in enumerate(events, start=1)
    ]
    one_by_one = Fold()
    for record in records:
        one_by_one.apply(record)
    batched = Fold()
    start, cut = 0, 0
    while start < len(records):
        size = cuts[cut % len(cuts)]
        batched.apply_all(records[start : start + size])
        start, cut = start + size, cut + 1
    assert batched.runs == one_by_one.runs
    assert batched.sweeps == one_by_one.sweeps
    assert batched.history == one_by_one.history
    assert batched.position == one_by_one.position


class CountingModel(Fold):
    """A Fold that counts the events folded one at a time."""

    one_at_a_time = 0

    def apply(self, record: RecordedEvent) -> None:
        self.one_at_a_time += 1
        super().apply(record)


def test_a_stretch_of_one_writers_steps_is_folded_in_one_pass() -> None:
    # Without this, the property above could compare the slow path with itself.
    start = RunInitialized(project="p", run_id="x", incarnation=1, resumed=False, starting_step=0)
    events = [start] + [StepLogged(step=s, metrics={"loss": 1.0}, incarnation=1) for s in range(5)]
    records = [RecordedEvent(p, "run:p/a", p - 1, 1000 + p, e) for p, e in enumerate(events, 1)]
    model = CountingModel()
    model.apply_all(records)
    assert model.one_at_a_time == 1  # the RunInitialized; the five steps in one pass
    assert model.runs[("p", "a")].steps == 5


# --- run heads (the store's inline projection) ----------------------------------------

head_events = st.one_of(
    run_events,
    st.builds(
        StepLogged,
        incarnation=incarnations,
        step=st.integers(0, 12),
        metrics=st.sampled_from([{"loss": 1.0, "acc": 0.1}, {"loss": 0.5}]),
    ),
    st.builds(
        MetricDefined,
        name=st.just("loss"),
        incarnation=incarnations,
        summary=st.sampled_from([None, "min", "max,last"]),
    ),
)
# Each append: (through the store that keeps heads?, the run, its events).
head_scripts = st.lists(
    st.tuples(st.booleans(), st.sampled_from(RUNS), st.lists(head_events, min_size=1, max_size=6)),
    max_size=25,
)


@given(script=head_scripts)
@PROPERTY
def test_a_run_head_is_the_fold_of_its_stream_however_it_was_written(script) -> None:  # type: ignore[no-untyped-def]
    async def play_heads(path: Path) -> None:
        async with (
            open_store(path, inline=run_heads()) as keeping,
            open_store(path) as plain,  # appends that leave heads behind
        ):
            for inline, run, events in script:
                await (keeping if inline else plain).append(f"run:p/{run}", events)
            for run in RUNS:
                stream = f"run:p/{run}"
                records = [r async for r in keeping.read_stream(stream)]
                head = await keeping.stream_head(stream)  # type: ignore[attr-defined]
                if not records:
                    assert head is None
                    continue
                model = Fold()
                for record in records:
                    model.apply(record)  # one by one: the reference
                expected = model.runs.get(("p", run))
                state = RunHeads.decode(head.state)
                if expected is None:
                    assert state is None
                    continue
                assert state is not None
                if expected.started and expected.sweep_id is None:
                    # The head names the sweep a run's init named, sweep or not.
                    expected.sweep_id = next(
                        (
                            r.event.sweep_id
                            for r in records
                            if isinstance(r.event, RunInitialized) and r.event.sweep_id
                        ),
                        None,
                    )
                assert state == expected
            assert (await check_heads(keeping)).ok

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(play_heads(Path(tmp) / "store.db"))
