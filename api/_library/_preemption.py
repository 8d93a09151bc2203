"""The preemption pattern as one call (contract §7's recommended handler), for async runs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ._run import Checkpoint, Preemption, Run, handling_preemption
from ._run_hook import RunHook

__all__ = ["DEFAULT_GRACE", "handle_preemption"]

_T = TypeVar("_T")

log = logging.getLogger("runlog")

DEFAULT_GRACE = 10.0
"""Seconds to wait for the loop's next ``log`` before leaving anyway: well under the
30 s most schedulers allow between SIGTERM and SIGKILL."""


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
    grace: float = DEFAULT_GRACE,
) -> Callable[[], None]:
    """Leave at a step boundary when the platform preempts the job.

    On any of ``signals`` the run is marked preempting at once, durably. The training
    loop goes on until its next ``await run.log(...)``: once that step is recorded, the
    step row is committed, ``checkpoint`` (a function or coroutine function) runs, the
    run finishes with ``128 + signum`` and ``SystemExit`` leaves the loop, so
    ``run.step`` is the step to resume from and the checkpoint holds exactly the steps
    logged. If the loop does not log within ``grace`` seconds, the same happens from a
    task of its own and the process exits with that code. SIGINT is left alone for
    interactive use. Returns a function that removes the handlers.
    """
    if grace < 0:
        raise ValueError(f"grace is a number of seconds >= 0, not {grace!r}")
    loop = asyncio.get_running_loop()
    chosen = [signal.Signals(s) for s in signals]
    owned: set[asyncio.Task[None]] = set()  # cancelled by remove(), or with the loop

    def on_signal(signum: signal.Signals) -> None:
        preemption = Preemption(signum, checkpoint, time.monotonic() + grace)
        if not RunHook(run).note_preemption(preemption):
            return  # a second signal while the first is handled changes nothing
        task = loop.create_task(_mark_then_wait(run, preemption, grace))
        owned.add(task)
        task.add_done_callback(owned.discard)

    for signum in chosen:
        loop.add_signal_handler(signum, on_signal, signum)

    def remove() -> None:
        for signum in chosen:
            loop.remove_signal_handler(signum)
        for task in list(owned):
            task.cancel()

    return remove


async def _mark_then_wait(run: Run, preemption: Preemption, grace: float) -> None:
    await _to_the_end(RunHook(run).drain())  # the mark is durable before anything else happens
    await asyncio.sleep(grace)
    if preemption.leaving or run.finished:
        return
    # The loop did not reach its next log in time: leave from here.
    preemption.leaving = True
    handling_preemption.set(True)  # inherited by the tasks _to_the_end starts
    RunHook(run).park()
    code = preemption.exit_code
    try:
        await _to_the_end(RunHook(run).checkpoint_and_finish(preemption))
    except BaseException:
        log.exception(
            "runlog: handling signal %d failed; exiting with %d anyway", preemption.signum, code
        )
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # The run is finished and written; leave now, as the platform asked, without
        # unwinding the training loop (which is stuck somewhere inside a step).
        os._exit(code)
