"""Bayesian search (contract §9.5): the unit space, imputation, in-flight runs, and a
bayes sweep end to end through claims recorded in the log."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import api
from api._sweeping._bayes import MAX_POINTS, Observation, _keep, _points, _Space, suggest
from api._sweeping._sweep_config import parse_sweep_config
from eventstore import RunScheduled, open_store


def bayes(metric: dict[str, Any] | None = None, **parameters: Any) -> api.SweepConfig:
    return parse_sweep_config(
        {"method": "bayes", "metric": metric or {"name": "y"}, "parameters": parameters}
    )


def optimise(config: api.SweepConfig, f: Any, budget: int, seed: int = 0) -> list[Observation]:
    runs: list[Observation] = []
    for index in range(budget):
        params = suggest(config, seed, index, runs)
        runs.append(Observation(params, "finished", f(params)))
    return runs


# --- the unit space ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"distribution": "uniform", "min": -2.0, "max": 3.0},
        {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        {"distribution": "log_uniform", "min": -4, "max": 2},
        {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 10.0},
        {"distribution": "inv_log_uniform", "min": 0, "max": 3},
        {"distribution": "normal", "mu": 2.0, "sigma": 0.5},
        {"distribution": "log_normal", "mu": 0.0, "sigma": 1.0},
        {"distribution": "beta", "a": 2, "b": 3},
    ],
)
def test_a_numeric_parameter_maps_to_the_unit_interval_and_back(spec: dict[str, Any]) -> None:
    [parameter] = bayes(x=spec).parameters
    for u in (0.05, 0.3, 0.5, 0.77, 0.95):
        value = parameter.from_unit(u)
        back = parameter.to_unit(value)
        assert back is not None
        assert math.isclose(back, u, abs_tol=1e-9)


def test_a_log_scale_parameter_is_searched_in_log_space() -> None:
    [parameter] = bayes(
        lr={"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}
    ).parameters
    assert math.isclose(parameter.from_unit(0.5), 1e-3)
    assert math.isclose(parameter.to_unit(1e-4) or 0, 0.25)


def test_a_categorical_parameter_is_one_dimension_per_value() -> None:
    config = bayes(opt={"values": ["adam", "sgd", "rmsprop"]}, lr={"min": 0.0, "max": 1.0})
    space = _Space(config)
    assert space.dimensions == 4
    assert space.encode({"opt": "sgd", "lr": 0.25}) == [0.25, 0.0, 1.0, 0.0]
    assert space.encode({"opt": "lion", "lr": 0.25}) is None  # not a value of this sweep


def test_constants_are_not_dimensions_but_are_in_every_suggestion() -> None:
    config = bayes(x={"min": 0.0, "max": 1.0}, tag={"value": "v1"})
    assert _Space(config).dimensions == 1
    runs = optimise(config, lambda p: p["x"], budget=4)
    assert all(r.params["tag"] == "v1" for r in runs)


# --- suggestions ------------------------------------------------------------------------


def test_with_fewer_than_two_results_the_suggestion_is_the_random_one() -> None:
    config = bayes(x={"min": 0.0, "max": 1.0})
    assert suggest(config, 7, 0, []) == config.suggestion(7, 0)
    one = [Observation({"x": 0.5}, "finished", 1.0)]
    assert suggest(config, 7, 1, one) == config.suggestion(7, 1)


def test_the_same_runs_seed_and_index_give_the_same_suggestion() -> None:
    config = bayes(x={"min": 0.0, "max": 1.0}, y={"min": -1.0, "max": 1.0})
    runs = optimise(config, lambda p: (p["x"] - 0.2) ** 2 + p["y"] ** 2, budget=6, seed=3)
    assert suggest(config, 3, 6, runs) == suggest(config, 3, 6, list(runs))


def test_bayes_closes_in_on_the_minimum_of_a_smooth_function() -> None:
    config = bayes(x={"min": 0.0, "max": 1.0})
    runs = optimise(config, lambda p: (p["x"] - 0.3) ** 2, budget=12)
    assert min(r.value or 1.0 for r in runs) < 1e-3


def test_goal_maximize_climbs_instead() -> None:
    config = bayes({"name": "y", "goal": "maximize"}, x={"min": 0.0, "max": 1.0})
    runs = optimise(config, lambda p: -((p["x"] - 0.7) ** 2), budget=12)
    assert max(r.value or -1.0 for r in runs) > -1e-3


def test_bayes_settles_on_the_better_category() -> None:
    config = bayes(kind={"values": ["bad", "good"]}, x={"min": 0.0, "max": 1.0})
    runs = optimise(config, lambda p: p["x"] + (0.0 if p["kind"] == "good" else 5.0), budget=14)
    assert [r.params["kind"] for r in runs[-4:]] == ["good"] * 4


def test_integer_and_quantised_parameters_get_values_they_can_take() -> None:
    config = bayes(
        layers={"min": 1, "max": 8},
        width={"distribution": "q_uniform", "min": 16, "max": 256, "q": 16},
    )
    runs = optimise(config, lambda p: abs(p["layers"] - 3) + abs(p["width"] - 64) / 16, budget=10)
    assert all(type(r.params["layers"]) is int and 1 <= r.params["layers"] <= 8 for r in runs)
    assert all(type(r.params["width"]) is int and r.params["width"] % 16 == 0 for r in runs)


def test_nested_parameters_are_suggested_as_a_dict() -> None:
    config = bayes(opt={"parameters": {"lr": {"min": 0.0, "max": 1.0}, "name": {"value": "adam"}}})
    runs = optimise(config, lambda p: (p["opt"]["lr"] - 0.5) ** 2, budget=5)
    assert runs[-1].params["opt"]["name"] == "adam"
    assert 0.0 <= runs[-1].params["opt"]["lr"] <= 1.0


# --- what each run counts as ------------------------------------------------------------


def counted(config: api.SweepConfig, runs: list[Observation]) -> tuple[list[float], int]:
    observed, pending = _points(config, _Space(config), runs)
    return [value for _, value in observed], len(pending)


RUNS = [
    Observation({"x": 0.1}, "finished", 3.0),
    Observation({"x": 0.2}, "finished", 1.0),
    Observation({"x": 0.3}, "failed", 2.0),
]


@pytest.mark.parametrize(("impute", "expected"), [("worst", 3.0), ("best", 1.0), ("latest", 2.0)])
def test_a_failed_run_is_imputed_as_metric_impute_says(impute: str, expected: float) -> None:
    config = bayes({"name": "y", "impute": impute}, x={"min": 0.0, "max": 1.0})
    assert counted(config, RUNS)[0] == [3.0, 1.0, expected]


@pytest.mark.parametrize("status", ["crashed", "killed"])
def test_crashed_and_killed_runs_get_the_worst_value_by_default(status: str) -> None:
    config = bayes(x={"min": 0.0, "max": 1.0})
    runs = [*RUNS[:2], Observation({"x": 0.3}, status, None)]
    assert counted(config, runs)[0] == [3.0, 1.0, 3.0]


def test_the_worst_value_when_maximising_is_the_lowest() -> None:
    config = bayes({"name": "y", "goal": "maximize"}, x={"min": 0.0, "max": 1.0})
    values, _ = counted(config, RUNS)
    assert values == [-3.0, -1.0, -1.0]  # negated: the search minimises; 1.0 is the worst


@pytest.mark.parametrize("status", ["pending", "running", "preempting", "preempted"])
def test_unfinished_runs_are_in_flight_points(status: str) -> None:
    config = bayes(x={"min": 0.0, "max": 1.0})
    values, pending = counted(config, [*RUNS[:2], Observation({"x": 0.5}, status, 0.5)])
    assert (values, pending) == ([3.0, 1.0], 1)


def test_impute_while_running_counts_running_runs_by_their_value() -> None:
    config = bayes({"name": "y", "impute_while_running": "latest"}, x={"min": 0.0, "max": 1.0})
    values, pending = counted(config, [*RUNS[:2], Observation({"x": 0.5}, "running", 0.5)])
    assert (values, pending) == ([3.0, 1.0, 0.5], 0)


def test_an_in_flight_run_steers_the_next_suggestion_away_from_itself() -> None:
    config = bayes(x={"min": 0.0, "max": 1.0})
    runs = optimise(config, lambda p: (p["x"] - 0.3) ** 2, budget=8)
    alone = suggest(config, 0, 8, runs)
    busy = suggest(config, 0, 8, [*runs, Observation(alone, "running", None)])
    assert abs(busy["x"] - alone["x"]) > 1e-6


def test_the_points_fitted_are_capped_keeping_the_best() -> None:
    observed = [([i / 1000], float(1000 - i)) for i in range(3 * MAX_POINTS)]
    kept = _keep(observed)
    assert len(kept) == MAX_POINTS
    assert observed[-1] in kept  # the best value (the lowest) is the most recent here
    assert observed[0] not in kept


# --- end to end -------------------------------------------------------------------------


async def run_bayes_sweep(store: str, budget: int) -> str:
    config = {
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": -2.0, "max": 2.0}, "act": {"values": ["relu", "tanh"]}},
    }
    sweep_id = await api.create_sweep(config, project="p", store=store, seed=11)
    await api.register_agent(sweep_id, store=store, agent_id="agent-1")
    for _ in range(budget):
        work = await api.claim(sweep_id, "agent-1", store=store)
        assert work is not None
        os.environ["RUNLOG_SWEEP_ID"] = sweep_id
        try:
            async with api.init(project="p", id=work.run_id, resume="allow", store=store) as run:
                params = work.params
                loss = (params["x"] - 0.5) ** 2 + (0 if params["act"] == "tanh" else 1)
                await run.log({"loss": loss})
        finally:
            del os.environ["RUNLOG_SWEEP_ID"]
    return sweep_id


async def test_every_bayes_suggestion_is_recorded_and_claimed_as_scheduled(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    await run_bayes_sweep(store, budget=6)
    async with open_store(store) as opened:
        scheduled = [
            r.event
            for r in [r async for r in opened.read_all()]
            if isinstance(r.event, RunScheduled)
        ]
    assert [e.index for e in scheduled] == list(range(6))
    assert all(set(e.params) == {"x", "act"} for e in scheduled)


async def test_the_same_log_gives_the_same_next_bayes_suggestion(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    sweep_id = await run_bayes_sweep(str(store), budget=5)
    suggestions = []
    for copy in ("a.db", "b.db"):
        shutil.copy(store, tmp_path / copy)
        work = await api.claim(sweep_id, "agent-1", store=str(tmp_path / copy))
        assert work is not None
        suggestions.append(work.params)
    assert suggestions[0] == suggestions[1]
