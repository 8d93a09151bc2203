"""Several OS processes on one PostgreSQL database: nothing lost, doubled or skipped."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from contextlib import AsyncExitStack

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from eventstore import GENESIS_HASH, RecordedEvent, StepLogged, open_store

from ..conformance.test_multiprocess import APPENDER, run_appenders

pytestmark = pytest.mark.slow


async def test_processes_appending_at_once_with_two_live_subscribers(url: str) -> None:
    processes, rounds, size = 6, 30, 10
    total = processes * rounds * (size + 1)
    received: dict[int, list[RecordedEvent]] = {0: [], 1: []}
    results: list[dict[str, float]] = []
    async with open_store(url) as first, open_store(url) as second:

        async def subscribe(index: int, store: object) -> None:
            async with store.subscribe(poll_interval=0.5) as subscription:  # type: ignore[attr-defined]
                async for record in subscription:
                    received[index].append(record)
                    if len(received[index]) == total:
                        return

        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
                tg.start_soon(subscribe, 0, first)
                tg.start_soon(subscribe, 1, second)
                results.extend(await run_appenders(url, processes, rounds, size, stack))
        head = await first.head()
        event_ids = {s.event_id async for s in first.read_stored()}

    assert head == total
    assert len(event_ids) == total
    for index in (0, 1):  # each subscriber saw every event once, in order
        assert [r.position for r in received[index]] == list(range(1, total + 1))
    records = received[0]
    for index in range(processes):
        own = [r for r in records if r.stream == f"own:{index}"]
        assert [r.version for r in own] == list(range(rounds * size))
    shared = [r for r in records if r.stream == "shared"]
    assert [r.version for r in shared] == list(range(processes * rounds))
    pairs = Counter(
        (r.event.incarnation, r.event.step) for r in shared if isinstance(r.event, StepLogged)
    )
    assert set(pairs) == {(i, k) for i in range(processes) for k in range(rounds)}
    assert max(pairs.values()) == 1
    assert max(r["first"] for r in results) < min(r["last"] for r in results)


async def test_a_writer_killed_mid_stream_leaves_only_whole_batches(url: str) -> None:
    size = 1000
    async with await anyio.open_process(
        [sys.executable, APPENDER, url, "0", "0", str(size), "--forever"]
    ) as child:
        assert child.stdout is not None
        output = ""
        with anyio.fail_after(60):
            async for chunk in TextReceiveStream(child.stdout):
                output += chunk
                if "round 3\n" in output:
                    break
        child.send_signal(signal.SIGKILL)
        await child.wait()

    async with open_store(url) as store:
        own = [r async for r in store.read_stream("own:0")]
        stored = [s async for s in store.read_stored()]
        # The killed session's append lock died with it: a new writer continues.
        await store.append("own:0", [StepLogged(incarnation=1, step=-1, metrics={})], len(own) - 1)
    assert len(own) % size == 0
    assert len(own) >= 3 * size
    assert [s.position for s in stored] == list(range(1, len(stored) + 1))
    previous = GENESIS_HASH
    for s in stored:
        assert s.hash == s.expected_hash(previous)
        previous = s.hash
