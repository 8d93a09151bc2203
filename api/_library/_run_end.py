"""The end of a ``Run``: ``finish``, leaving at a preemption, and runs left open.

A run left open is still ended truthfully: when its event loop ends (``asyncio.run``
cancels every task), what it logged is written at once and the run moves to the shared
loop thread (``_loop.py``); when the interpreter exits, the run is finished with the
exit code the process leaves with (``_exit.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import threading
import warnings

import anyio

from eventstore import (
    InvalidArgument,
    RunExited,
)

from .._errors import RunFinishedError
from . import _exit
from ._loop import background
from ._run_buffer import Preemption, handling_preemption
from ._run_writer import RunWriter
from ._settings import remove_auto_resume
from ._stores import runlog_store

__all__ = ["RunEnd", "open_runs", "register"]

_EXIT_TIMEOUT = 60.0  # the longest the interpreter waits at exit for one run's last write
_open: set[RunEnd] = set()  # strong: a run left open must live until it is finished at exit
_open_lock = threading.Lock()
_exit_hooked = False


def open_runs() -> list[RunEnd]:
    """Runs of this process that are not finished."""
    with _open_lock:
        return [run for run in _open if not run._finished]


class RunEnd(RunWriter):
    """The third layer of ``Run``: how it ends, whoever ends it."""

    async def finish(
        self,
        exit_code: int = 0,
        *,
        interrupted: bool = False,
        _from_writer: bool = False,
        _interrupted: bool = False,
    ) -> None:
        """End the run with ``exit_code`` and write everything; idempotent.

        Exit code 0 ends it FINISHED (and deletes the auto-resume file); otherwise the
        contract's table decides (failed, killed, crashed, or preempted after
        ``mark_preempting()``). The final write is shielded from cancellation. Called on
        another event loop than the one the run started on (its loop has ended), it
        reopens the store to write.
        """
        if self._finished:
            return
        if isinstance(exit_code, bool) or not isinstance(exit_code, int):
            raise InvalidArgument(f"exit_code is an int, not {exit_code!r}")
        here = asyncio.get_running_loop()
        if here is not self._loop and self._loop.is_running():
            # The run lives on another thread's loop (it outlived its own): finish there.
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(
                    self.finish(exit_code, interrupted=interrupted), self._loop
                )
            )
            return
        with anyio.CancelScope(shield=True):
            if here is not self._loop:
                await self._move_to_this_loop()
            if not self._closing:
                with self._guard(_interrupted):
                    self._commit_pending()
                    if self._error is None:
                        self._buffer.append(
                            RunExited(
                                incarnation=self._incarnation,
                                exit_code=exit_code,
                                interrupted=interrupted,
                            )
                        )
                    self._closing = True
                if exit_code == 0 and self._auto_resume:
                    remove_auto_resume(self._root)  # contract §5: before the final flush
                self._wake.set()
                background = self._background
                if background is not None and not _from_writer and not background.done():
                    await background  # it sees _closing and returns
            if self._error is None:
                # If this fails the events stay buffered: finish() again.
                await self._drain(interrupted=_interrupted)
            self._finished = True
            _unregister(self)
            if self._owns_store:
                await self._store.aclose()
        if self._error is not None:
            raise self._error
        if self._unstored:
            warnings.warn(
                f"run {self._project}/{self._id} finished, but the store refused: "
                + "; ".join(self._unstored),
                RuntimeWarning,
                stacklevel=2,
            )
            self._unstored = []

    async def _move_to_this_loop(self) -> None:
        """The run's loop has ended: write through a store opened on this one."""
        url = self._store.url
        if url == "sqlite://":
            raise RunFinishedError(
                f"run {self._project}/{self._id} lived in an in-memory store that ended with "
                "its event loop"
            )
        self._store = await runlog_store(url)
        self._owns_store = True
        self._loop = asyncio.get_running_loop()
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._background = self._loop.create_task(self._work(), name=f"runlog writer {self._id}")

    def _finish_at_exit(self, exit_code: int, interrupted: bool) -> None:
        """Finish this open run as the interpreter exits (from the main thread)."""
        if self._finished:
            return
        loop = self._loop
        if loop.is_running() and not loop.is_closed():
            # Another thread runs the loop (the blocking facade's): finish there.
            future = asyncio.run_coroutine_threadsafe(
                self.finish(exit_code, interrupted=interrupted), loop
            )
            future.result(timeout=_EXIT_TIMEOUT)
        else:
            asyncio.run(
                asyncio.wait_for(
                    self.finish(exit_code, interrupted=interrupted), timeout=_EXIT_TIMEOUT
                )
            )

    async def _write_before_loop_ends(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._store.url == "sqlite://":
                # An in-memory store ends with this loop's connections: finish now.
                code, interrupted = _exit.exit_status()
                with contextlib.suppress(Exception):
                    await self.finish(code, interrupted=interrupted, _from_writer=True)
                return
            with self._lock:
                self._commit_pending()  # the loop is over, and so is its last step
            with contextlib.suppress(Exception):
                await self._drain()
            if self._owns_store:
                # Its connections would otherwise keep the interpreter from exiting.
                with contextlib.suppress(Exception):
                    await self._store.aclose()
            try:
                # Live on where the exit code can still be recorded at interpreter exit.
                await background.run(self._move_to_this_loop())
            except Exception as exc:
                print(
                    f"runlog: run {self._project}/{self._id} outlived its event loop and "
                    f"cannot be finished at exit ({exc}); what it logged is stored, and the "
                    "watchdog (runlog reap) will end it",
                    file=sys.stderr,
                )

    # --- preemption ---------------------------------------------------------------------

    async def _leave_for_preemption(self) -> None:
        """At a step boundary after a preemption signal: commit the step, checkpoint,
        finish with ``128 + signum`` and leave with ``SystemExit``."""
        preemption = self._preempt
        assert preemption is not None
        if preemption.leaving:
            return
        preemption.leaving = True
        self._park()
        token = handling_preemption.set(True)
        try:
            await self._checkpoint_and_finish(preemption)
        finally:
            handling_preemption.reset(token)
        sys.exit(preemption.exit_code)

    async def _checkpoint_and_finish(self, preemption: Preemption) -> None:
        try:
            with self._lock:
                self._commit_pending()
            if preemption.checkpoint is not None:
                result = preemption.checkpoint()
                if inspect.isawaitable(result):
                    await result
        finally:
            await self.finish(preemption.exit_code)

    # --- files --------------------------------------------------------------------------


def register(run: RunEnd) -> None:
    global _exit_hooked
    with _open_lock:
        _open.add(run)
        hook = not _exit_hooked
        _exit_hooked = True
    if hook:
        _exit.on_exit(_finish_open_runs)


def _unregister(run: RunEnd) -> None:
    with _open_lock:
        _open.discard(run)


def _finish_open_runs(exit_code: int, interrupted: bool) -> None:
    for run in open_runs():
        try:
            run._finish_at_exit(exit_code, interrupted)
        except BaseException as exc:  # one run must not keep the others open
            print(
                f"runlog: could not finish run {run._project}/{run._id} at exit: {exc!r}; "
                "the watchdog (runlog reap) will end it",
                file=sys.stderr,
            )
