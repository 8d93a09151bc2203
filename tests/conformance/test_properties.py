"""Property-based tests: random operation sequences against a plain-Python model of the log."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    GENESIS_HASH,
    EventStore,
    NewEvent,
    StepLogged,
    WrongExpectedVersion,
    open_store,
)

from .._backends import Backend

STREAMS = ["run:p/a", "run:p/b", "sweep:s", "run:q/a"]


@dataclass(frozen=True)
class Append:
    stream: int
    count: int
    expectation: str  # any | no_stream | exists | exact | stale
    retry: bool  # re-send the previous successful batch instead


@dataclass
class Model:
    log: list[tuple[str, int, int]] = field(default_factory=list)  # (stream, version, tag)
    versions: dict[str, int] = field(default_factory=dict)

    def version(self, stream: str) -> int:
        return self.versions.get(stream, -1)


appends = st.builds(
    Append,
    stream=st.integers(0, len(STREAMS) - 1),
    count=st.integers(0, 6),
    expectation=st.sampled_from(["any", "no_stream", "exists", "exact", "stale"]),
    retry=st.booleans(),
)


def expected_for(kind: str, current: int) -> int | str:
    if kind == "exact":
        return current
    if kind == "stale":
        return current - 1 if current >= 0 else 5
    return kind


def accepts(kind: str, current: int) -> bool:
    return {
        "any": True,
        "no_stream": current == -1,
        "exists": current >= 0,
        "exact": True,
        "stale": False,
    }[kind]


async def run_scenario(store: EventStore, ops: list[Append], model: Model | None = None) -> Model:
    """Apply ``ops`` to ``store`` and to the model (which may hold the log so far)."""
    model = model or Model()
    tag = len(model.log)
    last: tuple[str, list[NewEvent], tuple[int, ...], int | str] | None = None
    for op in ops:
        if op.retry and last is not None:
            stream, batch, positions, expected = last
            result = await store.append(stream, batch, expected)
            assert result.positions == positions
            assert not positions or result.deduplicated
            continue
        stream = STREAMS[op.stream]
        current = model.version(stream)
        expected = expected_for(op.expectation, current)
        batch = []
        for _ in range(op.count):
            tag += 1
            batch.append(NewEvent(StepLogged(incarnation=1, step=tag, metrics={})))
        if not accepts(op.expectation, current):
            with pytest.raises(WrongExpectedVersion):
                await store.append(stream, batch, expected)
            continue
        result = await store.append(stream, batch, expected)
        start = len(model.log) + 1
        assert result.positions == tuple(range(start, start + op.count))
        for event in batch:
            assert isinstance(event.event, StepLogged)
            current += 1
            model.log.append((stream, current, event.event.step))
        if batch:
            model.versions[stream] = current
        assert result.version == model.version(stream)
        last = (stream, batch, result.positions, expected)
    return model


async def check_against_model(store: EventStore, model: Model) -> None:
    records = [r async for r in store.read_all()]
    assert [r.position for r in records] == list(range(1, len(model.log) + 1))
    seen = []
    for r in records:
        assert isinstance(r.event, StepLogged)
        seen.append((r.stream, r.version, r.event.step))
    assert seen == model.log
    assert await store.head() == len(model.log)
    for stream in STREAMS:
        assert await store.stream_version(stream) == model.version(stream)
        in_stream = [(r.stream, r.version, r.event.step) async for r in store.read_stream(stream)]  # type: ignore[attr-defined]
        assert in_stream == [entry for entry in model.log if entry[0] == stream]
    previous = GENESIS_HASH
    async for s in store.read_stored():
        assert s.hash == s.expected_hash(previous)
        previous = s.hash


def run(backend: Backend, scenario: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(backend.target(Path(tmp))))  # type: ignore[operator]


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(ops=st.lists(appends, max_size=25))
def test_appends_and_reads_agree_with_the_model(backend: Backend, ops: list[Append]) -> None:
    async def scenario(target: str) -> None:
        async with open_store(target) as store:
            model = await run_scenario(store, ops)
            await check_against_model(store, model)

    run(backend, scenario)


@PROPERTY
@given(ops=st.lists(appends, min_size=1, max_size=20), cut=st.integers(0, 19))
def test_a_restart_in_the_middle_changes_nothing(
    persistent_backend: Backend, ops: list[Append], cut: int
) -> None:
    async def scenario(target: str) -> None:
        async with open_store(target) as store:
            model = await run_scenario(store, ops[:cut])
        async with open_store(target) as store:
            model = await run_scenario(store, ops[cut:], model)
            await check_against_model(store, model)

    run(persistent_backend, scenario)


@PROPERTY
@given(
    batches=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    start=st.integers(0, 60),
)
def test_a_subscription_sees_every_event_from_its_start_once_in_order(
    backend: Backend, batches: list[int], start: int
) -> None:
    async def scenario(target: str) -> None:
        async with open_store(target) as store:
            half = len(batches) // 2
            for count in batches[:half]:  # written before subscribing: catch-up
                await store.append(
                    "run:p/a", [StepLogged(incarnation=1, step=0, metrics={})] * count
                )
            total = sum(batches)
            wanted = list(range(max(start, 1), total + 1))
            received: list[int] = []

            async def follow() -> None:
                if not wanted:
                    return
                async with store.subscribe(start, poll_interval=0.01) as subscription:
                    async for record in subscription:
                        received.append(record.position)
                        if record.position == total:
                            return

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    for count in batches[half:]:  # written while subscribed: live
                        await store.append(
                            "run:p/a", [StepLogged(incarnation=1, step=0, metrics={})] * count
                        )
                        await anyio.lowlevel.checkpoint()
            assert received == wanted

    run(backend, scenario)
