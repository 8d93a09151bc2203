"""The shared loop thread's blocking calls end when the thread is gone, never hang."""

from __future__ import annotations

import asyncio

import pytest

from api._library import _loop


def test_a_call_on_a_loop_thread_that_stopped_raises_instead_of_waiting_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_loop, "_CHECK_EVERY", 0.05)
    thread = _loop.LoopThread()
    loop = thread.loop
    assert thread.call(asyncio.sleep(0, "alive")) == "alive"
    loop.call_soon_threadsafe(loop.stop)
    assert thread._thread is not None
    thread._thread.join(timeout=30)
    never = asyncio.Event()
    with pytest.raises(RuntimeError, match="loop thread stopped"):
        thread.call(never.wait())
    loop.close()
