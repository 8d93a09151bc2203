"""``runlog sweep`` is a group of subcommands that still takes W&B's short forms, and
``--json`` belongs to the command it was given to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Story, cli


@pytest.mark.parametrize("form", ["subcommand", "flag"])
def test_a_sweep_is_paused_and_resumed_by_subcommand_or_by_flag(story: Story, form: str) -> None:
    for action, status in (("pause", "PAUSED"), ("resume", "RUNNING")):
        args = [action, story.sweep_id] if form == "subcommand" else [f"--{action}", story.sweep_id]
        result = cli("sweep", *args, "--store", story.path, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["status"] == status


def test_options_given_before_the_subcommand_reach_it(story: Story) -> None:
    result = cli("sweep", "--store", str(story.path), "--json", "show", story.sweep_id)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sweep_id"] == story.sweep_id


def test_a_sweep_file_is_created_with_or_without_the_create_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sweep.yaml"
    config.write_text("method: grid\nparameters:\n  lr:\n    values: [0.1, 0.2]\n")
    store = tmp_path / "s.db"
    short = cli("sweep", config, "--store", store, "--json")
    long = cli("sweep", "create", config, "--store", store, "--project", "q", "--json")
    assert short.exit_code == 0, short.output
    assert long.exit_code == 0, long.output
    assert json.loads(short.stdout)["sweep_id"] != json.loads(long.stdout)["sweep_id"]


def test_a_flag_with_two_sweep_ids_is_a_usage_error(story: Story) -> None:
    result = cli("sweep", "--pause", story.sweep_id, "show", "--store", story.path)
    assert result.exit_code == 2


def test_json_mode_of_one_command_does_not_leak_into_the_next(story: Story) -> None:
    failed = cli("show", "p/nobody", "--store", story.path, "--json")
    assert failed.exit_code == 3
    assert json.loads(failed.stdout)["error"]["type"] == "RunNotFound"
    plain = cli("show", "p/nobody", "--store", story.path)
    assert plain.exit_code == 3
    assert plain.stdout == ""


def test_the_demo_finds_the_checkouts_training_script_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api._cli._demo import find_script

    monkeypatch.chdir(tmp_path)
    assert find_script() == Path(__file__).resolve().parents[2] / "examples" / "train.py"
