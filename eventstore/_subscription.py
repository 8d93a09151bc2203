"""Catch-up-then-live subscriptions over any backend.

A subscription is pull-based: it reads the log in pages after the last position it
delivered, so it can neither skip nor repeat an event, holds at most one page in
memory, and a slow consumer simply reads later (backpressure for free). When it has
caught up it waits for the store's in-process append signal or, for appends by other
processes, polls every ``poll_interval`` seconds.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Protocol, Self

from ._errors import InvalidArgument
from ._types import RecordedEvent

__all__ = ["Subscription"]


class _PageSource(Protocol):
    async def _read_page(self, from_position: int, limit: int) -> list[RecordedEvent]: ...

    async def _wait_for_append(self, patience: float) -> None: ...

    async def head(self) -> int: ...


class Subscription:
    """An async iterator over the log from a position on, live after catch-up.

    Use it as ``async with store.subscribe(p) as sub: async for event in sub: ...``.
    Iteration never ends by itself; leave the loop or call ``aclose()``.
    """

    def __init__(
        self, source: _PageSource, from_position: int, poll_interval: float, page_size: int = 1000
    ) -> None:
        if from_position < 0:
            raise InvalidArgument(f"from_position must be >= 0, got {from_position}")
        if poll_interval <= 0:
            raise InvalidArgument(f"poll_interval must be positive, got {poll_interval}")
        self._source = source
        self._next = max(from_position, 1)
        self._poll_interval = poll_interval
        self._page_size = page_size
        self._buffer: deque[RecordedEvent] = deque()
        self._closed = False

    @property
    def position(self) -> int:
        """The position of the last event delivered (``from_position - 1`` before the first)."""
        return self._next - 1 - len(self._buffer)

    async def lag(self) -> int:
        """How many committed events this subscription has not delivered yet."""
        return max(0, await self._source.head() - self.position)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RecordedEvent:
        while not self._closed:
            if self._buffer:
                return self._buffer.popleft()
            page = await self._source._read_page(self._next, self._page_size)
            if page:
                self._buffer.extend(page)
                self._next = page[-1].position + 1
                continue
            await self._source._wait_for_append(self._poll_interval)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the subscription; iteration ends at the next step. Idempotent."""
        self._closed = True
        self._buffer.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
