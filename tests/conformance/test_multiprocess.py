"""Several OS processes on one database file: nothing lost, nothing doubled, no torn batch."""

from __future__ import annotations

import json
import random
import signal
import sys
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
from anyio.abc import ByteReceiveStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.text import TextReceiveStream

from eventstore import GENESIS_HASH, RecordedEvent, StepLogged, open_store

APPENDER = str(Path(__file__).parent.parent / "_appender.py")
pytestmark = pytest.mark.slow


class Lines:
    """Whole lines from a child's stdout (a pipe delivers arbitrary chunks)."""

    def __init__(self, stream: ByteReceiveStream) -> None:
        self._buffered = BufferedByteReceiveStream(stream)

    async def next(self) -> str:
        return (await self._buffered.receive_until(b"\n", 1 << 16)).decode()

    async def rest(self) -> str:
        chunks = []
        while True:
            try:
                chunks.append(await self._buffered.receive())
            except anyio.EndOfStream:
                return b"".join(chunks).decode()


async def run_appenders(
    target: str, processes: int, rounds: int, size: int, stack: AsyncExitStack
) -> list[dict[str, float]]:
    """Start ``processes`` appender children on ``target``, release them together once
    all are open, and return each one's JSON result line."""
    children = []
    for index in range(processes):
        child = await stack.enter_async_context(
            await anyio.open_process(
                [sys.executable, APPENDER, target, str(index), str(rounds), str(size), "--go"]
            )
        )
        assert child.stdout is not None
        lines = Lines(child.stdout)
        assert await lines.next() == "ready"
        children.append((child, lines))
    for child, _ in children:  # all open and waiting: start them together
        assert child.stdin is not None
        await child.stdin.send(b"go\n")
    results = []
    for child, lines in children:
        output = await lines.rest()
        assert await child.wait() == 0
        results.append(json.loads(output.strip().splitlines()[-1]))
    return results


async def test_processes_appending_at_once_with_a_live_subscriber(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    processes, rounds, size = 4, 60, 10
    total = processes * rounds * (size + 1)
    received: list[RecordedEvent] = []
    results: list[dict[str, float]] = []
    async with open_store(path) as store:

        async def subscribe() -> None:
            async with store.subscribe(poll_interval=0.02) as subscription:
                async for record in subscription:
                    received.append(record)
                    if len(received) == total:
                        return

        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
                tg.start_soon(subscribe)
                results = await run_appenders(path, processes, rounds, size, stack)
        head = await store.head()

    # Every event seen exactly once, in position order, positions gap-free.
    assert head == total
    assert [r.position for r in received] == list(range(1, total + 1))
    async with open_store(path) as store:
        assert len({s.event_id async for s in store.read_stored()}) == total
    # Each process's own stream is complete and in its own order.
    for index in range(processes):
        own = [r for r in received if r.stream == f"own:{index}"]
        assert [r.version for r in own] == list(range(rounds * size))
        assert [r.event.step for r in own if isinstance(r.event, StepLogged)] == list(
            range(rounds * size)
        )
    # The contended stream got exactly one event per process and round, no more.
    shared = [r for r in received if r.stream == "shared"]
    assert [r.version for r in shared] == list(range(processes * rounds))
    pairs = Counter(
        (r.event.incarnation, r.event.step) for r in shared if isinstance(r.event, StepLogged)
    )
    assert set(pairs) == {(i, k) for i in range(processes) for k in range(rounds)}
    assert max(pairs.values()) == 1
    # The children really wrote at the same time (not a serial run in disguise).
    assert max(r["first"] for r in results) < min(r["last"] for r in results)


async def test_a_stale_decision_in_another_process_is_a_conflict(tmp_path: Path) -> None:
    path = str(tmp_path / "conflict.db")
    async with open_store(path) as store:
        await store.append("shared", [StepLogged(incarnation=1, step=0, metrics={})])
        async with await anyio.open_process(
            [sys.executable, APPENDER, path, "--stale-append", "shared"]
        ) as child:
            assert child.stdin is not None
            assert child.stdout is not None
            lines = Lines(child.stdout)
            with anyio.fail_after(30):
                assert await lines.next() == "version 0"
                await store.append("shared", [StepLogged(incarnation=1, step=1, metrics={})], 0)
                await child.stdin.send(b"go\n")
                answer = await lines.next()
                await child.wait()
        assert answer == "conflict 1"
        assert await store.stream_version("shared") == 1


async def test_a_writer_killed_mid_stream_leaves_only_whole_batches(tmp_path: Path) -> None:
    path = str(tmp_path / "killed.db")
    size = 1000  # large batches, so the kill often lands inside a transaction
    async with await anyio.open_process(
        [sys.executable, APPENDER, path, "0", "0", str(size), "--forever"]
    ) as child:
        assert child.stdout is not None
        output = ""
        with anyio.fail_after(60):
            async for chunk in TextReceiveStream(child.stdout):
                output += chunk  # let it commit a few rounds, then kill it mid-flight
                if "round 3\n" in output:
                    break
            await anyio.sleep(random.uniform(0, 0.03))
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with open_store(path) as store:
        own = [r async for r in store.read_stream("own:0")]
        stored = [s async for s in store.read_stored()]
        # A new writer continues the log where the killed one stopped.
        await store.append("own:0", [StepLogged(incarnation=1, step=-1, metrics={})], len(own) - 1)
    assert len(own) % size == 0
    assert len(own) >= 3 * size
    assert [r.version for r in own] == list(range(len(own)))
    assert [s.position for s in stored] == list(range(1, len(stored) + 1))
    previous = GENESIS_HASH
    for s in stored:
        assert s.hash == s.expected_hash(previous)
        previous = s.hash
