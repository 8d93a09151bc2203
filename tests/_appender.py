"""A child process for the multi-process tests: appends to its own stream and a shared one.

usage: python _appender.py PATH INDEX BATCHES BATCH_SIZE [--forever]

Each round appends BATCH_SIZE events to ``own:INDEX`` (exact expected version) and one
event to ``shared`` with optimistic concurrency (read the version, append expecting
it, retry on conflict). Prints one JSON line with its counts when done.
"""

from __future__ import annotations

import asyncio
import json
import sys

from eventstore import StepLogged, WrongExpectedVersion, open_store


async def main(path: str, index: int, batches: int, size: int, forever: bool) -> None:
    conflicts = 0
    async with open_store(path, lock_timeout=120) as store:
        own = f"own:{index}"
        version = await store.stream_version(own)
        round_ = 0
        while forever or round_ < batches:
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
    print(json.dumps({"index": index, "rounds": round_, "conflicts": conflicts}), flush=True)


if __name__ == "__main__":
    path, index, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(path, index, batches, size, "--forever" in sys.argv))
