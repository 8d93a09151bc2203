"""The writer of a ``Run``: group commits, heartbeats, fencing.

One background task per run commits the buffer as one append every ``flush_interval``
seconds, as soon as ``batch_size`` events wait, and on ``flush()``/``finish()``; it also
writes a heartbeat when nothing else was written for ``heartbeat_interval``. Every append
carries the stream version this run last saw, so a newer incarnation's
``RunInitialized`` makes the next append of an older process fail: it is fenced and can
never interleave its steps with the new one (``_catch_up_stream``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

import anyio

from eventstore import (
    Event,
    EventTooLarge,
    FencedWriter,
    Heartbeat,
    HeartbeatExpired,
    InvalidEvent,
    NewEvent,
    NotesEdited,
    RunInitialized,
    RunRevived,
    StepLogged,
    StoreBusy,
    StoreUnavailable,
    WrongExpectedVersion,
    default_codec,
    event_id_bytes,
)

from ._run_buffer import _ROW_OVERHEAD, RunBuffer

__all__ = ["RunWriter"]


class RunWriter(RunBuffer):
    """The second layer of ``Run``: the task that writes its buffer to the store."""

    async def _work(self) -> None:
        """Group commits and heartbeats until ``finish``; if the event loop ends first
        (its tasks are cancelled), write what was logged before it does."""
        try:
            while not self._closing and self._error is None:
                idle_for = time.monotonic() - self._last_write
                wait = min(self._flush_interval, max(0.0, self._heartbeat_interval - idle_for))
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return  # finish() writes the rest
                heartbeat = time.monotonic() - self._last_write >= self._heartbeat_interval
                try:
                    await self._drain(heartbeat=heartbeat)
                except (StoreBusy, StoreUnavailable):
                    # The events stay buffered; the next round or flush() retries, after
                    # a pause, so a store that is away is not asked in a tight loop.
                    await anyio.sleep(self._flush_interval)
                    continue
                except Exception as exc:
                    self._error = exc
                    return
        except asyncio.CancelledError:
            if not self._closing and not self._finished:
                await self._write_before_loop_ends()
            raise

    async def _write_before_loop_ends(self) -> None:
        """What the writer does when its event loop ends first (``api/_library/_run_end.py``)."""
        raise NotImplementedError

    async def _drain(self, *, interrupted: bool = False, heartbeat: bool = False) -> None:
        async with self._write_lock:
            batch = await self._take(interrupted, heartbeat)
            if not batch:
                return
            try:
                await self._append(batch)
            except InvalidEvent as exc:
                await self._append_storable(batch, exc)
            except BaseException:
                with self._guard(interrupted):
                    self._buffer[:0] = batch
                raise

    async def _take(self, interrupted: bool, heartbeat: bool) -> list[Event | NewEvent]:
        if not interrupted:
            # Never block the loop's thread on the lock: a signal handler may hold it
            # on the training thread while it waits for this very loop.
            while not self._lock.acquire(blocking=False):  # noqa: ASYNC110  # a thread lock
                await asyncio.sleep(0.0005)
            try:
                return self._swap(heartbeat)
            finally:
                self._lock.release()
        return self._swap(heartbeat)

    def _swap(self, heartbeat: bool) -> list[Event | NewEvent]:
        batch, self._buffer = self._buffer, []
        if not batch and heartbeat and not self._closing and self._error is None:
            batch.append(Heartbeat(incarnation=self._incarnation))
        # Ids are fixed before the first attempt, so a retry after an unclear failure
        # (a cancelled append) cannot store an event twice.
        if NewEvent not in set(map(type, batch)):
            # The usual batch (steps, nothing wrapped yet): wrapped in one C-level pass.
            wrap = cast(Callable[[Event | NewEvent, bytes], Event | NewEvent], NewEvent)
            return list(map(wrap, batch, event_id_bytes(len(batch))))
        fresh = [i for i, e in enumerate(batch) if not isinstance(e, NewEvent)]
        if fresh:
            ids = event_id_bytes(len(fresh))
            for index, event_id in zip(fresh, ids, strict=True):
                batch[index] = NewEvent(batch[index], event_id)  # type: ignore[arg-type]
        return batch

    async def _append_storable(self, batch: list[Event | NewEvent], error: InvalidEvent) -> None:
        """One event the store refused must not sink the batch: write the others and
        report the refused ones at the next ``flush``."""
        storable: list[Event | NewEvent] = []
        for item in batch:
            event = item.event if isinstance(item, NewEvent) else item
            try:
                size = len(default_codec.encode(event))
                if size > self._max_row_bytes + _ROW_OVERHEAD:
                    raise EventTooLarge(f"{size} bytes encoded, over the store's limit")
            except InvalidEvent as exc:
                where = f" at step {event.step}" if isinstance(event, StepLogged) else ""
                self._unstored.append(f"{type(event).__name__}{where}: {exc}")
                continue
            storable.append(item)
        if len(storable) == len(batch):
            raise error  # not a per-event problem after all
        if storable:
            await self._append(storable)

    async def _append(self, batch: list[Event | NewEvent]) -> None:
        while True:
            try:
                result = await self._store.append(self._stream, batch, self._version)
            except WrongExpectedVersion:
                revive = await self._catch_up_stream()
                if revive:
                    batch.insert(0, NewEvent(RunRevived(incarnation=self._incarnation)))
                continue
            self._version = result.version
            self._last_write = time.monotonic()
            return

    async def _catch_up_stream(self) -> bool:
        """Read what others appended to the run; raise if a newer incarnation exists.

        Returns True when the watchdog declared this incarnation dead, so the next
        write must say the run is alive again (contract §6.2, ``RunRevived``).
        """
        revive = False
        async for record in self._store.read_stream(self._stream, self._version + 1):
            event = record.event
            if isinstance(event, RunInitialized) and event.incarnation > self._incarnation:
                error = FencedWriter(
                    f"run {self._project}/{self._id} was resumed by incarnation {event.incarnation} "
                    f"(pid {event.pid} on {event.host or 'an unknown host'}) at position "
                    f"{record.position}; this process (incarnation {self._incarnation}) can no "
                    "longer write to it. Stop this process; the new one continues the run."
                )
                self._error = error
                raise error
            if isinstance(event, HeartbeatExpired) and event.incarnation == self._incarnation:
                revive = True
            elif isinstance(event, RunRevived) and event.incarnation == self._incarnation:
                revive = False
            elif isinstance(event, NotesEdited) and event.incarnation != self._incarnation:
                self._notes = event.notes
            self._version = record.version
        return revive

    # --- the end ------------------------------------------------------------------------
