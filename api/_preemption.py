"""The preemption pattern as one call (contract §7's recommended handler)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ._run import Run, handling_preemption

__all__ = ["handle_preemption"]

_T = TypeVar("_T")

log = logging.getLogger("runlog")

Checkpoint = Callable[[], Awaitable[None] | None]


async def _to_the_end(awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` to completion even if this task is cancelled meanwhile (as
    ``asyncio.run`` does to every task when the main one ends): the run's last events
    must be written before the process exits."""
    inner = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            if inner.done():
                return inner.result()


def handle_preemption(
    run: Run,
    signals: Iterable[signal.Signals | int] = (signal.SIGTERM, signal.SIGUSR1),
    checkpoint: Checkpoint | None = None,
) -> Callable[[], None]:
    """On any of ``signals``: mark the run preempting, run ``checkpoint``, finish the
    run with exit code ``128 + signum`` and exit the process with that code.

    ``checkpoint`` may be a plain function or a coroutine function. Everything logged
    before the signal is written before the process exits. SIGINT is left alone for
    interactive use. Returns a function that removes the handlers.
    """
    loop = asyncio.get_running_loop()
    chosen = [signal.Signals(s) for s in signals]
    started: list[asyncio.Task[None]] = []

    def on_signal(signum: signal.Signals) -> None:
        if started:
            return  # a second signal while the first is handled changes nothing
        started.append(loop.create_task(_preempt(run, signum, checkpoint)))

    for signum in chosen:
        loop.add_signal_handler(signum, on_signal, signum)

    def remove() -> None:
        for signum in chosen:
            loop.remove_signal_handler(signum)

    return remove


async def _preempt(run: Run, signum: signal.Signals, checkpoint: Checkpoint | None) -> None:
    code = 128 + signum
    handling_preemption.set(True)  # inherited by the tasks _to_the_end starts
    run._park()
    try:
        await _to_the_end(run.mark_preempting())
        if checkpoint is not None:
            result = checkpoint()
            if inspect.isawaitable(result):
                await _to_the_end(result)
        await _to_the_end(run.finish(code))
    except BaseException:
        log.exception("runlog: handling %s failed; exiting with %d anyway", signum.name, code)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # The run is finished and written; leave now, as the platform asked, without
        # unwinding the training loop (which may be deep inside a step).
        os._exit(code)
