"""A child process for the multi-process tests.

usage:
    python _appender.py PATH INDEX ROUNDS BATCH_SIZE [--go] [--forever]
    python _appender.py PATH --stale-append STREAM

The first form appends, each round, BATCH_SIZE events to ``own:INDEX`` (exact expected
version) and one event to ``shared`` with optimistic concurrency (read the version,
append expecting it, retry on conflict). With ``--go`` it prints ``ready`` once the store
is open and waits for a line on stdin before its first append, so that several
children start together. It prints one JSON
line: its rounds, conflicts and the wall-clock times of its first and last append.

The second form reads STREAM's version, prints it, waits for a line on stdin (while
another process appends), then appends expecting the version it read and prints
``conflict`` or ``appended``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from eventstore import StepLogged, WrongExpectedVersion, open_store


async def rounds(path: str, index: int, count: int, size: int, go: bool, forever: bool) -> None:
    conflicts = 0
    async with open_store(path, lock_timeout=120) as store:
        if go:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        own = f"own:{index}"
        version = await store.stream_version(own)
        first = time.time()
        round_ = 0
        while forever or round_ < count:
            events = [
                StepLogged(incarnation=index, step=round_ * size + i, metrics={"p": index})
                for i in range(size)
            ]
            version = (await store.append(own, events, version)).version
            while True:
                shared = await store.stream_version("shared")
                try:
                    await store.append(
                        "shared",
                        [StepLogged(incarnation=index, step=round_, metrics={"p": index})],
                        shared,
                    )
                    break
                except WrongExpectedVersion:
                    conflicts += 1
            round_ += 1
            if forever:
                print("round", round_, flush=True)
        last = time.time()
    print(
        json.dumps(
            {"index": index, "rounds": round_, "conflicts": conflicts, "first": first, "last": last}
        ),
        flush=True,
    )


async def stale_append(path: str, stream: str) -> None:
    async with open_store(path) as store:
        version = await store.stream_version(stream)
        print("version", version, flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        try:
            await store.append(stream, [StepLogged(incarnation=9, step=0, metrics={})], version)
        except WrongExpectedVersion as exc:
            print("conflict", exc.actual, flush=True)
        else:
            print("appended", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--stale-append" in args:
        asyncio.run(stale_append(args[0], args[args.index("--stale-append") + 1]))
    else:
        asyncio.run(
            rounds(
                args[0],
                int(args[1]),
                int(args[2]),
                int(args[3]),
                "--go" in args,
                "--forever" in args,
            )
        )
