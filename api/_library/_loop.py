"""One event loop on a daemon thread, shared by everything that must outlive the caller's.

The blocking facade runs every run on it. An async run whose own event loop ends while
the run is still open moves here, so it can still be finished when the interpreter exits
(Python 3.12 forbids starting threads, and so opening stores, by then).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["LoopThread", "background"]

_T = TypeVar("_T")

_START_TIMEOUT = 60.0  # the longest a new loop thread may take to start
_CHECK_EVERY = 5.0  # while waiting for a result, how often to check the thread still runs


class LoopThread:
    """An event loop running forever on a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (started now if it was not yet)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="runlog-loop", daemon=True)
                thread.start()
                if not ready.wait(_START_TIMEOUT):
                    raise RuntimeError(
                        f"runlog's loop thread did not start within {_START_TIMEOUT:.0f} s"
                    )
                self._loop, self._thread = loop, thread
            return self._loop

    def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread).

        A write may wait as long as its store makes it, but never on a loop that is
        gone: if the loop thread stops, the wait ends with an error.
        """
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        while True:
            done, _ = concurrent.futures.wait([future], timeout=_CHECK_EVERY)
            if done:
                return future.result()
            thread = self._thread
            if thread is None or not thread.is_alive():
                future.cancel()
                coroutine.close()  # it never ran, and never will
                raise RuntimeError("runlog's loop thread stopped; the call cannot complete")

    async def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and await its result from another event loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))


background = LoopThread()
