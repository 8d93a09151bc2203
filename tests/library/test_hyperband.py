"""Hyperband early termination (contract §9.6): the bands, the rule, and the stop."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import api
from api._sweeping._hyperband import (
    Hyperband,
    HyperbandController,
    decide_stops,
    parse_early_terminate,
)
from eventstore import (
    AgentStarted,
    Event,
    EventStore,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunInitialized,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    SweepCreated,
    open_store,
)
from projections import RunStatus, open_projector

METRIC = {"name": "loss", "goal": "minimize"}

# A fixed history: every run's loss values in order, and whether it still runs.
HISTORY: dict[str, tuple[list[float], str]] = {
    "a": ([5, 4, 3, 2, 1, 1], "finished"),
    "b": ([5, 5, 5, 5, 5, 5], "finished"),
    "c": ([6, 6, 6, 6, 6, 6], "finished"),
    "d": ([9, 9, 9], "running"),  # worse than band 2's threshold: stopped by either rule
    "e": ([5, 6, 3], "running"),  # 6 at band 2 (strict stops), min 3 (lenient keeps)
    "f": ([9, 4.9, 9, 9, 9, 9, 9], "running"),  # band 6: 9 there, min 4.9
    "g": ([1], "running"),  # no band reached yet
    "h": ([9, 9, 9], "preempting"),  # bad, but only running runs are stopped
}
# min_iter 2, eta 3: bands 2, 6. Band 2 takes each run's 2nd value (4, 5, 6, 9, 6, 4.9,
# 9), sorted, at index 7 // 3 = 2: 5. Band 6 (1, 5, 6, 9) at index 4 // 3 = 1: 5.
EXPECTED = {False: ["d"], True: ["d", "e", "f"]}


def rule(**spec: object) -> Hyperband:
    parsed = parse_early_terminate({"type": "hyperband", **spec}, METRIC)
    assert parsed is not None
    return parsed


def test_max_iter_and_s_give_the_contracts_bands() -> None:
    assert rule(max_iter=27, s=2, eta=3).bands(100) == [3, 9]


def test_min_iter_bands_grow_by_eta() -> None:
    assert rule(min_iter=3).bands(100) == [3, 9, 27, 81]


def test_strict_defaults_to_the_lenient_rule() -> None:
    assert rule(min_iter=3).strict is False


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "envelope", "min_iter": 3}, "early_terminate.type: must be 'hyperband'"),
        ({"type": "hyperband"}, "early_terminate.min_iter: give min_iter"),
        ({"type": "hyperband", "max_iter": 27}, "early_terminate.s: max_iter needs s"),
        ({"type": "hyperband", "min_iter": 3, "eta": 1}, "early_terminate.eta: must be"),
        ({"type": "hyperband", "min_iter": 0}, "early_terminate.min_iter: must be an integer"),
        ({"type": "hyperband", "max_iter": 2, "s": 1}, "early_terminate.max_iter: 2 / eta"),
        ({"type": "hyperband", "min_iter": 3, "strict": "yes"}, "early_terminate.strict"),
    ],
)
def test_a_bad_early_terminate_is_refused_naming_the_key(
    spec: dict[str, object], message: str
) -> None:
    config = {"method": "random", "metric": METRIC, "parameters": {"x": {"values": [1]}}}
    with pytest.raises(api.SweepConfigError, match=message.replace(".", r"\.")):
        api.load_sweep_config({**config, "early_terminate": spec})


def test_hyperband_without_a_metric_is_refused() -> None:
    config = {"method": "random", "parameters": {"x": {"values": [1]}}}
    with pytest.raises(api.SweepConfigError, match="add metric"):
        api.load_sweep_config({**config, "early_terminate": {"type": "hyperband", "min_iter": 3}})


def test_an_unknown_early_terminate_key_warns() -> None:
    config = {"method": "random", "metric": METRIC, "parameters": {"x": {"values": [1]}}}
    spec = {"type": "hyperband", "min_iter": 3, "max_itr": 27}
    with pytest.warns(UserWarning, match="early_terminate.max_itr: unknown key"):
        api.load_sweep_config({**config, "early_terminate": spec})


def running(statuses: Sequence[str] = ("running",)) -> list[str]:
    return [run_id for run_id, (_, status) in HISTORY.items() if status in statuses]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_the_rule_stops_exactly_the_runs_worse_than_their_bands_threshold(strict: bool) -> None:
    histories = {run_id: values for run_id, (values, _) in HISTORY.items()}
    stops = decide_stops(rule(min_iter=2, strict=strict), "minimize", histories, running())
    assert [s.run_id for s in stops] == EXPECTED[strict]
    assert (stops[0].band, stops[0].value, stops[0].threshold) == (2, 9, 5)


def test_maximising_mirrors_minimising() -> None:
    histories = {run_id: [-v for v in values] for run_id, (values, _) in HISTORY.items()}
    stops = decide_stops(rule(min_iter=2), "maximize", histories, running())
    assert [(s.run_id, s.value, s.threshold) for s in stops] == [("d", -9, -5)]


def test_values_that_are_not_finite_numbers_are_not_iterations() -> None:
    # band 2 holds 1, 1 and b's 2 (its NaN and text are skipped): threshold 1
    histories = {"a": [1.0, 1.0], "c": [1.0, 1.0], "b": [float("nan"), 2.0, "x", 2.0]}
    stops = decide_stops(rule(min_iter=2, eta=2), "minimize", histories, ["b"])
    assert [(s.run_id, s.band, s.value) for s in stops] == [("b", 2, 2.0)]


# --- replaying the same history from a real log -------------------------------------------


async def write_history(store: EventStore, strict: bool) -> str:
    sweep_id = "hb"
    config = {
        "method": "grid",
        "metric": METRIC,
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3, "strict": strict},
        "parameters": {"x": {"values": list(range(len(HISTORY)))}},
    }
    sweep: list[Event] = [
        SweepCreated(sweep_id=sweep_id, project="p", method="grid", config=config, seed=1),
        AgentStarted(agent_id="agent-1"),
    ]
    for index, run_id in enumerate(HISTORY):
        sweep += [
            RunScheduled(run_id=run_id, params={"x": index}, index=index),
            RunClaimed(run_id=run_id, agent_id="agent-1"),
        ]
    await store.append(f"sweep:{sweep_id}", sweep)
    for run_id, (values, status) in HISTORY.items():
        events: list[Event] = [
            RunInitialized(
                project="p",
                run_id=run_id,
                incarnation=1,
                resumed=False,
                starting_step=0,
                sweep_id=sweep_id,
            )
        ]
        events += [
            StepLogged(incarnation=1, step=step, metrics={"loss": value, "lr": 0.1})
            for step, value in enumerate(values)
        ]
        if status == "finished":
            events.append(RunExited(incarnation=1, exit_code=0))
        elif status == "preempting":
            events.append(PreemptMarked(incarnation=1))
        await store.append(f"run:p/{run_id}", events)
    return sweep_id


async def stop_requests(store: EventStore) -> list[tuple[str, RunStopRequested]]:
    found = []
    async for record in store.read_all():
        if isinstance(record.event, RunStopRequested):
            found.append((record.stream.rpartition("/")[2], record.event))
    return found


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
async def test_the_controller_records_a_stop_for_exactly_those_runs_from_the_log(
    store_target: str, strict: bool
) -> None:
    async with open_store(store_target) as store, open_projector(store) as projector:
        sweep_id = await write_history(store, strict)
        controller = HyperbandController(store, sweep_id)
        decided = await controller.step(projector)
        again = await controller.step(projector)  # a second pass asks nothing twice
        recorded = await stop_requests(store)
    assert [d.run_id for d in decided] == EXPECTED[strict]
    assert again == []
    assert [run_id for run_id, _ in recorded] == EXPECTED[strict]
    first = recorded[0][1]
    assert (first.rule, first.band, first.value, first.threshold) == ("hyperband", 2, 9, 5)


async def test_a_stopped_run_that_exits_preempted_ends_killed_and_is_not_queued(
    store_target: str,
) -> None:
    async with open_store(store_target) as store, open_projector(store) as projector:
        sweep_id = await write_history(store, strict=False)
        await HyperbandController(store, sweep_id).step(projector)
        # SIGTERM reaches d's handle_preemption: it marks preempting and exits 143;
        # h, marked preempting without a stop, exits the same way.
        for run_id in ("d", "h"):
            await store.append(
                f"run:p/{run_id}",
                [PreemptMarked(incarnation=1), RunExited(incarnation=1, exit_code=143)],
            )
        d = await projector.run("p", "d")
        h = await projector.run("p", "h")
        sweep = await projector.sweep(sweep_id)
    assert d is not None
    assert h is not None
    assert sweep is not None
    assert (d.status, h.status) == (RunStatus.KILLED, RunStatus.PREEMPTED)
    assert sweep.queue == ["h"]


async def test_explain_says_which_band_stopped_the_run(store_target: str) -> None:
    async with open_store(store_target) as store, open_projector(store) as projector:
        sweep_id = await write_history(store, strict=False)
        await HyperbandController(store, sweep_id).step(projector)
        await store.append("run:p/d", [RunExited(incarnation=1, exit_code=143)])
    lines = await api.explain("p", "d", store=store_target)
    assert "stop requested: hyperband: at band 2 its 9 is worse than the threshold 5" in "\n".join(
        lines
    )
    assert lines[-1] == (
        "  why: stop requested (hyperband: at band 2 its 9 is worse than the threshold 5): "
        "SIGTERM, then SIGKILL after the kill delay; killed, never requeued"
    )


async def test_the_controller_reads_each_logged_value_once_across_passes(
    store_target: str,
) -> None:
    async with open_store(store_target) as store, open_projector(store) as projector:
        sweep_id = await write_history(store, strict=True)
        controller = HyperbandController(store, sweep_id)
        await controller.step(projector)
        # g logs its 2nd value, 9: strictly worse than band 2's threshold (5). Read
        # twice, its 1 would sit at band 2 instead and g would survive.
        await store.append("run:p/g", [StepLogged(incarnation=1, step=1, metrics={"loss": 9})])
        later = await controller.step(projector)
    assert [(d.run_id, d.band, d.value, d.threshold) for d in later] == [("g", 2, 9, 5)]
