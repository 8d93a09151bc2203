"""The live event stream: catch-up, live appends, and resuming with Last-Event-ID."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from eventstore import StepLogged, open_store

from ._server import running_server
from ._sse import sse_events


async def _take(client: httpx.AsyncClient, count: int, **kwargs: object) -> list[int]:
    positions: list[int] = []
    with anyio.fail_after(30):
        async with client.stream("GET", "/api/events", **kwargs) as response:  # type: ignore[arg-type]
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for position, _, data in sse_events(response):
                assert data["position"] == position
                positions.append(position)
                if len(positions) == count:
                    break
    return positions


async def test_resuming_with_last_event_id_has_no_gap_and_no_duplicate(
    client: httpx.AsyncClient, populated: tuple[Path, dict[str, str]]
) -> None:
    path, _ = populated
    head = (await client.get("/api/head")).json()["head"]
    first = await _take(client, 10, params={"from": 1})
    assert first == list(range(1, 11))
    # The client went away after event 10; more events were appended meanwhile.
    async with open_store(path) as store:
        await store.append(
            "run:a/extra", [StepLogged(incarnation=1, step=s, metrics={"x": s}) for s in range(5)]
        )
    rest = await _take(
        client, head + 5 - 10, params={"from": 1}, headers={"Last-Event-ID": str(first[-1])}
    )
    assert first + rest == list(range(1, head + 6))


async def test_live_events_arrive_as_they_are_appended(
    client: httpx.AsyncClient, populated: tuple[Path, dict[str, str]]
) -> None:
    path, _ = populated
    head = (await client.get("/api/head")).json()["head"]
    received: list[tuple[int, str, dict[str, object]]] = []

    async def follow(connected: anyio.Event) -> None:
        async with client.stream("GET", "/api/events", params={"stream": "run:a/live"}) as response:
            connected.set()
            async for event in sse_events(response):
                received.append(event)
                if len(received) == 3:
                    return

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            connected = anyio.Event()
            group.start_soon(follow, connected)
            await connected.wait()
            async with open_store(path) as store:
                # Another stream's event is filtered out; the stream's own arrive in order.
                await store.append("run:a/other", [StepLogged(incarnation=1, step=0, metrics={})])
                for step in range(3):
                    await store.append(
                        "run:a/live", [StepLogged(incarnation=1, step=step, metrics={"s": step})]
                    )
    assert [position for position, _, _ in received] == [head + 2, head + 3, head + 4]
    assert [kind for _, kind, _ in received] == ["StepLogged"] * 3
    assert [data["data"]["step"] for _, _, data in received] == [0, 1, 2]  # type: ignore[index]


async def test_a_bad_last_event_id_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]


async def test_stopping_the_server_ends_open_streams_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = running_server(tmp_path / "runlog.db", log=log)
    url = server.__enter__()
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as client,
        client.stream("GET", "/api/events") as response,
    ):
        chunks = response.aiter_bytes()
        assert b"connected" in await anext(chunks)
        # SIGTERM while a client holds a stream open: the server ends the stream
        # (a complete response, not a cut connection) and shuts down cleanly.
        server.__exit__(None, None, None)
        rest = b"".join([chunk async for chunk in chunks])
    assert b"id:" not in rest
    logged = log.read_text()
    assert "Traceback" not in logged
    assert "graceful shutdown exceeded" not in logged
