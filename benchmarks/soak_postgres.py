"""Soak: many appender processes and two subscribers on one PostgreSQL database.

``--processes`` (16) child processes run ``tests/_appender.py --forever`` against one
fresh database for ``--seconds`` (60): each round, a batch of ``--batch`` (10) events to
its own stream with an exact expected version, and one event to a shared stream with
optimistic concurrency (read the version, append expecting it, retry on conflict).
Two subscribers, each with its own store object (its own connections and listener),
follow the log live meanwhile. Then the children are killed (SIGKILL, so some die in
the middle of an append), the subscribers catch up to the head, and the script checks:

- each subscriber saw every position from 1 to the head exactly once, in order;
- every stored event id is distinct, and the hash chain verifies;
- each own stream's versions are 0..n-1, and the shared stream holds each
  (process, round) pair at most once.

It prints the figures and ends with one JSON line; the exit status is 1 if a check
failed. Not run by CI (it takes a minute); ``tests/postgres/test_multiprocess.py`` is
the short version that is.

Run ``python benchmarks/soak_postgres.py`` with ``RUNLOG_TEST_POSTGRES_URL`` set, or let
it start a throwaway server like the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests._postgres

from eventstore import GENESIS_HASH, StepLogged, open_store

APPENDER = str(Path(__file__).resolve().parent.parent / "tests" / "_appender.py")


async def soak(url: str, processes: int, seconds: float, batch: int) -> dict[str, object]:
    seen: list[list[int]] = [[], []]
    shared_pairs: Counter[tuple[int, int]] = Counter()
    own_versions: dict[str, int] = {}
    problems: list[str] = []
    async with open_store(url) as first, open_store(url) as second:
        await first.head()  # creates the database and schema before the children race

        async def follow(index: int, store: object) -> None:
            positions = seen[index]
            async with store.subscribe(poll_interval=1.0) as subscription:  # type: ignore[attr-defined]
                async for record in subscription:
                    if positions and record.position != positions[-1] + 1:
                        problems.append(
                            f"subscriber {index}: position {record.position} after {positions[-1]}"
                        )
                    positions.append(record.position)
                    if index == 0:
                        if record.stream == "shared" and isinstance(record.event, StepLogged):
                            shared_pairs[(record.event.incarnation, record.event.step)] += 1
                        elif record.stream.startswith("own:"):
                            expected = own_versions.get(record.stream, -1) + 1
                            if record.version != expected:
                                problems.append(
                                    f"{record.stream}: version {record.version}, expected {expected}"
                                )
                            own_versions[record.stream] = record.version
                    if record.stream == "soak:end":
                        return

        target = [0]
        started = time.monotonic()
        with anyio.fail_after(seconds + 600):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, 0, first)
                tg.start_soon(follow, 1, second)
                children = [
                    await anyio.open_process(
                        [sys.executable, APPENDER, url, str(i), "0", str(batch), "--forever"],
                        stdout=asyncio.subprocess.DEVNULL,
                    )
                    for i in range(processes)
                ]
                await anyio.sleep(seconds)
                for child in children:
                    child.send_signal(signal.SIGKILL)
                for child in children:
                    await child.wait()
                    await child.aclose()
                elapsed = time.monotonic() - started
                # One last event after every child is dead: both subscribers stop at it.
                end = await first.append(
                    "soak:end", [StepLogged(incarnation=0, step=0, metrics={})]
                )
                target[0] = end.positions[0]
            head = target[0]
        ids = set()
        previous = GENESIS_HASH
        chain_ok = True
        async for stored in first.read_stored():
            ids.add(stored.event_id)
            if stored.hash != stored.expected_hash(previous):
                chain_ok = False
            previous = stored.hash
    for index, positions in enumerate(seen):
        if positions[:head] != list(range(1, head + 1)):
            problems.append(f"subscriber {index} did not see 1..{head} exactly once in order")
    if len(ids) != head:
        problems.append(f"{head} positions but {len(ids)} distinct event ids")
    if not chain_ok:
        problems.append("the hash chain does not verify")
    doubled = [pair for pair, count in shared_pairs.items() if count > 1]
    if doubled:
        problems.append(f"shared-stream rounds stored twice: {doubled[:5]}")
    return {
        "bench": "soak_postgres",
        "processes": processes,
        "subscribers": 2,
        "seconds": round(elapsed, 1),
        "batch": batch,
        "events": head,
        "events_per_s": round(head / elapsed),
        "shared_appends": sum(shared_pairs.values()),
        "own_streams": len(own_versions),
        "ok": not problems,
        "problems": problems[:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=10, help="events per own-stream append")
    args = parser.parse_args()

    from tests._postgres import database_url, stop_server

    url = database_url()
    try:
        result = asyncio.run(soak(url, args.processes, args.seconds, args.batch))
    finally:
        stop_server()
    print(
        f"soak: {result['processes']} appender processes + 2 subscribers for "
        f"{result['seconds']} s: {result['events']:,} events ({result['events_per_s']:,}/s), "
        f"{result['shared_appends']:,} contended appends to the shared stream; "
        f"{'every event seen exactly once, in order, by both subscribers' if result['ok'] else 'FAILED'}"
    )
    for problem in result["problems"]:  # type: ignore[attr-defined]
        print(f"  problem: {problem}")
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
