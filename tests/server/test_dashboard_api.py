"""The dashboard's read endpoints (/api/dash/...) and static files, against a real server
process over a real SQLite file holding runs of realistic shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import api
from eventstore import (
    Heartbeat,
    HeartbeatExpired,
    PreemptMarked,
    RunExited,
    RunInitialized,
    RunRevived,
    StepLogged,
    open_store,
)

from . import _dashstore
from ._server import running_server
from ._sse import sse_events

BULK = 30  # bulk runs: 10 per project; run-00000, run-00011 and run-00022 failed


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dash") / "runlog.db"
    anyio.run(_dashstore.realistic, path, BULK, 20)
    return path


@pytest.fixture(scope="module")
def url(store_path: Path) -> Iterator[str]:
    with running_server(store_path) as served:
        yield served


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as opened:
        yield opened


async def _runs(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/dash/runs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_runs_filter_by_project_status_sweep_tag_and_search(
    client: httpx.AsyncClient,
) -> None:
    everything = await _runs(client, limit=1000)
    assert everything["total"] == BULK + 1 + 4  # bulk, the preempted run, the sweep's runs
    vision = await _runs(client, project="vision", limit=1000)
    assert {r["project"] for r in vision["items"]} == {"vision"}
    assert vision["total"] == 10 + 1
    failed = await _runs(client, status="failed", limit=1000)
    assert sorted(r["run_id"] for r in failed["items"]) == ["run-00000", "run-00011", "run-00022"]
    swept = await _runs(client, sweep="grid1", limit=1000)
    assert swept["total"] == 4
    assert {r["sweep_id"] for r in swept["items"]} == {"grid1"}
    tagged = await _runs(client, tag="preemptible")
    assert [r["run_id"] for r in tagged["items"]] == ["twice"]
    found = await _runs(client, q="TWI")  # case-insensitive, in ids, names, tags and notes
    assert [r["run_id"] for r in found["items"]] == ["twice"]
    by_name = await _runs(client, q="adamw-", project="nlp", limit=1000)
    assert by_name["total"] >= 1
    assert all((r["name"] or "").startswith("adamw-") for r in by_name["items"])


async def test_runs_sort_by_a_summary_column_in_both_directions_missing_values_last(
    client: httpx.AsyncClient,
) -> None:
    columns = "summary.loss,config.lr"
    ascending = await _runs(client, sort="summary.loss", order="asc", columns=columns, limit=1000)
    descending = await _runs(client, sort="summary.loss", order="desc", columns=columns, limit=1000)
    having = [r for r in ascending["items"] if "summary.loss" in r["columns"]]
    values = [r["columns"]["summary.loss"] for r in having]
    assert values == sorted(values)
    assert len(having) == BULK + 1  # the sweep's runs logged val_loss only
    # The runs without the value come last, whichever the direction.
    assert all("summary.loss" not in r["columns"] for r in ascending["items"][len(having) :])
    down = [r["columns"]["summary.loss"] for r in descending["items"][: len(having)]]
    assert down == sorted(values, reverse=True)
    assert set(having[0]["columns"]) <= {"summary.loss", "config.lr"}


async def test_runs_pages_cover_every_matching_run_once(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        page = await _runs(client, sort="run_id", order="asc", limit=7, offset=offset)
        seen += [f"{r['project']}/{r['run_id']}" for r in page["items"]]
        offset += 7
        if offset >= page["total"]:
            break
    assert len(seen) == len(set(seen)) == page["total"]


async def test_runs_refuse_an_unknown_sort_status_or_column(client: httpx.AsyncClient) -> None:
    for params in (
        {"sort": "colour"},
        {"status": "sleeping"},
        {"columns": "loss"},
        {"order": "sideways"},
    ):
        response = await client.get("/api/dash/runs", params=params)
        assert response.status_code == 400, params
        assert response.json()["detail"]


async def test_facets_list_filters_and_the_most_common_keys_first(
    client: httpx.AsyncClient,
) -> None:
    facets = (await client.get("/api/dash/facets")).json()
    assert facets["projects"] == {"nlp": 10, "rl": 10, "tune": 4, "vision": 11}
    assert "grid1" in facets["sweeps"]
    assert "preemptible" in facets["tags"]
    assert set(facets["summary_keys"]) == {"acc", "loss", "lr", "val_loss"}
    # lr is in every run's config (bulk, preempted, sweep): the first column offered.
    assert facets["config_keys"][0] == "lr"


async def test_the_table_sees_a_new_run_and_a_status_change(
    client: httpx.AsyncClient, store_path: Path
) -> None:
    before = await _runs(client, project="fresh")
    assert before["total"] == 0
    run = await api.init(project="fresh", id="late", store=str(store_path))
    await run.log({"loss": 1.0})
    await run.flush()
    page = await _runs(client, project="fresh")
    assert [(r["run_id"], r["status"], r["steps"]) for r in page["items"]] == [
        ("late", "running", 1)
    ]
    await run.finish(3)
    after = await _runs(client, project="fresh")
    assert after["items"][0]["status"] == "failed"


async def test_lifeline_shows_both_preemptions_and_three_incarnations(
    client: httpx.AsyncClient,
) -> None:
    line = (await client.get("/api/dash/runs/vision/twice/lifeline")).json()
    bands = line["bands"]
    assert [b["incarnation"] for b in bands] == [1, 2, 3]
    assert [b["end"] for b in bands] == ["exit 143", "exit 143", "exit 0"]
    assert [(b["first_step"], b["last_step"]) for b in bands] == [(0, 39), (40, 79), (80, 119)]
    assert [b["resumed"] for b in bands] == [False, True, True]
    preempts = [m for m in line["marks"] if m["kind"] == "preempt"]
    assert [(m["incarnation"], m["step"]) for m in preempts] == [(1, 39), (2, 79)]
    # Every mark names the log position it comes from, and that position holds it.
    for mark in line["marks"]:
        page = (await client.get("/api/log", params={"from": mark["position"], "limit": 1})).json()
        assert page["events"][0]["stream"] == "run:vision/twice"


async def _append(path: Path, stream: str, events: list[Any]) -> None:
    async with open_store(str(path)) as store:
        await store.append(stream, events)


async def test_lifeline_marks_expiry_revival_and_fenced_writes(
    client: httpx.AsyncClient, store_path: Path
) -> None:
    stream = "run:edge/zombie"
    await _append(
        store_path,
        stream,
        [
            RunInitialized(
                project="edge", run_id="zombie", incarnation=1, resumed=False, starting_step=0
            ),
            StepLogged(incarnation=1, step=0, metrics={"loss": 1.0}),
            HeartbeatExpired(incarnation=1, last_position=0, observed_at_us=1, timeout_s=60.0),
            Heartbeat(incarnation=1),
            RunRevived(incarnation=1),
            RunInitialized(
                project="edge", run_id="zombie", incarnation=2, resumed=True, starting_step=1
            ),
            StepLogged(incarnation=1, step=1, metrics={"loss": 0.5}),  # the old writer, fenced
            StepLogged(incarnation=1, step=2, metrics={"loss": 0.4}),
            StepLogged(incarnation=2, step=1, metrics={"loss": 0.6}),
            PreemptMarked(incarnation=2),
            RunExited(incarnation=2, exit_code=137),
        ],
    )
    line = (await client.get("/api/dash/runs/edge/zombie/lifeline")).json()
    kinds = [m["kind"] for m in line["marks"]]
    assert kinds == ["init", "expired", "revived", "resume", "fenced", "preempt", "exit"]
    assert line["fenced"] == 2
    assert line["bands"][0]["end"] is None  # revived, then superseded without an exit
    assert line["bands"][1]["end"] == "exit 137"
    assert line["bands"][1]["first_step"] == 1


async def test_lifeline_continues_from_where_it_stopped(
    client: httpx.AsyncClient, store_path: Path
) -> None:
    run = await api.init(project="edge", id="growing", store=str(store_path))
    await run.log({"loss": 1.0})
    await run.flush()
    first = (await client.get("/api/dash/runs/edge/growing/lifeline")).json()
    assert first["bands"][0]["steps"] == 1
    await run.log({"loss": 0.5})
    await run.mark_preempting()
    await run.finish(143)
    second = (await client.get("/api/dash/runs/edge/growing/lifeline")).json()
    assert second["bands"][0]["steps"] == 2
    assert second["bands"][0]["end"] == "exit 143"
    assert [m["kind"] for m in second["marks"]] == ["init", "preempt", "exit"]


async def test_lifeline_of_a_sweep_run_shows_its_claims_and_requeue(
    client: httpx.AsyncClient, store_path: Path
) -> None:
    sweep_id = await api.create_sweep(
        {"method": "grid", "parameters": {"x": {"values": [1]}}},
        project="sq",
        store=str(store_path),
        sweep_id="requeue1",
    )
    agent = await api.register_agent(sweep_id, store=str(store_path))
    work = await api.claim(sweep_id, agent, store=str(store_path))
    assert work is not None
    await _append(
        store_path,
        f"run:sq/{work.run_id}",
        [
            RunInitialized(
                project="sq",
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
    again = await api.claim(sweep_id, agent, store=str(store_path))
    assert again is not None
    assert again.run_id == work.run_id
    line = (await client.get(f"/api/dash/runs/sq/{work.run_id}/lifeline")).json()
    kinds = [m["kind"] for m in line["marks"]]
    assert kinds[:2] == ["scheduled", "claimed"]
    assert kinds[-1] == "requeued"
    assert "preempt" in kinds
    assert "exit" in kinds


async def test_state_as_of_a_position_is_the_state_back_then(client: httpx.AsyncClient) -> None:
    line = (await client.get("/api/dash/runs/vision/twice/lifeline")).json()
    first_exit = next(m for m in line["marks"] if m["kind"] == "exit")
    then = (
        await client.get(
            "/api/dash/runs/vision/twice/as_of", params={"position": first_exit["position"]}
        )
    ).json()
    assert then["state"]["status"] == "preempted"
    assert then["state"]["incarnation"] == 1
    assert then["state"]["last_step"] == 39
    before = (
        await client.get(
            "/api/dash/runs/vision/twice/as_of",
            params={"position": line["bands"][0]["position"] - 1},
        )
    ).json()
    assert before["state"] is None
    missing = await client.get("/api/dash/runs/vision/twice/as_of")
    assert missing.status_code == 400


async def test_sweep_page_has_parameters_metric_and_the_best_run(
    client: httpx.AsyncClient,
) -> None:
    sweep = (await client.get("/api/dash/sweeps/grid1")).json()
    assert sweep["metric"] == "val_loss"
    assert sweep["goal"] == "minimize"
    assert sweep["parameters"] == ["batch", "lr"]
    assert len(sweep["runs"]) == 4
    best = min((r for r in sweep["runs"] if r["metric"] is not None), key=lambda r: r["metric"])
    assert sweep["best"] == best
    assert best["params"] == {"lr": 0.01, "batch": 32}
    assert (await client.get("/api/dash/sweeps/nope")).status_code == 404


async def test_explain_and_verify_from_the_audit_view(client: httpx.AsyncClient) -> None:
    lines = (await client.get("/api/dash/explain/vision/twice")).json()["lines"]
    assert lines[0].startswith("run vision/twice: finished")
    report = (await client.get("/api/dash/verify")).json()
    assert report["ok"] is True
    assert report["first_bad_position"] is None
    assert report["checked"] == report["head"]


async def test_static_files_are_served_with_the_uplot_licence(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert "/static/dashboard.js" in page.text
    script = await client.get("/static/uPlot.iife.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    licence = await client.get("/static/uPlot.LICENSE")
    assert "MIT License" in licence.text
    assert (await client.get("/static/secret.py")).status_code == 404
    assert (await client.get("/static/..%2F_app.py")).status_code == 404


async def test_one_event_stream_follows_several_runs(
    client: httpx.AsyncClient, url: str, store_path: Path
) -> None:
    head = (await client.get("/api/head")).json()["head"]
    one = await api.init(project="live", id="one", store=str(store_path))
    two = await api.init(project="live", id="two", store=str(store_path))
    other = await api.init(project="live", id="other", store=str(store_path))
    for run in (one, two, other):
        await run.log({"loss": 1.0})
        await run.finish()
    params = [("stream", "run:live/one"), ("stream", "run:live/two"), ("from", str(head + 1))]
    seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as streaming,
        streaming.stream("GET", "/api/events", params=params) as response,
    ):
        async for _, _, data in sse_events(response):
            seen.append(data["stream"])
            if data["stream"] == "run:live/two" and data["type"] == "RunExited":
                break
    assert set(seen) == {"run:live/one", "run:live/two"}
    assert json.dumps(seen).count("other") == 0


@pytest.mark.slow
async def test_the_dashboard_endpoints_read_a_postgres_store(tmp_path: Path) -> None:
    from .._postgres import database_url

    url = database_url()
    await _dashstore.bulk_runs(url, 6, 5)
    await _dashstore.twice_preempted(url)
    await _dashstore.grid_sweep(url)
    with running_server(url, log=tmp_path / "serve.log") as served:
        async with httpx.AsyncClient(base_url=served, timeout=30) as client:
            page = await _runs(client, sort="summary.loss", order="asc", columns="summary.loss")
            assert page["total"] == 6 + 1 + 4
            assert page["items"][0]["run_id"] == "twice"
            line = (await client.get("/api/dash/runs/vision/twice/lifeline")).json()
            assert [b["end"] for b in line["bands"]] == ["exit 143", "exit 143", "exit 0"]
            sweep = (await client.get("/api/dash/sweeps/grid1")).json()
            assert sweep["best"]["params"] == {"lr": 0.01, "batch": 32}
