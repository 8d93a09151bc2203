"""Fixtures for the library: a clean environment and a directory per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .._postgres import database_url

VARIABLES = ["RUN_ID", "RESUME", "PROJECT", "STORE", "DIR", "SWEEP_ID", "SWEEP_PARAM_PATH"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VARIABLES:
        monkeypatch.delenv(f"RUNLOG_{name}", raising=False)
        monkeypatch.delenv(f"WANDB_{name}", raising=False)
    return


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory: the default root of the auto-resume file and the store."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh store of each backend, also set as ``RUNLOG_STORE`` (the default store)."""
    target = str(tmp_path / "store.db") if request.param == "sqlite" else database_url()
    monkeypatch.setenv("RUNLOG_STORE", target)
    return target
