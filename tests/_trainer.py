"""A small training script for the process tests; one mode per behaviour.

usage: python _trainer.py MODE STORE RUN_ID [MARKER]

Modes (all use project "p" and resume="allow"):
    flushing      log a step at a time, flush every 10 and print "flushed S", forever
    preemptible   handle_preemption with a checkpoint that writes MARKER; log forever
    contender     log and flush continuously; print "fenced" and exit 3 when fenced
    exit-0 | exit-7 | raise | interrupt | sys-exit-5
                  log 5 steps inside `async with`, then end that way
    sync-atexit   api.sync: log 5 steps and never finish (interpreter exit does)
    sync-preemptible
                  api.sync with sync.handle_preemption; log forever
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import anyio

import api
from api import sync


def report(*words: object) -> None:
    print(*words, flush=True)


async def main(mode: str, store: str, run_id: str, marker: str | None) -> None:
    if mode == "flushing":
        async with api.init(project="p", id=run_id, resume="allow", store=store) as run:
            report("started", run.step)
            while True:
                await run.log({"loss": 1.0 / (run.step + 1)})
                if run.step % 10 == 0:
                    await run.flush()
                    report("flushed", run.step - 1)
                await asyncio.sleep(0.001)
    if mode == "preemptible":
        run = await api.init(project="p", id=run_id, resume="allow", store=store)

        async def checkpoint() -> None:  # saving a file with the run writes from the handler
            assert marker is not None
            await anyio.Path(marker).write_text(f"checkpoint at step {run.step}")
            await run.save(marker)

        api.handle_preemption(run, checkpoint=checkpoint)
        report("started", run.step)
        while True:
            await run.log({"loss": 0.5})
            if run.step == 50:
                report("step", run.step)
            await asyncio.sleep(0.001)
    if mode == "contender":
        run = await api.init(project="p", id=run_id, resume="allow", store=store)
        report("started", run.incarnation, run.step)
        try:
            while True:
                await run.log({"who": run.incarnation})
                await run.flush()
                await asyncio.sleep(0.002)
        except api.FencedWriter as exc:
            report("fenced", exc)
            with contextlib.suppress(api.FencedWriter):
                await run.finish(3)
            sys.exit(3)
    async with api.init(project="p", id=run_id, resume="allow", store=store) as run:
        for _ in range(5):
            await run.log({"loss": 1.0})
        if mode == "exit-7":
            await run.finish(7)
        elif mode == "raise":
            raise RuntimeError("a bug in the training loop")
        elif mode == "interrupt":
            raise KeyboardInterrupt
        elif mode == "sys-exit-5":
            sys.exit(5)


def main_sync(mode: str, store: str, run_id: str, marker: str | None) -> None:
    run = sync.init(project="p", id=run_id, resume="allow", store=store)
    if mode == "sync-atexit":
        for _ in range(5):
            run.log({"loss": 1.0})
        return  # no finish(): the interpreter's exit does it
    assert marker is not None

    def checkpoint() -> None:
        Path(marker).write_text(f"checkpoint at step {run.step}")

    sync.handle_preemption(run, checkpoint=checkpoint)
    report("started", run.step)
    while True:
        run.log({"loss": 0.5})
        if run.step == 50:
            report("step", run.step)
        time.sleep(0.001)


if __name__ == "__main__":
    mode, store, run_id = sys.argv[1:4]
    marker = sys.argv[4] if len(sys.argv) > 4 else None
    if mode.startswith("sync-"):
        main_sync(mode, store, run_id, marker)
    else:
        asyncio.run(main(mode, store, run_id, marker))
