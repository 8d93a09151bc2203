"""`runlog show` and `explain` answer from the read model's rows, never from a scan of
the run's stream (a run of millions of steps answers as fast as a short one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import api
from api._audit._queries import show_run
from eventstore import (
    EventStore,
    PreemptMarked,
    RecordedEvent,
    RunExited,
    RunInitialized,
    StepLogged,
    open_store,
)
from projections import open_projector


def _init(incarnation: int, start: int) -> RunInitialized:
    return RunInitialized(
        project="p",
        run_id="long",
        incarnation=incarnation,
        resumed=incarnation > 1,
        starting_step=start,
        host="h",
        pid=incarnation,
    )


async def _long_run(store: EventStore) -> None:
    steps = [StepLogged(incarnation=1, step=s, metrics={"loss": 1.0}) for s in range(500)]
    more = [StepLogged(incarnation=2, step=s, metrics={"loss": 0.5}) for s in range(500, 900)]
    await store.append(
        "run:p/long",
        [
            _init(1, 0),
            *steps,
            PreemptMarked(incarnation=1),
            RunExited(incarnation=1, exit_code=143),
            _init(2, 500),
            *more,
            RunExited(incarnation=2, exit_code=0),
        ],
    )
    async with open_projector(store) as projector:
        await projector.catch_up()


@pytest.fixture
async def no_stream_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[EventStore]:
    """An open store with a long run, on which reading a stream fails the test."""
    async with open_store(tmp_path / "store.db") as store:
        await _long_run(store)

        def refuse(*args: Any, **kwargs: Any) -> AsyncIterator[RecordedEvent]:
            raise AssertionError("the query read a whole stream")

        monkeypatch.setattr(type(store), "read_stream", refuse)
        yield store


async def test_show_lists_incarnations_without_reading_the_run_stream(
    no_stream_reads: EventStore,
) -> None:
    report = await show_run("p/long", store=no_stream_reads)
    assert [(i.number, i.starting_step, i.ended) for i in report.incarnations] == [
        (1, 0, "exit 143"),
        (2, 500, "exit 0"),
    ]
    assert report.state.steps == 900


async def test_explain_reads_only_the_events_it_describes(
    no_stream_reads: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    original = type(no_stream_reads).read_positions

    async def counted(self: EventStore, positions: list[int]) -> list[RecordedEvent]:
        asked.extend(positions)
        return await original(self, positions)  # type: ignore[arg-type]

    monkeypatch.setattr(type(no_stream_reads), "read_positions", counted)
    lines = await api.explain("p", "long", store=no_stream_reads)
    assert [line.strip().split(" ", 3)[-1] for line in lines[1:-1]] == [
        "incarnation 1 started (pid 1 on h)",
        "marked preempting (incarnation 1)",
        "exited with code 143",
        "incarnation 2 resumed (pid 2 on h)",
        "exited with code 0",
    ]
    assert len(asked) == 5  # not the 900 steps
