"""The command an agent builds from a sweep config's program/command (contract §9.5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import api
from api._sweeping._command import build_command

PARAMS = {"lr": 1e-05, "augment": False, "dropout": True, "layers": [64, 32], "opt": None}


def build(command: list[str] | None, tmp_path: Path, **environ: str) -> list[str]:
    config: dict[str, object] = {"program": "train.py"}
    if command is not None:
        config["command"] = command
    return build_command(config, PARAMS, json_file=tmp_path / "args.json", environ=environ)


def test_the_default_command_runs_the_program_with_python_flags(tmp_path: Path) -> None:
    assert build(None, tmp_path) == [
        "/usr/bin/env",
        sys.executable,
        "train.py",
        "--lr=1e-05",
        "--augment=False",
        "--dropout=True",
        "--layers=[64, 32]",
        "--opt=None",
    ]


def test_args_no_hyphens_drops_the_dashes(tmp_path: Path) -> None:
    assert build(["python", "${program}", "${args_no_hyphens}"], tmp_path)[2:] == [
        "lr=1e-05",
        "augment=False",
        "dropout=True",
        "layers=[64, 32]",
        "opt=None",
    ]


def test_args_no_boolean_flags_leaves_false_out_and_true_bare(tmp_path: Path) -> None:
    assert build(["${args_no_boolean_flags}"], tmp_path) == [
        "--lr=1e-05",
        "--dropout",
        "--layers=[64, 32]",
        "--opt=None",
    ]


def test_args_json_is_one_json_word(tmp_path: Path) -> None:
    [word] = build(["${args_json}"], tmp_path)
    assert json.loads(word) == PARAMS
    assert word.startswith('{"lr": 1e-05, "augment": false')


def test_args_json_file_names_a_file_holding_the_parameters(tmp_path: Path) -> None:
    [path] = build(["${args_json_file}"], tmp_path)
    assert json.loads(Path(path).read_text()) == PARAMS


def test_envvar_is_replaced_inside_a_word(tmp_path: Path) -> None:
    words = build(["--data=${envvar:DATA_DIR}/train", "${args}"], tmp_path, DATA_DIR="/d")
    assert words[0] == "--data=/d/train"


def test_an_unset_envvar_becomes_its_name_as_in_wandb(tmp_path: Path) -> None:
    assert build(["${envvar:MISSING}"], tmp_path) == ["MISSING"]


def test_a_word_that_only_contains_a_macro_is_left_as_written(tmp_path: Path) -> None:
    assert build(["--x=${args}"], tmp_path) == ["--x=${args}"]


def test_an_unknown_macro_is_refused_when_the_sweep_is_created() -> None:
    config = {"method": "grid", "parameters": {"a": {"value": 1}}, "command": ["${arg}"]}
    with pytest.raises(api.SweepConfigError, match=r"command: unknown macro \$\{arg\}"):
        api.load_sweep_config(config)


def test_program_macro_without_a_program_is_refused_naming_the_key() -> None:
    config = {"method": "grid", "parameters": {"a": {"value": 1}}}
    api.load_sweep_config(config)  # no program and no command: give one after --
    with pytest.raises(api.SweepConfigError, match="program: the command uses"):
        api.load_sweep_config({**config, "command": ["${program}"]})


def test_a_command_that_is_a_string_is_refused() -> None:
    config = {"method": "grid", "parameters": {"a": {"value": 1}}, "command": "python t.py"}
    with pytest.raises(api.SweepConfigError, match="command: must be a non-empty list"):
        api.load_sweep_config(config)
