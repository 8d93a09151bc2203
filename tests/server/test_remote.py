"""The remote store: training code logs through ``runlog serve`` with the library's semantics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import api
from eventstore import InvalidArgument, StoreError, open_store

from ._server import TOKEN, running_server

TRAINER = str(Path(__file__).parent.parent / "_trainer.py")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with running_server(tmp_path / "served.db") as served:
        yield served


def _env(token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    if token is not None:
        env["RUNLOG_TOKEN"] = token
    return env


def _trainer(mode: str, url: str, run_id: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, TRAINER, mode, url, run_id],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)  # reaps it and closes its pipes


def test_a_training_script_logs_through_the_server(url: str, tmp_path: Path) -> None:
    done = _trainer("exit-7", url, "r1", tmp_path)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    run = httpx.get(f"{url}/api/runs/p/r1").json()
    assert (run["status"], run["steps"], run["exit_code"]) == ("failed", 5, 7)


def test_sigkill_then_resume_through_the_server(url: str, tmp_path: Path) -> None:
    first = _trainer("flushing", url, "r2", tmp_path)
    assert first.stdout is not None
    assert first.stdout.readline().split() == ["started", "0"]
    flushed = -1
    while flushed < 40:
        flushed = int(first.stdout.readline().split()[1])
    _kill(first)

    second = _trainer("flushing", url, "r2", tmp_path)
    assert second.stdout is not None
    started = int(second.stdout.readline().split()[1])
    # Everything acknowledged as durable survived the SIGKILL; the run continues after it.
    assert started > flushed
    resumed_flush = int(second.stdout.readline().split()[1])
    _kill(second)
    run = httpx.get(f"{url}/api/runs/p/r2").json()
    assert run["incarnation"] == 2
    assert run["resumes"] == 1
    assert run["starting_step"] == started
    steps = [p["step"] for p in httpx.get(f"{url}/api/runs/p/r2/history").json()["points"]]
    assert steps == list(range(len(steps)))  # no gap, no repeat across the kill
    assert steps[-1] >= resumed_flush


def test_an_older_incarnation_is_fenced_through_the_server(url: str, tmp_path: Path) -> None:
    first = _trainer("contender", url, "r3", tmp_path)
    assert first.stdout is not None
    assert first.stdout.readline().split()[:2] == ["started", "1"]
    second = _trainer("contender", url, "r3", tmp_path)
    assert second.stdout is not None
    line = second.stdout.readline()
    if not line:
        _kill(first)
        raise AssertionError(second.communicate(timeout=30)[1])
    assert line.split()[:2] == ["started", "2"]
    assert first.stdout.readline().startswith("fenced")
    first.communicate(timeout=60)
    assert first.returncode == 3
    _kill(second)
    run = httpx.get(f"{url}/api/runs/p/r3").json()
    assert run["incarnation"] == 2


async def test_logging_is_group_committed_over_http(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_TOKEN", TOKEN)
    async with api.init(project="g", id="batched", store=url) as run:
        for step in range(5000):
            await run.log({"loss": 1 / (step + 1)})
    async with open_store(url) as store:
        records = [r async for r in store.read_stream("run:g/batched")]
    assert [r.event.step for r in records[1:-1]] == list(range(5000))  # type: ignore[attr-defined]
    # One append is one commit with one timestamp: 5,000 steps took a handful of appends.
    commits = {r.recorded_at_us for r in records}
    assert len(commits) <= 50


def test_the_blocking_facade_logs_through_the_server(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import sync

    monkeypatch.setenv("RUNLOG_TOKEN", TOKEN)
    with sync.init(project="s", id="blocking", store=url) as run:
        for step in range(300):
            run.log({"loss": 1 / (step + 1)})
    state = httpx.get(f"{url}/api/runs/s/blocking").json()
    assert (state["status"], state["steps"], state["last_step"]) == ("finished", 300, 299)


async def test_files_round_trip_through_the_server(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_TOKEN", TOKEN)
    checkpoint = tmp_path / "ckpt.bin"
    checkpoint.write_bytes(bytes(range(256)) * 100)
    async with api.init(project="f", id="files", store=url, dir=tmp_path) as run:
        await run.save(checkpoint)
        empty = tmp_path / "empty.txt"
        empty.write_bytes(b"")
        await run.save(empty)
    checkpoint.unlink()
    empty.unlink()
    async with api.init(project="f", id="files", store=url, dir=tmp_path, resume="must") as run:
        restored = await run.restore("ckpt.bin")
        assert (await run.restore("empty.txt")).read_bytes() == b""
    assert restored.read_bytes() == bytes(range(256)) * 100
    async with open_store(url) as store:
        with pytest.raises(InvalidArgument, match="no file"):
            await store.get_file("blake2b-256:" + "0" * 64, tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


async def test_without_the_token_a_remote_init_is_refused_and_writes_nothing(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNLOG_TOKEN", raising=False)
    with pytest.raises(StoreError, match="RUNLOG_TOKEN"):
        await api.init(project="n", id="no-token", store=url)
    monkeypatch.setenv("RUNLOG_TOKEN", "not-the-servers-token")
    with pytest.raises(StoreError, match="refused"):
        await api.init(project="n", id="no-token", store=url)
    async with open_store(url) as store:
        assert await store.head() == 0


async def test_a_server_that_is_not_there_is_store_unavailable() -> None:
    from eventstore import StoreUnavailable

    from ._server import free_port

    with pytest.raises(StoreUnavailable, match="runlog serve"):
        await open_store(f"http://127.0.0.1:{free_port()}")


async def test_a_sweep_agent_works_through_the_server(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_TOKEN", TOKEN)
    config = {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01]}}}
    sweep_id = await api.create_sweep(config, project="sw", store=url)

    async def train() -> None:
        async with api.init() as run:
            for step in range(run.step, 5):
                await run.log({"loss": run.config["lr"] / (step + 1)})

    assert await api.agent(sweep_id, train, store=url, poll_interval=0.05) == 2
    async with httpx.AsyncClient(base_url=url) as client:
        sweep = (await client.get(f"/api/sweeps/{sweep_id}")).json()
        runs = (await client.get("/api/runs", params={"project": "sw"})).json()["items"]
    assert sweep["status"] == "FINISHED"
    assert sorted(run["config"]["lr"] for run in runs) == [0.01, 0.1]
    assert all(run["status"] == "finished" and run["steps"] == 5 for run in runs)
