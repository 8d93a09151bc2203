"""The store protocol over HTTP behaves as the store it serves (one server per module).

Each test writes to its own streams, and compares what the HTTP store answers with
what the SQLite file behind the server holds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from eventstore import (
    GENESIS_HASH,
    NO_STREAM,
    EventIdConflict,
    HTTPStore,
    InvalidEvent,
    InvalidStreamName,
    NewEvent,
    RunExited,
    StepLogged,
    WrongExpectedVersion,
    open_store,
)

from ._server import TOKEN, running_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    path = tmp_path_factory.mktemp("http-store") / "runlog.db"
    with running_server(path) as url:
        yield path, url


@pytest.fixture
async def remote(
    served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HTTPStore]:
    monkeypatch.setenv("RUNLOG_TOKEN", TOKEN)
    async with open_store(served[1]) as store:
        assert isinstance(store, HTTPStore)
        yield store


def _stream() -> str:
    return f"run:http/{uuid.uuid4().hex[:12]}"


def _steps(count: int, start: int = 0) -> list[StepLogged]:
    return [
        StepLogged(incarnation=1, step=s, metrics={"loss": 1 / (s + 1)})
        for s in range(start, start + count)
    ]


async def test_expected_versions_are_checked_and_the_error_names_the_actual_version(
    remote: HTTPStore,
) -> None:
    stream = _stream()
    first = await remote.append(stream, _steps(3), NO_STREAM)
    assert first.version == 2
    assert len(first.positions) == 3
    with pytest.raises(WrongExpectedVersion) as refused:
        await remote.append(stream, _steps(1, 3), 1)
    assert (refused.value.stream, refused.value.expected, refused.value.actual) == (stream, 1, 2)
    with pytest.raises(WrongExpectedVersion):
        await remote.append(stream, _steps(1, 3), NO_STREAM)
    assert (await remote.append(stream, _steps(1, 3), 2)).version == 3
    assert await remote.stream_version(stream) == 3


async def test_a_retried_batch_is_stored_once(remote: HTTPStore) -> None:
    stream = _stream()
    batch = [NewEvent(event) for event in _steps(5)]
    first = await remote.append(stream, batch)
    retry = await remote.append(stream, batch)
    assert retry.deduplicated
    assert retry.positions == first.positions
    with pytest.raises(EventIdConflict):
        await remote.append(stream, [NewEvent(_steps(1, 99)[0], batch[0].event_id)])
    assert await remote.stream_version(stream) == 4


async def test_reads_page_through_long_streams_and_match_the_file(
    remote: HTTPStore, served: tuple[Path, str]
) -> None:
    stream = _stream()
    for start in range(0, 2500, 500):
        await remote.append(stream, _steps(500, start))
    events = [r async for r in remote.read_stream(stream)]
    assert [r.version for r in events] == list(range(2500))
    assert [r.event for r in events] == _steps(2500)
    window = [r.version async for r in remote.read_stream(stream, 2400, limit=50)]
    assert window == list(range(2400, 2450))
    async with open_store(served[0]) as local:
        info = await local.stream_info(stream)
        assert await remote.stream_info(stream) == info
        assert info is not None
        everything = [
            r async for r in remote.read_all(info.first_position, to_position=info.last_position)
        ]
        assert everything == [
            r async for r in local.read_all(info.first_position, to_position=info.last_position)
        ]
        stored = [s async for s in remote.read_stored(1, to_position=info.last_position)]
        assert stored == [s async for s in local.read_stored(1, to_position=info.last_position)]
        assert await remote.read_positions([info.last_position, info.first_position]) == (
            await local.read_positions([info.last_position, info.first_position])
        )
        assert await remote.head() == await local.head()
        assert await remote.position_at(everything[-1].recorded_at_us) == await local.position_at(
            everything[-1].recorded_at_us
        )
        assert await remote.streams("run:http/") == await local.streams("run:http/")
        assert stream in [s.name for s in await remote.streams("run:http/")]
    # The hash chain read over HTTP verifies from the first event on.
    previous = GENESIS_HASH
    for record in stored:
        assert record.hash == record.expected_hash(previous)
        previous = record.hash


async def test_bytes_in_metrics_stay_bytes(remote: HTTPStore) -> None:
    stream = _stream()
    event = StepLogged(
        incarnation=1, step=0, metrics={"blob": b"\x00\xff", "n": None, "xs": [1, 2.5]}
    )
    await remote.append(stream, [event])
    [record] = [r async for r in remote.read_stream(stream)]
    assert record.event == event


async def test_bad_appends_are_refused(remote: HTTPStore) -> None:
    with pytest.raises(InvalidStreamName):
        await remote.append("", _steps(1))
    with pytest.raises(InvalidEvent):
        await remote.append(
            _stream(), [StepLogged(incarnation=1, step=0, metrics={"big": 1 << 70})]
        )
    with pytest.raises(InvalidEvent):
        await remote.append(_stream(), ["not an event"])  # type: ignore[list-item]


async def test_a_subscription_catches_up_then_follows(remote: HTTPStore) -> None:
    stream = _stream()
    await remote.append(stream, _steps(3))
    start = (await remote.stream_info(stream)).first_position  # type: ignore[union-attr]
    seen: list[int] = []
    with anyio.fail_after(30):
        async with remote.subscribe(start, poll_interval=0.02) as subscription:
            async for record in subscription:
                if record.stream != stream:
                    continue
                seen.append(record.version)
                if len(seen) == 3:
                    await remote.append(stream, [RunExited(incarnation=1, exit_code=0)])
                if len(seen) == 4:
                    break
    assert seen == [0, 1, 2, 3]
