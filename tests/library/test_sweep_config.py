"""Sweep configs (contract §9.5): validation names the key; grid and random search."""

from __future__ import annotations

from pathlib import Path

import pytest

import api
from api._sweeping._sweep_config import combination_key


def config(**parameters: object) -> dict[str, object]:
    return {"method": "grid", "parameters": parameters}


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"parameters": {"a": {"value": 1}}}, "method"),
        ({"method": "grid"}, "parameters"),
        ({"method": "grid", "parameters": {}}, "parameters"),
        (
            {"method": "bayes", "parameters": {"a": {"value": 1}}},
            "metric: bayes search needs the metric",
        ),
        ({"method": "custom", "parameters": {"a": {"value": 1}}}, "method: 'custom'"),
        (config(**{"9lr": {"value": 1}}), "parameters.9lr"),
        (config(lr={"value": 1, "values": [1, 2]}), "parameters.lr: give exactly one"),
        (config(lr={}), "parameters.lr: give exactly one"),
        (config(lr={"min": 0.1}), "parameters.lr: uniform needs min and max"),
        (config(lr={"min": 1, "max": 0}), "parameters.lr.max: must be greater than min"),
        (config(lr={"distribution": "zipf"}), "parameters.lr.distribution: unknown distribution"),
        (config(lr={"values": []}), "parameters.lr.values: must be a non-empty list"),
        (
            config(lr={"min": 0.0, "max": 1.0}),
            "parameters.lr: grid search cannot enumerate a uniform",
        ),
        (config(lr={"values": [1, 2], "probabilities": [0.5, 0.6]}), "parameters.lr.probabilities"),
        (
            config(lr={"distribution": "log_uniform_values", "min": 0, "max": 1}),
            "parameters.lr.min",
        ),
        ({"method": "random", "parameters": {"a": {"value": 1}}, "run_cap": 0}, "run_cap"),
        (
            {"method": "random", "parameters": {"a": {"value": 1}}, "metric": {"goal": "min"}},
            "metric",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "metric": {"name": "l", "goal": "low"},
            },
            "metric.goal",
        ),
    ],
)
def test_an_invalid_config_names_the_offending_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(api.SweepConfigError, match=where.replace("[", r"\[").replace(".", r"\.")):
        api.load_sweep_config(raw)


def test_a_yaml_file_in_the_shape_wandb_users_write(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "program: train.py\n"
        "method: random\n"
        "metric:\n  name: val_loss\n  goal: minimize\n"
        "parameters:\n"
        "  lr:\n    distribution: log_uniform_values\n    min: 0.0001\n    max: 0.1\n"
        "  batch_size:\n    values: [16, 32, 64]\n"
        "  layers:\n    min: 1\n    max: 4\n"
        "  dropout:\n    distribution: normal\n    mu: 0.2\n    sigma: 0.05\n"
        "run_cap: 10\n"
    )
    parsed = api.load_sweep_config(path)
    assert (parsed.method, parsed.metric_name, parsed.run_cap) == ("random", "val_loss", 10)
    kinds = {p.name: p.distribution for p in parsed.parameters}
    assert kinds == {
        "lr": "log_uniform_values",
        "batch_size": "categorical",
        "layers": "int_uniform",
        "dropout": "normal",
    }
    draw = parsed.suggestion(seed=7, index=0)
    assert 0.0001 <= draw["lr"] <= 0.1
    assert draw["batch_size"] in (16, 32, 64)
    assert draw["layers"] in range(1, 5)


def test_random_suggestions_are_the_same_for_the_same_seed_and_index() -> None:
    parsed = api.load_sweep_config(
        {
            "method": "random",
            "parameters": {
                "lr": {"min": 0.0, "max": 1.0},
                "k": {"values": "abc"[::-1] and [1, 2, 3]},
            },
        }
    )
    first = [parsed.suggestion(seed=3, index=i) for i in range(5)]
    assert first == [parsed.suggestion(seed=3, index=i) for i in range(5)]
    assert first != [parsed.suggestion(seed=4, index=i) for i in range(5)]
    assert len({combination_key(p) for p in first}) == 5


def test_grid_expands_int_uniform_and_q_uniform_in_order() -> None:
    parsed = api.load_sweep_config(
        config(
            a={"min": 1, "max": 3},
            b={"distribution": "q_uniform", "min": 0.0, "max": 0.3, "q": 0.1},
            c={"value": "x"},
        )
    )
    assert parsed.grid_size() == 9
    grid = list(parsed.grid())
    assert grid[0] == {"a": 1, "b": 0.0, "c": "x"}
    assert grid[1] == {"a": 1, "b": 0.1, "c": "x"}
    assert [g["a"] for g in grid] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_integral_floats_compare_equal_to_ints() -> None:
    assert combination_key({"a": 1.0, "b": [2.0]}) == combination_key({"b": [2], "a": 1})
    assert combination_key({"a": 1.5}) != combination_key({"a": 1})


def test_a_grid_cell_by_index_is_the_same_as_enumerating_the_grid() -> None:
    parsed = api.load_sweep_config(
        config(
            a={"min": 1, "max": 3}, b={"values": ["x", "y"]}, c={"value": 0}, d={"min": 5, "max": 8}
        )
    )
    assert [parsed.grid_cell(i) for i in range(parsed.grid_size())] == list(parsed.grid())
