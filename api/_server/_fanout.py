"""Fan-out of live events: one subscription on the store for every open event stream.

Without it, each stream would hold its own subscription, and every append would make
each of them read the same page from the store. The hub reads each event once and hands
it to every stream's own bounded buffer. A stream that starts behind (a ``from`` or a
``Last-Event-ID`` in the past) catches up by reading the store itself, then joins the
hub; a stream whose client is too slow to keep its buffer from filling is dropped by
the hub and catches up from the store again. Either way it neither skips nor repeats an
event, and a slow client never holds the others back.
"""

from __future__ import annotations

import logging
from collections import deque

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from eventstore import EventStore, RecordedEvent, RunLogError

__all__ = ["Follower", "Hub"]

log = logging.getLogger("runlog.server")
_PAGE = 1000


class Hub:
    """Reads the log once, live, and hands each event to every joined follower."""

    def __init__(self, store: EventStore, buffer: int = 1000) -> None:
        self.store = store
        self.buffer = buffer
        self.position = 0
        """The last position handed out: a follower joining now gets every later one."""
        self._followers: set[MemoryObjectSendStream[RecordedEvent]] = set()

    @property
    def followers(self) -> int:
        """How many streams are joined."""
        return len(self._followers)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the log until cancelled (the lifespan's task group owns this)."""
        self.position = await self.store.head()
        task_status.started()
        try:
            while True:
                try:
                    async with self.store.subscribe(self.position + 1) as subscription:
                        async for record in subscription:
                            self._hand_out(record)
                except RunLogError as exc:
                    # Followers simply wait; the subscription resumes after the last event.
                    log.warning("the live event feed failed, resuming: %s", exc)
                    await anyio.sleep(1.0)
        finally:
            for send in self._followers:
                send.close()  # followers still waiting see the end of their buffer
            self._followers.clear()

    def _hand_out(self, record: RecordedEvent) -> None:
        # No await in here: a follower joins either before an event is handed out (and
        # gets it) or after (and its catch-up read covers it), never in the middle.
        self.position = record.position
        for send in list(self._followers):
            try:
                send.send_nowait(record)
            except anyio.WouldBlock:
                # Too slow: drop it; it catches up from the store on its own.
                self._followers.discard(send)
                send.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._followers.discard(send)

    def join(self) -> tuple[MemoryObjectReceiveStream[RecordedEvent], int]:
        """A buffer that gets every event after the returned position."""
        send, receive = anyio.create_memory_object_stream[RecordedEvent](self.buffer)
        self._followers.add(send)
        return receive, self.position


class Follower:
    """The events from ``start`` on, for one stream: catch up from the store, then the hub.

    ``next()`` may be cancelled at any await without losing or repeating an event: its
    state changes only after a read completed.
    """

    def __init__(self, hub: Hub, start: int) -> None:
        self._hub = hub
        self._next = max(start, 1)
        self._page: deque[RecordedEvent] = deque()
        self._live: MemoryObjectReceiveStream[RecordedEvent] | None = None
        self._joined_at = 0

    async def next(self) -> RecordedEvent:
        """The next event, waiting for it if need be."""
        while True:
            if self._page:
                record = self._page.popleft()
                self._next = record.position + 1
                return record
            if self._live is None:
                if self._next <= self._hub.position - self._hub.buffer // 2:
                    await self._read(self._next + _PAGE - 1)  # far behind: not yet
                    continue
                self._live, self._joined_at = self._hub.join()
            if self._next <= self._joined_at:
                await self._read(min(self._joined_at, self._next + _PAGE - 1))
                continue
            try:
                record = await self._live.receive()
            except anyio.EndOfStream:
                self._live.close()  # dropped for being slow: catch up, then join again
                self._live = None
                continue
            if record.position >= self._next:
                self._next = record.position + 1
                return record

    async def _read(self, to_position: int) -> None:
        page = [r async for r in self._hub.store.read_all(self._next, to_position=to_position)]
        self._page.extend(page)

    def close(self) -> None:
        """Leave the hub."""
        if self._live is not None:
            self._live.close()
            self._live = None
