"""`GET .../history` without `points` on a run too long to return whole is refused (400)
before any event is read: the step count is known from the read model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import api
from api._server import _read, create_app
from eventstore import SQLiteStore


async def long_run(path: Path, steps: int) -> None:
    async with api.init(project="p", id="long", store=path) as run:
        for step in range(steps):
            await run.log({"loss": float(step)})


@pytest.mark.parametrize("query", ["", "?start=0&stop=1200", "?keys=loss"])
async def test_a_history_too_long_to_return_whole_is_refused_before_reading_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    path = tmp_path / "long.db"
    await long_run(path, 1500)
    monkeypatch.setattr(_read, "_MAX_POINTS", 1000)  # the limit, scaled down

    async def no_reading(self: Any, positions: Any) -> Any:
        raise AssertionError("the history's events were read before refusing")

    monkeypatch.setattr(SQLiteStore, "read_positions", no_reading)
    app = create_app(path, reap_interval=None)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://runlog") as client,
    ):
        response = await client.get(f"/api/runs/p/long/history{query}")
    assert response.status_code == 400, response.text
    assert "pass points=" in response.json()["detail"]
