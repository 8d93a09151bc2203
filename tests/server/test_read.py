"""The JSON read endpoints against a real server process over a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import httpx


async def test_runs_filter_by_project_and_status_and_paginate(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/runs")).json()
    assert [r["run_id"] for r in everything["items"]][:3] == ["done", "failed", "running"]
    finished_a = (
        await client.get("/api/runs", params={"project": "a", "status": "finished"})
    ).json()
    assert [r["run_id"] for r in finished_a["items"]] == ["done"]
    assert finished_a["items"][0]["last_step"] == 99
    newest = (await client.get("/api/runs", params={"order": "newest", "limit": 2})).json()
    assert [r["run_id"] for r in newest["items"]] == [
        r["run_id"] for r in everything["items"][::-1][:2]
    ]
    failed = (await client.get("/api/runs", params={"status": "failed"})).json()
    assert [r["run_id"] for r in failed["items"]] == ["failed"]

    seen = []
    offset: int | None = 0
    while offset is not None:
        page = (await client.get("/api/runs", params={"limit": 2, "offset": offset})).json()
        assert page["total"] == everything["total"]
        assert len(page["items"]) <= 2
        seen += [r["run_id"] for r in page["items"]]
        offset = page["next_offset"]
    assert seen == [r["run_id"] for r in everything["items"]]


async def test_one_run(client: httpx.AsyncClient) -> None:
    run = (await client.get("/api/runs/a/done")).json()
    assert run["status"] == "finished"
    assert run["steps"] == 100
    assert run["next_step"] == 100
    assert run["config"] == {"lr": 0.1}
    assert run["as_of"] >= 103
    missing = await client.get("/api/runs/a/nope")
    assert missing.status_code == 404
    assert "a/nope" in missing.json()["detail"]


async def test_history_keys_range_and_downsampling(client: httpx.AsyncClient) -> None:
    full = (await client.get("/api/runs/a/done/history")).json()
    assert full["keys"] == ["acc", "loss"]
    assert [p["step"] for p in full["points"]] == list(range(100))
    assert full["points"][3]["metrics"] == {"loss": 0.25, "acc": 0.03}

    ranged = (await client.get("/api/runs/a/done/history?start=10&stop=20&keys=loss")).json()
    assert [p["step"] for p in ranged["points"]] == list(range(10, 20))
    assert all(set(p["metrics"]) == {"loss"} for p in ranged["points"])

    sampled = (await client.get("/api/runs/a/done/history", params={"points": 5})).json()
    steps = [p["step"] for p in sampled["points"]]
    assert len(steps) <= 5
    assert steps[0] == 0
    assert steps[-1] == 99


async def test_timeline_leaves_steps_out_unless_asked(client: httpx.AsyncClient) -> None:
    lifecycle = (await client.get("/api/runs/a/done/timeline")).json()
    assert [e["type"] for e in lifecycle["events"]] == ["RunInitialized", "FileSaved", "RunExited"]
    assert lifecycle["done"]
    with_steps = (await client.get("/api/runs/a/done/timeline?steps=true&limit=10")).json()
    assert [e["version"] for e in with_steps["events"]] == list(range(10))
    assert not with_steps["done"]
    rest = (
        await client.get(f"/api/runs/a/done/timeline?from_version={with_steps['next_version']}")
    ).json()
    assert rest["events"][0]["type"] == "FileSaved"


async def test_files_are_listed_and_downloaded(client: httpx.AsyncClient) -> None:
    [saved] = (await client.get("/api/runs/a/done/files")).json()
    assert saved["name"] == "model.bin"
    assert saved["size"] == 11
    body = await client.get("/api/runs/a/done/files/model.bin")
    assert body.status_code == 200
    assert body.content == b"weights \x00\x01\x02"
    assert (await client.get("/api/runs/a/done/files/other.bin")).status_code == 404


async def test_sweeps_and_one_sweep_with_its_queue(
    client: httpx.AsyncClient, populated: tuple[Path, dict[str, str]]
) -> None:
    _, names = populated
    sweeps = (await client.get("/api/sweeps")).json()
    assert [s["sweep_id"] for s in sweeps["items"]] == [names["sweep"]]
    sweep = (await client.get(f"/api/sweeps/{names['sweep']}")).json()
    assert sweep["status"] == "RUNNING"
    assert sweep["queue"] == [names["queued"]]
    assert [r["run_id"] for r in sweep["queue_runs"]] == [names["queued"]]
    assert sweep["queue_runs"][0]["status"] == "preempted"
    assert (await client.get("/api/sweeps/nope")).status_code == 404
    assert (await client.get("/api/sweeps?status=running")).json()["total"] == 1


async def test_the_log_pages_by_position_without_gap_or_overlap(client: httpx.AsyncClient) -> None:
    head = (await client.get("/api/head")).json()["head"]
    positions: list[int] = []
    start = 1
    while True:
        page = (await client.get("/api/log", params={"from": start, "limit": 37})).json()
        if not page["events"]:
            break
        positions += [e["position"] for e in page["events"]]
        start = page["next"]
    assert positions == list(range(1, head + 1))
    first = (await client.get("/api/log?from=1&limit=1")).json()["events"][0]
    assert first["type"] == "RunInitialized"
    assert first["data"]["run_id"] == "done"


async def test_openapi_describes_the_endpoints(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    for path in ("/api/runs", "/api/runs/{project}/{run_id}/history", "/api/events", "/api/log"):
        assert path in document["paths"]
    assert "RunPage" in document["components"]["schemas"]
