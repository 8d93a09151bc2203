"""A training script that ends one way, in one style, for the exit-code tests.

usage: python _exit_script.py STYLE WAY STORE RUN_ID

STYLE: async-with | async-open | sync-with | sync-open ("open": no ``with`` block and
no ``finish()``: the interpreter's exit ends the run). WAY: how the script ends (see
``leave``). Every script logs steps 0..4 first and prints "logged" when it has.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import api
from api import sync

STEPS = 5


def leave(way: str) -> None:
    if way == "return" or way == "preempt-return":
        return
    if way == "exit-0":
        sys.exit(0)
    if way == "exit-none":
        sys.exit(None)
    if way in ("exit-3", "preempt-exit-3"):
        sys.exit(3)
    if way == "exit-str":
        sys.exit("crash")
    if way == "raise-systemexit":
        raise SystemExit("crash")
    if way == "exception":
        raise RuntimeError("a bug in the training loop")
    if way == "keyboard-interrupt":
        raise KeyboardInterrupt
    if way == "preempt-exit-143":
        sys.exit(143)
    if way == "seed-handler":
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # the handler exits
    raise AssertionError(f"unknown way {way}")


def run_sync(style: str, way: str, store: str, run_id: str) -> None:
    run = sync.init(project="p", id=run_id, store=store)
    if way == "seed-handler":
        # The seed page's pattern: a plain signal handler, no with block.
        def on_term(signum: int, frame: object) -> None:
            run.mark_preempting()
            checkpoint = Path(store).with_name(f"{run_id}.ckpt")
            checkpoint.write_text(f"step {run.step}")
            run.save(checkpoint)
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, on_term)
    for _ in range(STEPS):
        run.log({"loss": 1.0})
    print("logged", flush=True)
    if way.startswith("preempt-"):
        run.mark_preempting()
    if style == "sync-with":
        with run:
            leave(way)
    else:
        leave(way)


async def run_async(style: str, way: str, store: str, run_id: str) -> None:
    run = await api.init(project="p", id=run_id, store=store)
    for _ in range(STEPS):
        await run.log({"loss": 1.0})
    print("logged", flush=True)
    if way.startswith("preempt-"):
        await run.mark_preempting()
    if style == "async-with":
        async with run:
            leave(way)
    else:
        leave(way)


def main() -> None:
    style, way, store, run_id = sys.argv[1:5]
    if style.startswith("sync"):
        run_sync(style, way, store, run_id)
    else:
        asyncio.run(run_async(style, way, store, run_id))


if __name__ == "__main__":
    main()
