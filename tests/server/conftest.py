"""Fixtures: a real SQLite file with runs and a sweep, served by a real ``runlog serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

import api
from eventstore import PreemptMarked, RunExited, RunInitialized, open_store

from ._server import running_server

GRID = {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}}}


async def _populate(path: Path) -> dict[str, str]:
    """Runs in two projects (finished, failed, running) and a sweep with a queued run."""
    store = str(path)
    async with api.init(project="a", id="done", store=store, config={"lr": 0.1}) as run:
        for step in range(100):
            await run.log({"loss": 1 / (step + 1), "acc": step / 100})
        marker = path.parent / "model.bin"
        marker.write_bytes(b"weights \x00\x01\x02")
        await run.save(marker)
    failed = await api.init(project="a", id="failed", store=store)
    await failed.log({"loss": 1.0})
    await failed.finish(2)
    other = await api.init(project="b", id="running", store=store)
    await other.log({"loss": 3.0})
    await other.flush()
    await other.finish(0)
    sweep_id = await api.create_sweep(GRID, project="s", store=store, sweep_id="sw1")
    agent = await api.register_agent(sweep_id, store=store)
    work = await api.claim(sweep_id, agent, store=store)
    assert work is not None
    async with open_store(store) as opened:
        stream = f"run:s/{work.run_id}"
        await opened.append(
            stream,
            [
                RunInitialized(
                    project="s",
                    run_id=work.run_id,
                    incarnation=1,
                    resumed=False,
                    starting_step=0,
                    sweep_id=sweep_id,
                ),
                PreemptMarked(incarnation=1),
                RunExited(incarnation=1, exit_code=143),
            ],
        )
    return {"sweep": sweep_id, "queued": work.run_id}


@pytest.fixture
async def populated(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "runlog.db"
    return path, await _populate(path)


@pytest.fixture
def server(populated: tuple[Path, dict[str, str]]) -> Iterator[str]:
    path, _ = populated
    with running_server(path) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as opened:
        yield opened
