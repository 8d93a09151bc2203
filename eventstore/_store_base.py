"""What every store object shares, local or remote: its lifetime as a context manager,
the in-process wake-up of subscriptions, and reads built on reads by pages."""

from __future__ import annotations

import asyncio
import warnings
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self

import anyio

from ._events import Event
from ._types import RecordedEvent, StoredEvent

__all__ = ["StoreBase"]


class StoreBase(ABC):
    """The base of ``StoreCore`` (SQLite, PostgreSQL) and ``HTTPStore``."""

    def __init__(self, shown: str) -> None:
        self._shown = shown  # the store as messages show it (never with a password)
        self._state = "new"
        # asyncio's, not anyio's: asyncpg's notification callbacks run outside any task.
        self._appended = asyncio.Event()

    @abstractmethod
    async def aclose(self) -> None:
        """Close the store; idempotent."""

    @abstractmethod
    def read_all_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """``read_all`` in lists of up to ``size`` events."""

    @abstractmethod
    def read_stored_pages(
        self, from_position: int = 0, *, to_position: int | None = None, size: int = 1000
    ) -> AsyncIterator[list[StoredEvent]]:
        """``read_stored`` in lists of up to ``size`` events."""

    @abstractmethod
    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at ``positions``, in the order given."""

    async def read_events_at(self, positions: Sequence[int]) -> tuple[list[int], list[Event]]:
        """``recorded_at_us`` and the event at each of ``positions``, in the order given,
        as two lists (columns): what ``read_positions`` returns without the streams and
        versions and without an object per event, for bulk consumers such as a run's
        history read-back. A missing position raises as there."""
        records = await self.read_positions(positions)
        return [r.recorded_at_us for r in records], [r.event for r in records]

    async def read_all(
        self, from_position: int = 0, *, to_position: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Every event from ``from_position`` to ``to_position`` (inclusive), page by page."""
        async for page in self.read_all_pages(from_position, to_position=to_position):
            for event in page:
                yield event

    async def read_stored(
        self, from_position: int = 0, *, to_position: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Like ``read_all`` but undecoded, with each event's stored bytes and hash."""
        async for page in self.read_stored_pages(from_position, to_position=to_position):
            for event in page:
                yield event

    def _wake(self) -> None:
        """Wake this process's subscriptions: something was appended."""
        self._appended.set()
        self._appended = asyncio.Event()

    async def _listen(self) -> bool:
        """Make sure appends by other processes wake ``_appended``, if the backend can;
        False if it just started listening (read again before waiting)."""
        return True

    async def _wait_for_append(self, patience: float) -> None:
        """Return when an append may have happened, after ``patience`` at the latest."""
        if self._state != "open":
            return
        appended = self._appended
        if not await self._listen():
            return
        with anyio.move_on_after(patience):
            await appended.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_state", None) == "open":
            warnings.warn(
                f"runlog store {self._shown} was not closed; use 'async with open_store(...)' "
                "or 'await store.aclose()'",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._shown} {self._state}>"
