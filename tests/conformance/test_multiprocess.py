"""Several OS processes on one database file: nothing lost, nothing doubled, no torn batch."""

from __future__ import annotations

import json
import random
import signal
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from eventstore import GENESIS_HASH, RecordedEvent, StepLogged, chain_hash, open_store

APPENDER = str(Path(__file__).parent.parent / "_appender.py")
pytestmark = pytest.mark.slow


async def test_processes_appending_at_once_with_a_live_subscriber(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    processes, rounds, size = 4, 40, 10
    total = processes * rounds * (size + 1)
    received: list[RecordedEvent] = []
    async with open_store(path) as store:

        async def subscribe() -> None:
            async with store.subscribe(poll_interval=0.02) as subscription:
                async for record in subscription:
                    received.append(record)
                    if len(received) == total:
                        return

        results: list[dict[str, int]] = []

        async def append(index: int) -> None:
            done = await anyio.run_process(
                [sys.executable, APPENDER, path, str(index), str(rounds), str(size)]
            )
            results.append(json.loads(done.stdout.decode().strip().splitlines()[-1]))

        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg:
                tg.start_soon(subscribe)
                for index in range(processes):
                    tg.start_soon(append, index)
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
    # Conflicts really happened and were detected (not a serial run in disguise).
    assert sum(r["conflicts"] for r in results) > 0


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
        assert s.hash == chain_hash(
            previous,
            s.position,
            s.version,
            s.recorded_at_us,
            s.event_id_bytes,
            s.stream.encode(),
            s.data,
        )
        previous = s.hash
