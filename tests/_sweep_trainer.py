"""A sweep run for the agent tests (started by `runlog agent` with the sweep's environment).

usage: python _sweep_trainer.py MODE
    preempt-once   incarnation 1 logs 5 steps, marks preempting and exits 143;
                   a resumed incarnation logs 5 more and finishes
    long           logs forever (until killed), with handle_preemption installed
    short          logs 60 steps over about a second, then finishes
    stubborn       ignores SIGTERM and logs forever (only SIGKILL ends it)
    seed-handler   api.sync with the seed page's own SIGTERM handler (mark_preempting,
                   save a checkpoint, sys.exit(128 + signum)), no with block; a
                   resumed incarnation logs 5 more steps and ends by leaving the script
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

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


def seed_handler() -> None:
    from api import sync

    run = sync.init()
    print("run", run.id, run.incarnation, run.step, run.config, flush=True)

    def on_term(signum: int, frame: object) -> None:
        run.mark_preempting()
        checkpoint = Path(f"{run.id}.ckpt")
        checkpoint.write_text(str(run.step))
        run.save(checkpoint)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    if run.incarnation > 1:
        for _ in range(5):
            run.log({"loss": 1.0})
        return  # no finish(): the interpreter's exit finishes the run with 0
    while True:
        run.log({"loss": 1.0})
        time.sleep(0.01)


if __name__ == "__main__":
    if sys.argv[1] == "seed-handler":
        seed_handler()
    else:
        asyncio.run(main(sys.argv[1]))
