"""One agent process for the drain test: runs the sweep's runs in-process until done.

usage: python _agent_process.py STORE SWEEP_ID

Each run logs 3 steps; about a third of first incarnations (chosen by run id) are
preempted (mark, exit 143) and must be resumed by some agent, which logs 3 more steps.
"""

from __future__ import annotations

import asyncio
import sys
import zlib

import api


async def train() -> None:
    run = await api.init()
    for _ in range(3):
        await run.log({"loss": float(run.config["a"] * run.config["b"])})
    if run.incarnation == 1 and zlib.crc32(run.id.encode()) % 3 == 0:
        await run.mark_preempting()
        await run.finish(143)
        return
    await run.finish(0)


async def main(store: str, sweep_id: str) -> None:
    done = await api.agent(sweep_id, train, store=store, poll_interval=0.05, reap_interval=3600)
    print("done", done, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
