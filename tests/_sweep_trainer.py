"""A sweep run for the agent tests (started by `runlog agent` with the sweep's environment).

usage: python _sweep_trainer.py MODE
    preempt-once   incarnation 1 logs 5 steps, marks preempting and exits 143;
                   a resumed incarnation logs 5 more and finishes
    long           logs forever (until killed), with handle_preemption installed
    short          logs 60 steps over about a second, then finishes
    stubborn       ignores SIGTERM and logs forever (only SIGKILL ends it)
"""

from __future__ import annotations

import asyncio
import signal
import sys

import api


async def main(mode: str) -> None:
    run = await api.init()
    print("run", run.id, run.incarnation, run.step, run.config, flush=True)
    if mode == "preempt-once":
        for _ in range(5):
            await run.log({"loss": run.config["lr"]})
        if run.incarnation == 1:
            await run.mark_preempting()
            await run.finish(143)
            sys.exit(143)
        await run.finish()
        return
    if mode == "short":
        for _ in range(60):
            await run.log({"loss": 1.0})
            await asyncio.sleep(0.02)
        await run.finish()
        return
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        api.handle_preemption(run)
    while True:
        await run.log({"loss": 1.0})
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
