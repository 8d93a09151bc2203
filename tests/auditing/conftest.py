"""A store with a story to audit: a preempted and resumed run with a file, and a sweep
whose first run was preempted and waits in its queue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

import api
from api._cli import main
from eventstore import open_store

GRID = {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.2]}}}
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Story:
    path: Path
    run_id: str
    sweep_id: str
    queued_run: str
    checkpoint: bytes


async def write_story(path: Path, tmp: Path) -> Story:
    async with open_store(path) as store:
        first = await api.init(project="p", id="alpha", config={"lr": 0.1}, store=store)
        for step in range(10):
            await first.log({"loss": 1.0 / (step + 1)})
        checkpoint = tmp / "weights.bin"
        checkpoint.write_bytes(b"weights " * 1000)
        await first.save(checkpoint)
        await first.mark_preempting()
        await first.finish(143)
        again = await api.init(project="p", id="alpha", resume="must", store=store)
        for _ in range(5):
            await again.log({"loss": 0.01})
        await again.finish(0)

        sweep_id = await api.create_sweep(GRID, project="p", store=store, seed=1)
        await api.register_agent(sweep_id, store=store, agent_id="agent-1")
        work = await api.claim(sweep_id, "agent-1", store=store)
        assert work is not None
        os.environ["RUNLOG_SWEEP_ID"] = work.sweep_id
        try:
            run = await api.init(project="p", id=work.run_id, resume="allow", store=store)
        finally:
            del os.environ["RUNLOG_SWEEP_ID"]
        await run.log({"loss": 0.5})
        await run.mark_preempting()
        await run.finish(143)
    return Story(path, "alpha", sweep_id, work.run_id, checkpoint.read_bytes())


@pytest.fixture
def story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Story:
    monkeypatch.delenv("RUNLOG_STORE", raising=False)
    monkeypatch.delenv("RUNLOG_SWEEP_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    return anyio.run(write_story, tmp_path / "log.db", tmp_path)


def cli(*args: str | os.PathLike[str]) -> Result:
    """``runlog ARGS`` in this process (click's runner), output captured."""
    return CliRunner().invoke(main, [os.fspath(a) for a in args], catch_exceptions=False)


def cli_json(*args: str | os.PathLike[str]) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def runlog(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``runlog ARGS`` as a real process, the way scripts and auditors call it."""
    return subprocess.run(
        [sys.executable, "-m", "api", *map(os.fspath, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
