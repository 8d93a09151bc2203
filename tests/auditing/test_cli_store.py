"""Commands that read or act on a store refuse a missing one, naming the path they
looked at, instead of creating an empty ``runlog/runlog.db``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Story, cli

EXISTING_ONLY = [
    ["reap"],
    ["explain", "p/alpha"],
    ["agent", "sweep-1", "--", "true"],
    ["sweep", "--pause", "sweep-1"],
    ["sweep", "--resume", "sweep-1"],
    ["sweep", "--stop", "sweep-1"],
    ["sweep", "--cancel", "sweep-1"],
    ["sweep", "show", "sweep-1"],
    ["sweeps"],
    ["show", "p/alpha"],
    ["runs"],
    ["history", "p/alpha"],
    ["replay"],
    ["verify"],
    ["export"],
]


@pytest.mark.parametrize("args", EXISTING_ONLY, ids=lambda a: " ".join(a[:2]))
def test_a_command_on_a_missing_store_refuses_naming_the_path_and_creates_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RUNLOG_STORE", "RUNLOG_DIR", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == 4, result.output
    expected = tmp_path / "runlog" / "runlog.db"
    [line] = result.stderr.splitlines()
    assert f"there is no runlog database at {expected}" in line
    assert not (tmp_path / "runlog").exists()


def test_a_sweep_file_creates_the_store_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNLOG_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sweep.yaml"
    config.write_text("method: grid\nparameters:\n  lr:\n    values: [0.1, 0.2]\n")
    result = cli("sweep", config)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runlog" / "runlog.db").exists()


def test_explain_takes_a_bare_run_id_as_show_does(story: Story) -> None:
    result = cli("explain", story.run_id, "--store", story.path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"run p/{story.run_id}: ")
