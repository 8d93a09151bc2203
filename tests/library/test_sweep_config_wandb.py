"""Config parity with W&B's reference sweep implementation (contract §9.5).

The cases follow what W&B's own sweep test suite checks (grid enumeration, duplicates,
nesting, q values, distributions, validation), re-expressed against runlog's API: a grid
is read through ``grid_cell``, which is what a claim proposes, cell by cell.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import api
from api._sweeping._sweep_config import (
    SweepConfigWarning,
    combination_key,
    parse_sweep_config,
    sweep_id_of,
)


def grid(**parameters: Any) -> dict[str, Any]:
    return {"method": "grid", "parameters": parameters}


def cells(config: dict[str, Any]) -> list[dict[str, Any]]:
    parsed = api.load_sweep_config(config)
    return [parsed.grid_cell(i) for i in range(parsed.grid_size())]


def pairs(config: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(c["v1"], c["v2"]) for c in cells(config)]


# --- grid enumeration -------------------------------------------------------------------


def test_a_two_parameter_grid_gives_every_pair_with_the_first_name_slowest() -> None:
    assert pairs(grid(v1={"values": [1, 2, 3]}, v2={"values": [4, 5]})) == [
        (1, 4), (1, 5), (2, 4), (2, 5), (3, 4), (3, 5),
    ]  # fmt: skip


def test_grid_order_follows_sorted_parameter_names_not_the_order_written() -> None:
    written = {"zeta": {"values": [1, 2]}, "alpha": {"values": ["x", "y"]}}
    assert [(c["alpha"], c["zeta"]) for c in cells(grid(**written))] == [
        ("x", 1), ("x", 2), ("y", 1), ("y", 2),
    ]  # fmt: skip


async def test_run_cap_cuts_the_grid_where_wandbs_order_does(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    config = {**grid(zeta={"values": [1, 2]}, alpha={"values": ["x", "y"]}), "run_cap": 2}
    sweep_id = await api.create_sweep(config, project="p", store=store)
    await api.register_agent(sweep_id, store=store, agent_id="agent-1")
    claimed = [await api.claim(sweep_id, "agent-1", store=store) for _ in range(3)]
    assert [w.params if w else None for w in claimed] == [
        {"alpha": "x", "zeta": 1},
        {"alpha": "x", "zeta": 2},
        None,  # run_cap: two claims outstanding
    ]


def test_list_values_are_grid_values_like_any_other() -> None:
    assert pairs(grid(v1={"values": ["", [9, 5]]}, v2={"values": [256, 512]})) == [
        ("", 256), ("", 512), ([9, 5], 256), ([9, 5], 512),
    ]  # fmt: skip


def test_duplicated_values_are_proposed_once() -> None:
    found = pairs(grid(v1={"values": [None, 2, 3, "a", [2, 3], 3]}, v2={"values": ["a", "b"]}))
    assert len(found) == 10
    assert {combination_key({"p": p}) for p in found} == {
        combination_key({"p": (v1, v2)}) for v1 in (None, 2, 3, "a", [2, 3]) for v2 in "ab"
    }


def test_an_integer_and_the_equal_float_are_one_value() -> None:
    assert [c["x"] for c in cells(grid(x={"values": [1, 1.0, 2]}))] == [1, 2]


def test_true_and_one_stay_two_values() -> None:
    assert [c["x"] for c in cells(grid(x={"values": [True, 1]}))] == [True, 1]


def test_nan_is_a_value_of_its_own() -> None:
    found = [c["x"] for c in cells(grid(x={"values": [math.nan, None, 1, math.nan]}))]
    assert len(found) == 3
    assert math.isnan(found[0])
    assert found[1:] == [None, 1]


def test_dict_values_equal_up_to_key_order_are_one_value() -> None:
    values = [{"a": "b"}, {"c": "d", "b": "g"}, {"e": {"f": "g"}}, {"a": "b"}, {"b": "g", "c": "d"}]
    found = cells(grid(v1={"values": ["a", "b", "c'"]}, v2={"values": values}))
    assert len(found) == 9
    assert [c["v2"] for c in found[:3]] == values[:3]


def test_a_duplicate_keeps_its_first_position_in_the_order() -> None:
    assert pairs(grid(v1={"values": ["a", "b", "c", "a"]}, v2={"values": [1, 2, 3]})) == [
        ("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3), ("c", 1), ("c", 2), ("c", 3),
    ]  # fmt: skip


def test_constants_alone_make_one_cell_that_carries_them_all() -> None:
    assert cells(grid(v1={"value": "a"}, v2={"value": "b"})) == [{"v1": "a", "v2": "b"}]


def test_a_constant_is_propagated_into_every_cell() -> None:
    found = cells(grid(v1={"values": ["a", "b", "c'"]}, v2={"value": 1}))
    assert [c["v2"] for c in found] == [1, 1, 1]


def test_int_uniform_in_a_grid_is_every_integer_from_min_to_max() -> None:
    found = cells(grid(v1={"distribution": "int_uniform", "min": -52, "max": 10}))
    assert [c["v1"] for c in found] == list(range(-52, 11))


def test_q_uniform_in_a_grid_steps_by_q_from_min_below_max() -> None:
    found = [
        c["v1"]
        for c in cells(
            grid(v1={"distribution": "q_uniform", "min": -9.211, "max": 23.23, "q": 2.341})
        )
    ]
    expected = [-9.211 + i * 2.341 for i in range(14)]  # the last, 21.224, is below 23.23
    assert len(found) == len(expected)
    assert all(math.isclose(f, e) for f, e in zip(found, expected, strict=True))


def test_an_integer_q_gives_integers_in_a_grid() -> None:
    found = [
        c["n"] for c in cells(grid(n={"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}))
    ]
    assert found == [0, 2, 4, 6, 8]
    assert all(type(v) is int for v in found)


def test_the_default_q_gives_floats_in_a_grid() -> None:
    found = [c["n"] for c in cells(grid(n={"distribution": "q_uniform", "min": 0, "max": 3}))]
    assert found == [0.0, 1.0, 2.0]
    assert all(type(v) is float for v in found)


@pytest.mark.parametrize(
    "spec",
    [
        {"distribution": "q_uniform", "min": 0, "max": 100, "q": 5},
        {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 10},
        {"distribution": "q_normal", "mu": 50, "sigma": 20, "q": 3},
        {"distribution": "q_log_normal", "mu": 2, "sigma": 1, "q": 2},
        {"distribution": "q_beta", "a": 2, "b": 2, "q": 1},
    ],
)
def test_an_integer_q_gives_integer_multiples_of_q_in_random_search(spec: dict[str, Any]) -> None:
    parsed = api.load_sweep_config({"method": "random", "parameters": {"n": spec}})
    drawn = [parsed.suggestion(seed=5, index=i)["n"] for i in range(50)]
    assert all(type(v) is int and v % spec["q"] == 0 for v in drawn)


def test_a_float_q_gives_floats_in_random_search() -> None:
    parsed = api.load_sweep_config(
        {
            "method": "random",
            "parameters": {"n": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}},
        }
    )
    drawn = {parsed.suggestion(seed=5, index=i)["n"] for i in range(50)}
    assert drawn <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert all(type(v) is float for v in drawn)


# --- nesting ----------------------------------------------------------------------------

NESTED = grid(
    p1={"values": ["a", "b", "c"]},
    p2={
        "parameters": {
            "n1": {"values": [0.01, 0.001]},
            "n2": {"value": 0.9},
            "n3": {"values": [1, 2, 3]},
        }
    },
)


def test_a_nested_parameter_gives_a_dict_under_its_key() -> None:
    found = cells(NESTED)
    assert len(found) == 18
    assert found[0] == {"p1": "a", "p2": {"n1": 0.01, "n2": 0.9, "n3": 1}}
    assert found[1] == {"p1": "a", "p2": {"n1": 0.01, "n2": 0.9, "n3": 2}}
    assert len({combination_key(c) for c in found}) == 18


def test_nested_parameters_are_named_by_their_path_in_messages() -> None:
    config = grid(opt={"parameters": {"lr": {"min": 1, "max": 0}}})
    with pytest.raises(api.SweepConfigError, match=r"parameters\.opt\.lr\.max"):
        api.load_sweep_config(config)


def test_the_same_name_at_two_nesting_levels_is_two_parameters() -> None:
    config = grid(
        a={"parameters": {"b": {"value": 1}, "c": {"parameters": {"d": {"value": 2}}}}},
        b={"values": [2, 3]},
    )
    assert cells(config) == [
        {"a": {"b": 1, "c": {"d": 2}}, "b": 2},
        {"a": {"b": 1, "c": {"d": 2}}, "b": 3},
    ]


def test_random_search_fills_nested_parameters_too() -> None:
    parsed = api.load_sweep_config(
        {
            "method": "random",
            "parameters": {
                "opt": {"parameters": {"lr": {"min": 0.0, "max": 1.0}, "kind": {"value": "adam"}}}
            },
        }
    )
    drawn = parsed.suggestion(seed=1, index=0)
    assert drawn["opt"]["kind"] == "adam"
    assert 0.0 <= drawn["opt"]["lr"] <= 1.0


def test_an_empty_nested_parameters_mapping_is_refused() -> None:
    with pytest.raises(api.SweepConfigError, match=r"parameters\.opt\.parameters"):
        api.load_sweep_config(grid(opt={"parameters": {}}))


async def test_the_agent_replaces_the_nested_subtree_of_the_run_config_wholesale(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "store.db")
    sweep_id = await api.create_sweep(NESTED, project="p", store=store, seed=3)
    seen: list[dict[str, Any]] = []

    async def train() -> None:
        async with api.init(config={"p2": {"n1": -1, "extra": True}}, store=store) as run:
            seen.append(dict(run.config))
            await run.log({"loss": 1.0})

    assert await api.agent(sweep_id, train, store=store, poll_interval=0.05, count=2) == 2
    assert seen[0]["p2"] == {"n1": 0.01, "n2": 0.9, "n3": 1}


# --- distributions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "low", "high"),
    [
        ({"distribution": "uniform", "min": -2.0, "max": 3.0}, -2.0, 3.0),
        ({"min": 1, "max": 4}, 1, 4),
        ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, 1e-5, 1e-1),
        ({"distribution": "log_uniform", "min": -3, "max": 1}, math.exp(-3), math.exp(1)),
        ({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 10.0}, 0.01, 10.0),
        ({"distribution": "inv_log_uniform", "min": 0, "max": 2}, math.exp(-2), 1.0),
        ({"distribution": "beta", "a": 2, "b": 5}, 0.0, 1.0),
        ({"distribution": "log_normal", "mu": 0, "sigma": 1}, 0.0, math.inf),
    ],
)
def test_random_draws_stay_inside_the_distribution_support(
    spec: dict[str, Any], low: float, high: float
) -> None:
    parsed = parse_sweep_config({"method": "random", "parameters": {"x": spec}})
    drawn = [parsed.suggestion(seed=2, index=i)["x"] for i in range(200)]
    assert all(low - 1e-12 <= x <= high + 1e-12 for x in drawn)


def test_normal_defaults_to_mean_zero_and_deviation_one() -> None:
    parsed = api.load_sweep_config(
        {"method": "random", "parameters": {"x": {"distribution": "normal"}}}
    )
    drawn = [parsed.suggestion(seed=4, index=i)["x"] for i in range(2000)]
    mean = sum(drawn) / len(drawn)
    deviation = math.sqrt(sum((x - mean) ** 2 for x in drawn) / len(drawn))
    assert abs(mean) < 0.1
    assert abs(deviation - 1) < 0.1


def test_a_normal_with_sigma_zero_always_gives_mu() -> None:
    parsed = api.load_sweep_config(
        {"method": "random", "parameters": {"x": {"distribution": "normal", "mu": 3.0, "sigma": 0}}}
    )
    assert {parsed.suggestion(seed=1, index=i)["x"] for i in range(5)} == {3.0}


def test_categorical_probabilities_weight_the_draws() -> None:
    parsed = api.load_sweep_config(
        {
            "method": "random",
            "parameters": {"x": {"values": ["a", "b"], "probabilities": [0.9, 0.1]}},
        }
    )
    drawn = [parsed.suggestion(seed=6, index=i)["x"] for i in range(1000)]
    assert 850 < drawn.count("a") < 950


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (grid(v1={"max": 3, "min": 5}), r"parameters\.v1\.max"),
        (
            {
                "method": "random",
                "parameters": {"v1": {"distribution": "normal", "mu": 0.1, "sigma": -0.1}},
            },
            r"parameters\.v1\.sigma",
        ),
        (
            {
                "method": "random",
                "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3, 0.4]}},
            },
            r"parameters\.v1\.probabilities",
        ),
        (
            {
                "method": "random",
                "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3]}},
            },
            r"parameters\.v1\.probabilities",
        ),
        (
            grid(v1={"values": [1, 2, 3], "probabilities": [0.2, 0.2, 0.6]}),
            r"parameters\.v1: grid search cannot enumerate a categorical_w_probabilities",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"min": 0.0, "max": 1.0, "distribution": "int_uniform"}},
            },
            r"parameters\.a: int_uniform needs integer",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"min": 2, "max": 1, "distribution": "log_uniform_values"}},
            },
            r"parameters\.a\.max",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"min": 2, "max": 1, "distribution": "q_log_uniform_values"}},
            },
            r"parameters\.a\.max",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"min": 2, "max": 1, "distribution": "inv_log_uniform_values"}},
            },
            r"parameters\.a\.max",
        ),
        ({"method": "random", "parameters": {}}, "parameters"),
        ({"parameters": {"a": {"value": 1}}}, "method"),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "metric": {"name": "l", "goal": "minimise"},
            },
            r"metric\.goal",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "metric": {"name": "l", "impute": "mean"},
            },
            r"metric\.impute",
        ),
        (
            {
                "method": "random",
                "parameters": {"a": {"value": 1}},
                "controller": {"type": "remote"},
            },
            "controller",
        ),
        (
            grid(big={"min": 0, "max": 2**40}),
            r"parameters\.big: the grid would try 1099511627777 values",
        ),
        (
            grid(fine={"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 1e-9}),
            r"parameters\.fine: the grid would try",
        ),
    ],
)
def test_what_the_reference_refuses_is_refused_naming_the_key(
    config: dict[str, Any], where: str
) -> None:
    with pytest.raises(api.SweepConfigError, match=where):
        api.load_sweep_config(config)


@pytest.mark.parametrize("run_cap", [-1, 0, -0.3, 5.1, "1", True])
def test_run_cap_must_be_a_positive_integer(run_cap: object) -> None:
    with pytest.raises(api.SweepConfigError, match="run_cap"):
        api.load_sweep_config(
            {"method": "random", "parameters": {"a": {"value": 1}}, "run_cap": run_cap}
        )


@pytest.mark.parametrize("run_cap", [1, 300])
def test_a_positive_integer_run_cap_is_accepted(run_cap: int) -> None:
    parsed = api.load_sweep_config(
        {"method": "random", "parameters": {"a": {"value": 1}}, "run_cap": run_cap}
    )
    assert parsed.run_cap == run_cap


@pytest.mark.parametrize("kind", ["local", "cloud"])
def test_a_controller_type_is_accepted(kind: str) -> None:
    parsed = api.load_sweep_config(
        {"method": "random", "controller": {"type": kind}, "parameters": {"a": {"values": [1, 2]}}}
    )
    assert parsed.raw["controller"] == {"type": kind}
    assert parsed.warnings == ()


def test_wandb_schema_keys_such_as_program_and_command_are_accepted_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.load_sweep_config(
            {
                "method": "random",
                "program": "train.py",
                "command": ["${env}", "python", "${program}", "${args}"],
                "name": "n", "description": "d", "project": "p", "entity": "e",
                "parameters": {"a": {"values": [1, 2]}},
            }
        )  # fmt: skip


@pytest.mark.parametrize("old", ["log_uniform", "q_log_uniform", "inv_log_uniform"])
def test_the_old_exponent_distributions_warn_and_name_the_replacement(old: str) -> None:
    config = {"method": "random", "parameters": {"a": {"min": 1, "max": 2, "distribution": old}}}
    with pytest.warns(SweepConfigWarning, match=rf"parameters\.a uses {old}.*use {old}_values"):
        parsed = api.load_sweep_config(config)
    assert parsed.parameters[0].distribution == old


def test_an_unknown_top_level_key_warns_naming_it_and_the_sweep_is_accepted() -> None:
    config = {"method": "random", "parameters": {"a": {"value": 1}}, "colour": "blue"}
    with pytest.warns(SweepConfigWarning, match="colour: unknown top-level key, ignored"):
        parsed = api.load_sweep_config(config)
    assert parsed.method == "random"


def test_a_misspelt_top_level_key_warns_with_the_likely_spelling() -> None:
    config = {"method": "random", "parameters": {"a": {"value": 1}}, "run_capp": 3}
    with pytest.warns(SweepConfigWarning, match="run_capp.*did you mean 'run_cap'"):
        api.load_sweep_config(config)


def test_a_misspelt_parameter_key_warns_naming_it_and_what_was_meant() -> None:
    config = {
        "method": "random",
        "parameters": {"lr": {"distribtion": "log_uniform_values", "min": 0.001, "max": 0.1}},
    }
    with pytest.warns(
        SweepConfigWarning,
        match=r"parameters\.lr\.distribtion: unknown key, ignored \(did you mean 'distribution'\?\)",
    ):
        parsed = api.load_sweep_config(config)
    assert parsed.parameters[0].distribution == "uniform"  # what the key's absence means


def test_a_key_the_distribution_does_not_use_warns() -> None:
    config = {
        "method": "random",
        "parameters": {"lr": {"distribution": "uniform", "min": 0.0, "max": 1.0, "q": 0.1}},
    }
    with pytest.warns(SweepConfigWarning, match=r"parameters\.lr\.q: not used by a uniform"):
        api.load_sweep_config(config)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        (
            {"distribution": "categorical", "values": [1, 2], "probabilities": [0.5, 0.5]},
            "probabilities",
        ),
        ({"distribution": "uniform", "min": 0.0, "max": 1.0, "values": [1, 2]}, "values"),
        ({"distribution": "normal", "min": 0.0}, "min"),
    ],
)
def test_every_key_a_distribution_ignores_is_named(spec: dict[str, Any], key: str) -> None:
    with pytest.warns(SweepConfigWarning, match=rf"parameters\.p\.{key}: not used by a"):
        api.load_sweep_config({"method": "random", "parameters": {"p": spec}})


def test_an_unknown_distribution_suggests_the_closest_name() -> None:
    config = {
        "method": "random",
        "parameters": {"lr": {"distribution": "log_uniform_value", "min": 0.1, "max": 1.0}},
    }
    with pytest.raises(api.SweepConfigError, match="did you mean 'log_uniform_values'"):
        api.load_sweep_config(config)


def test_a_bound_yaml_read_as_text_is_refused_with_how_to_write_it(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "method: random\nparameters:\n  lr:\n    distribution: log_uniform_values\n"
        "    min: 1e-5\n    max: 1e-1\n"
    )
    with pytest.raises(api.SweepConfigError) as caught:
        api.load_sweep_config(path)
    message = str(caught.value)
    assert message.startswith("parameters.lr.max: '1e-1' is a string") or message.startswith(
        "parameters.lr.min: '1e-5' is a string"
    )
    assert "YAML" in message
    assert "1.0e-" in message


def test_the_written_form_the_hint_gives_is_read_by_yaml_as_a_number(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "method: random\nparameters:\n  lr:\n    distribution: log_uniform_values\n"
        "    min: 1.0e-5\n    max: 1.0e-1\n"
    )
    parsed = api.load_sweep_config(path)
    assert (parsed.parameters[0].min, parsed.parameters[0].max) == (1e-5, 0.1)


def test_values_yaml_read_as_text_warn_with_how_to_write_them(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("method: grid\nparameters:\n  lr:\n    values: [1e-3, 1e-4]\n")
    with pytest.warns(
        SweepConfigWarning, match=r"parameters\.lr\.values: '1e-3' is a string.*1\.0e-3"
    ):
        parsed = api.load_sweep_config(path)
    assert parsed.parameters[0].values == ("1e-3", "1e-4")


def test_a_stored_config_is_parsed_quietly() -> None:
    config = {"method": "random", "parameters": {"a": {"value": 1}}, "colour": "blue"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = parse_sweep_config(config)
    assert parsed.warnings == ("colour: unknown top-level key, ignored",)


async def test_claims_do_not_repeat_the_creation_warnings(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    config = {"method": "random", "parameters": {"a": {"min": 0.0, "max": 1.0}}, "colour": "blue"}
    with pytest.warns(SweepConfigWarning):
        sweep_id = await api.create_sweep(config, project="p", store=store)
    await api.register_agent(sweep_id, store=store, agent_id="agent-1")
    # pytest turns any warning into an error here (filterwarnings = error)
    assert await api.claim(sweep_id, "agent-1", store=store) is not None


# --- sweep ids --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["abc123", "proj/abc123", "team/proj/abc123"])
def test_a_sweep_id_may_be_given_in_wandbs_path_form(text: str) -> None:
    assert sweep_id_of(text) == "abc123"


@pytest.mark.parametrize("text", ["team//abc", "abc/", "a/b/c/d", ""])
def test_a_malformed_sweep_path_is_refused(text: str) -> None:
    with pytest.raises(api.SweepConfigError, match="is not a sweep id"):
        sweep_id_of(text)


async def test_sweep_commands_take_the_entity_project_id_form(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    sweep_id = await api.create_sweep(grid(a={"values": [1, 2]}), project="p", store=store)
    await api.register_agent(f"me/p/{sweep_id}", store=store, agent_id="agent-1")
    work = await api.claim(f"me/p/{sweep_id}", "agent-1", store=store)
    assert work is not None
    assert work.sweep_id == sweep_id
    state = await api.pause_sweep(f"p/{sweep_id}", store=store)
    assert state.sweep_id == sweep_id


# --- the grid property ------------------------------------------------------------------

_VALUE = st.one_of(
    st.integers(-3, 3),
    st.integers(-3, 3).map(float),
    st.sampled_from(["a", "b", None, True, False]),
    st.lists(st.integers(0, 2), max_size=2),
)
_LEAF = st.one_of(
    st.lists(_VALUE, min_size=1, max_size=5).map(lambda v: {"values": v}),
    _VALUE.map(lambda v: {"value": v}),
    st.tuples(st.integers(-3, 3), st.integers(0, 3)).map(
        lambda t: {"min": t[0], "max": t[0] + t[1] + 1}
    ),
    st.tuples(st.integers(0, 4), st.sampled_from([1, 2, 0.5])).map(
        lambda t: {"distribution": "q_uniform", "min": t[0], "max": t[0] + 3, "q": t[1]}
    ),
)
_NAMES = st.sampled_from(["a", "b", "c", "lr", "Z", "x.y"])
_PARAMETERS = st.recursive(
    st.dictionaries(_NAMES, _LEAF, min_size=1, max_size=3),
    lambda inner: st.dictionaries(
        _NAMES, st.one_of(_LEAF, inner.map(lambda p: {"parameters": p})), min_size=1, max_size=3
    ),
    max_leaves=6,
)


def _distinct_count(spec: dict[str, Any]) -> int:
    parsed = api.load_sweep_config({"method": "grid", "parameters": {"only": spec}})
    return parsed.grid_size()


def _expected_size(parameters: dict[str, Any]) -> int:
    size = 1
    for spec in parameters.values():
        size *= (
            _expected_size(spec["parameters"]) if "parameters" in spec else _distinct_count(spec)
        )
    return size


@settings(max_examples=150, deadline=None)
@given(_PARAMETERS)
def test_every_accepted_grid_proposes_each_distinct_cell_exactly_once(
    parameters: dict[str, Any],
) -> None:
    parsed = api.load_sweep_config({"method": "grid", "parameters": parameters})
    keys = [combination_key(parsed.grid_cell(i)) for i in range(parsed.grid_size())]
    assert len(set(keys)) == len(keys)
    assert len(keys) == _expected_size(parameters)
    # and every combination of the distinct values is among them
    picked = {
        combination_key(
            parsed.params([random.Random(i).choice(p.grid_values()) for p in parsed.parameters])
        )
        for i in range(20)
    }
    assert picked <= set(keys)


async def test_a_grid_with_duplicate_values_runs_each_cell_once_end_to_end(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    config = grid(x={"values": [1, 1.0, 2, 2]}, y={"values": ["a", "a", "b"]})
    sweep_id = await api.create_sweep(config, project="p", store=store)
    seen: list[tuple[Any, Any]] = []

    async def train() -> None:
        async with api.init(store=store) as run:
            seen.append((run.config["x"], run.config["y"]))

    assert await api.agent(sweep_id, train, store=store, poll_interval=0.05) == 4
    assert seen == [(1, "a"), (1, "b"), (2, "a"), (2, "b")]


# --- the CLI ----------------------------------------------------------------------------

RUNLOG = str(Path(sys.executable).with_name("runlog"))


def test_the_cli_creates_the_sweep_and_prints_each_warning_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(
        "method: random\ncolour: blue\nparameters:\n  lr:\n    distribtion: log_uniform_values\n"
        "    min: 0.001\n    max: 0.1\n"
    )
    done = subprocess.run(
        [RUNLOG, "sweep", "sweep.yaml", "--store", "s.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created sweep ")
    assert done.stderr.splitlines() == [
        "runlog: warning: colour: unknown top-level key, ignored",
        "runlog: warning: parameters.lr.distribtion: unknown key, ignored (did you mean 'distribution'?)",
    ]


def test_the_cli_refuses_a_bound_read_as_text_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(
        "method: random\nparameters:\n  lr:\n    distribution: log_uniform_values\n    min: 1e-5\n    max: 0.1\n"
    )
    done = subprocess.run(
        [RUNLOG, "sweep", "sweep.yaml", "--store", "s.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 5  # refused: invalid input
    assert "parameters.lr.min: '1e-5' is a string" in done.stderr
    assert "write 1.0e-5" in done.stderr
    assert "Traceback" not in done.stderr
