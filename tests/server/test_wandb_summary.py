"""The server shows what the W&B surface recorded: summary, config, metric definitions
and nested metrics under their ``group.key`` name."""

from __future__ import annotations

from pathlib import Path

import httpx

import api
from eventstore import open_store

from ._server import running_server


async def test_the_run_endpoint_serves_summary_config_and_nested_history_keys(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runlog.db")
    async with api.init(project="w", id="r", store=store, config={"lr": 0.1}) as run:
        run.define_metric("train.loss", summary="min")
        for loss in (2.0, 1.0, 1.5):
            await run.log({"train": {"loss": loss}, "epoch": 1})
        run.summary["best"] = 1.0
        run.config.update({"batch": 8})
    with running_server(store) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            state = (await client.get("/api/runs/w/r")).json()
            history = (await client.get("/api/runs/w/r/history?keys=train.loss")).json()
    assert state["summary"] == {"train.loss.min": 1.0, "epoch": 1, "best": 1.0}
    assert state["config"] == {"lr": 0.1, "batch": 8}
    assert state["metrics"]["train.loss"]["ops"] == ["min"]
    assert history["keys"] == ["best", "epoch", "train.loss"]
    assert [p["metrics"] for p in history["points"]] == [
        {"train.loss": 2.0},
        {"train.loss": 1.0},
        {"train.loss": 1.5},
    ]


async def test_a_rewound_runs_history_hides_the_later_rows_and_until_shows_them(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runlog.db")
    async with api.init(project="w", id="r", store=store) as run:
        for step in range(6):
            await run.log({"loss": float(step)})
    async with open_store(store) as opened:
        before = await opened.head()
    async with api.init(project="w", resume_from="r?_step=2", store=store) as run:
        await run.log({"loss": 30.0})
    with running_server(store) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            now = (await client.get("/api/runs/w/r/history")).json()
            then = (await client.get(f"/api/runs/w/r/history?until={before}")).json()
            state = (await client.get("/api/runs/w/r")).json()
    assert [(p["step"], p["metrics"]["loss"]) for p in now["points"]] == [
        (0, 0.0),
        (1, 1.0),
        (2, 2.0),
        (3, 30.0),
    ]
    assert [p["step"] for p in then["points"]] == [0, 1, 2, 3, 4, 5]
    assert (state["last_step"], state["steps"], state["summary"]) == (3, 4, {"loss": 30.0})
