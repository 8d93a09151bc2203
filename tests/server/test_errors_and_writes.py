"""Malformed requests get a 4xx JSON error and change nothing; writes need the token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from eventstore import RunInitialized, open_store

from ._server import TOKEN, running_server
from ._sse import sse_events

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [
        ("GET", "/api/runs?limit=0", {}, 400, "limit"),
        ("GET", "/api/runs?offset=-1", {}, 400, "offset"),
        ("GET", "/api/runs?status=sleeping", {}, 400, "unknown status"),
        ("GET", "/api/runs/a/done/history?points=x", {}, 400, "points"),
        ("GET", "/api/log?from=abc", {}, 400, "from"),
        ("GET", "/api/nothing", {}, 404, "no endpoint"),
        ("DELETE", "/api/runs", {}, 405, "not allowed"),
        ("POST", "/api/runs", {"content": b"{not json", "headers": AUTH}, 400, "invalid"),
        ("POST", "/api/runs", {"json": {"project": "a"}, "headers": AUTH}, 400, "id"),
        ("POST", "/api/runs", {"json": {"project": "a", "id": "x/y"}, "headers": AUTH}, 400, "x/y"),
        ("POST", "/api/runs", {"json": {"project": "a", "id": "done"}, "headers": AUTH}, 409,
         "already exists"),
        ("POST", "/api/runs/a/done/log", {"json": {"incarnation": 1, "steps": [
            {"step": -1, "metrics": {}}]}, "headers": AUTH}, 400, "step"),
        ("POST", "/api/store/append", {"content": b"\xc1", "headers": {
            **AUTH, "content-type": "application/msgpack"}}, 400, "invalid"),
        ("POST", "/api/store/append", {"json": {}, "headers": AUTH}, 415, "msgpack"),
        ("POST", "/api/sweeps/sw1/explode", {"headers": AUTH}, 404, "explode"),
        ("POST", "/api/runs/a/done/finish", {"content": b" " * (2 << 20), "headers": AUTH},
         413, "large"),
        ("POST", "/api/sweeps/nope/pause", {"headers": AUTH}, 404, "nope"),
    ],
)  # fmt: skip
async def test_malformed_requests_get_a_json_error_naming_the_problem(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict, status: int, words: str
) -> None:
    head = (await client.get("/api/head")).json()["head"]
    response = await client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert words in body["detail"]
    assert (await client.get("/api/head")).json()["head"] == head


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong-token-wrong-token"}, 403),
     ({"Authorization": "Basic " + TOKEN}, 401)],
)  # fmt: skip
async def test_writes_without_the_token_are_refused_and_write_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    head = (await client.get("/api/head")).json()["head"]
    attempts = [
        ("POST", "/api/runs", {"json": {"project": "a", "id": "new"}}),
        ("POST", "/api/runs/a/done/log", {"json": {"incarnation": 1, "steps": []}}),
        ("POST", "/api/runs/a/done/finish", {"json": {"incarnation": 1}}),
        ("POST", "/api/sweeps", {"json": {"config": {"method": "grid"}}}),
        ("POST", "/api/sweeps/sw1/cancel", {}),
        ("POST", "/api/store/append", {"content": b""}),
        ("PUT", "/api/store/files", {"content": b"bytes"}),
    ]
    for method, path, kwargs in attempts:
        response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, (path, response.text)
        assert TOKEN not in response.text
    assert (await client.get("/api/head")).json()["head"] == head
    assert (await client.get("/api/runs/a/new")).status_code == 404
    assert (await client.get("/api/sweeps/sw1")).json()["status"] == "RUNNING"


async def test_a_server_without_a_token_refuses_every_write(
    populated: tuple[Path, dict[str, str]],
) -> None:
    path, _ = populated
    with running_server(path, token=None) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/api/runs", json={"project": "a", "id": "new"}, headers=AUTH
            )
    assert response.status_code == 403
    assert "RUNLOG_SERVER_TOKEN" in response.json()["detail"]


async def test_the_token_can_come_from_a_file(
    populated: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, _ = populated
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789\n")
    with running_server(path, "--token-file", str(token_file), token=None) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            wrong = await client.post(
                "/api/runs", json={"project": "a", "id": "filed"}, headers=AUTH
            )
            right = await client.post(
                "/api/runs",
                json={"project": "a", "id": "filed"},
                headers={"Authorization": "Bearer from-a-file-0123456789"},
            )
    assert wrong.status_code == 403
    assert right.status_code == 201


def test_a_short_token_is_refused_at_start(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tiny-tok")
    done = subprocess.run(
        [sys.executable, "-m", "api", "serve", "--store", str(tmp_path / "s.db"),
         "--token-file", str(token_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "shorter than 16 characters" in done.stderr
    assert "tiny-tok" not in done.stderr  # the message names the file, never the token


async def test_init_log_finish_over_json_with_fencing(client: httpx.AsyncClient) -> None:
    started = await client.post(
        "/api/runs", json={"project": "j", "id": "r1", "config": {"lr": 1}}, headers=AUTH
    )
    assert started.status_code == 201, started.text
    first = started.json()
    assert (first["incarnation"], first["resumed"], first["starting_step"]) == (1, False, 0)
    steps = [{"step": s, "metrics": {"loss": 1 / (s + 1)}} for s in range(10)]
    logged = await client.post(
        "/api/runs/j/r1/log", json={"incarnation": 1, "steps": steps}, headers=AUTH
    )
    assert logged.status_code == 200
    assert len(logged.json()["positions"]) == 10
    # A second start with resume="allow" takes over: the first writer is fenced.
    again = await client.post(
        "/api/runs", json={"project": "j", "id": "r1", "resume": "allow"}, headers=AUTH
    )
    assert again.json()["incarnation"] == 2
    assert again.json()["starting_step"] == 10
    fenced = await client.post(
        "/api/runs/j/r1/log",
        json={"incarnation": 1, "steps": [{"step": 10, "metrics": {}}]},
        headers=AUTH,
    )
    assert fenced.status_code == 409
    assert "fenced" in fenced.json()["detail"]
    done = await client.post(
        "/api/runs/j/r1/finish", json={"incarnation": 2, "exit_code": 0}, headers=AUTH
    )
    assert done.status_code == 200
    run = (await client.get("/api/runs/j/r1")).json()
    assert (run["status"], run["steps"], run["incarnation"]) == ("finished", 10, 2)


async def test_sweep_control_through_the_server(
    client: httpx.AsyncClient, populated: tuple[Path, dict[str, str]]
) -> None:
    _, names = populated
    paused = await client.post(f"/api/sweeps/{names['sweep']}/pause", headers=AUTH)
    assert paused.status_code == 200
    assert paused.json()["status"] == "PAUSED"
    resumed = await client.post(f"/api/sweeps/{names['sweep']}/resume", headers=AUTH)
    assert resumed.json()["status"] == "RUNNING"
    created = await client.post(
        "/api/sweeps",
        json={"config": {"method": "grid", "parameters": {"x": {"values": [1]}}}, "project": "q"},
        headers=AUTH,
    )
    assert created.status_code == 201
    sweep_id = created.json()["sweep_id"]
    cancelled = await client.post(f"/api/sweeps/{sweep_id}/cancel", headers=AUTH)
    assert cancelled.json()["status"] == "CANCELED"
    refused = await client.post(f"/api/sweeps/{sweep_id}/pause", headers=AUTH)
    assert refused.status_code == 409
    assert "Cannot pause" in refused.json()["detail"]


async def test_the_watchdog_runs_inside_the_server(tmp_path: Path) -> None:
    path = tmp_path / "runlog.db"
    async with open_store(path) as store:
        # A run that started and then went silent: its process died without a word.
        await store.append(
            "run:w/silent",
            [RunInitialized(project="w", run_id="silent", incarnation=1, resumed=False,
                            starting_step=0)],
        )  # fmt: skip
    with running_server(path, "--reap-interval", "0.2", "--reap-timeout", "0.5") as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            with anyio.fail_after(30):
                # Wait for the watchdog's event on the live stream instead of polling.
                async with client.stream(
                    "GET", "/api/events", params={"from": 1, "stream": "run:w/silent"}
                ) as response:
                    async for _, kind, _ in sse_events(response):
                        if kind == "HeartbeatExpired":
                            break
            assert (await client.get("/api/runs/w/silent")).json()["status"] == "crashed"
            timeline = (await client.get("/api/runs/w/silent/timeline")).json()
    assert [e["type"] for e in timeline["events"]] == ["RunInitialized", "HeartbeatExpired"]
