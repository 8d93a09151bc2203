"""``Run``: an active run that logs through a group-committing writer.

``log`` only buffers (a thread-safe list, so the blocking facade can log from the
training thread for the cost of a lock). One writer task commits the buffer as one
append every ``flush_interval`` seconds, as soon as ``batch_size`` events wait, and on
``flush()``, ``finish()`` and the preemption path; a full buffer makes ``log`` wait for
that write (backpressure). Every append carries the stream version this run last saw,
so a newer incarnation's ``RunInitialized`` makes the next append of an older process
fail: it is fenced and can never interleave its steps with the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio

from eventstore import (
    Event,
    EventStore,
    FencedWriter,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    InvalidArgument,
    NewEvent,
    NotesEdited,
    PreemptMarked,
    RunExited,
    RunInitialized,
    RunRevived,
    StepLogged,
    StoreBusy,
    StoreUnavailable,
    WrongExpectedVersion,
    default_codec,
    event_id_bytes,
    run_stream,
)

from ._errors import RunFinishedError, StepDroppedWarning
from ._settings import remove_auto_resume

__all__ = ["Run", "active_runs", "exit_code_for", "handling_preemption"]

handling_preemption: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "runlog_handling_preemption", default=False
)
"""True in the preemption handler's context (and tasks it starts)."""

_SCALARS = (float, int, str, bool, type(None))
_active: weakref.WeakSet[Run] = weakref.WeakSet()


def active_runs() -> list[Run]:
    """Runs of this process that are not finished."""
    return [run for run in _active if not run.finished]


def exit_code_for(exc: BaseException | None) -> tuple[int, bool]:
    """(exit code, interrupted) for how a run's block ended (contract §6.2 exit codes)."""
    if exc is None:
        return 0, False
    if isinstance(exc, KeyboardInterrupt):
        return 255, True
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0, False
        return (code, False) if isinstance(code, int) else (1, False)
    if isinstance(exc, (asyncio.CancelledError, anyio.get_cancelled_exc_class())):
        return 255, True  # stopped from outside, like an interrupt
    return 1, False


class Run:
    """One run of a training script. Create it with ``api.init``."""

    def __init__(
        self,
        *,
        store: EventStore,
        owns_store: bool,
        project: str,
        run_id: str,
        incarnation: int,
        resumed: bool,
        starting_step: int,
        version: int,
        config: dict[str, Any],
        notes: str | None,
        sweep_id: str | None,
        files: dict[str, str],
        root: Path,
        auto_resume: bool,
        heartbeat_interval: float,
        flush_interval: float,
        batch_size: int,
        max_buffer: int,
    ) -> None:
        self._store = store
        self._owns_store = owns_store
        self._project = project
        self._id = run_id
        self._stream = run_stream(project, run_id)
        self._incarnation = incarnation
        self._resumed = resumed
        self._starting_step = starting_step
        self._version = version
        self._config = config
        self._notes = notes
        self._sweep_id = sweep_id
        self._files = files
        self._root = root
        self._auto_resume = auto_resume
        self._heartbeat_interval = heartbeat_interval
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._lock = threading.Lock()  # buffer and step state: log() may come from another thread
        self._buffer: list[Event | NewEvent] = []
        self._step = starting_step
        self._pending: dict[str, Any] | None = None
        self._dropped = 0
        self._marked = False
        self._parked = False  # the preemption handler is finishing the run
        self._finished = False
        self._error: BaseException | None = None
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self._last_write = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._writer = asyncio.create_task(self._write_loop(), name=f"runlog writer {run_id}")
        self._heartbeat = asyncio.create_task(
            self._heartbeat_loop(), name=f"runlog heartbeat {run_id}"
        )
        _active.add(self)

    # --- what a run is ------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run id."""
        return self._id

    @property
    def project(self) -> str:
        """The project the run belongs to."""
        return self._project

    @property
    def resumed(self) -> bool:
        """True when this process continued an existing, started run."""
        return self._resumed

    @property
    def starting_step(self) -> int:
        """The step this incarnation started at: the last logged step + 1, or 0."""
        return self._starting_step

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step=`` uses."""
        return self._step

    @property
    def incarnation(self) -> int:
        """This process's incarnation of the run (1 for the first start)."""
        return self._incarnation

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, merged across resumes (top-level keys replace)."""
        return self._config

    @property
    def sweep_id(self) -> str | None:
        """The sweep this run belongs to, if any."""
        return self._sweep_id

    @property
    def dropped_steps(self) -> int:
        """How many ``log(step=s)`` calls were dropped because ``s`` was below ``step``."""
        return self._dropped

    @property
    def finished(self) -> bool:
        """True once ``finish()`` completed (or the run was fenced)."""
        return self._finished

    @property
    def store(self) -> EventStore:
        """The store the run writes to."""
        return self._store

    @property
    def notes(self) -> str | None:
        """The run's notes. Setting them records a ``NotesEdited`` with the next write."""
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._set_notes_now(value)

    def __repr__(self) -> str:
        state = "finished" if self._finished else f"step {self._step}"
        return f"<Run {self._project}/{self._id} incarnation {self._incarnation} {state}>"

    # --- logging ------------------------------------------------------------------------

    async def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, commit: bool | None = None
    ) -> None:
        """Log ``metrics`` at the current step (then advance), or at ``step``.

        Contract §4.1: without ``step`` the row is written at ``run.step`` and the step
        advances (``commit=False`` keeps accumulating into it); ``step`` above the
        current one writes the pending row and moves there; equal merges; below is
        dropped with a ``StepDroppedWarning`` (counted in ``dropped_steps``), never
        written. Waits only when the buffer is full.

        Raises:
            InvalidArgument: a metric name is not a string or a value cannot be stored.
            RunFinishedError: the run was finished.
            FencedWriter: a newer incarnation of the run took over.
        """
        if self._parked and not handling_preemption.get():
            await _forever()
        size = self._log_now(metrics, step, commit)
        if size >= self._batch_size and not self._wake.is_set():
            # Hand the batch to the writer and let it start: a training loop that
            # awaits nothing else would otherwise starve it until the buffer is full.
            self._wake.set()
            await asyncio.sleep(0)
        if size >= self._max_buffer:
            await self._drain()

    def _log_now(self, metrics: Mapping[str, Any], step: int | None, commit: bool | None) -> int:
        row = _checked_metrics(metrics)
        dropped = None
        with self._lock:
            self._check_open()
            current = self._step
            if step is None:
                self._merge(row)
                if commit is not False:
                    self._emit_pending()
                    self._step = current + 1
            elif isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise InvalidArgument(f"step must be a non-negative integer, got {step!r}")
            elif step < current:
                self._dropped += 1
                dropped = current
            else:
                if step > current:
                    self._emit_pending()
                    self._step = step
                self._merge(row)
                if commit:
                    self._emit_pending()
                    self._step = step + 1
            size = len(self._buffer)
        if dropped is not None:
            warnings.warn(
                f"Tried to log to step {step} that is less than the current step {dropped}; "
                f"the data was dropped (run {self._project}/{self._id} has dropped "
                f"{self._dropped} rows so far). Log a separate x-axis metric instead of step=, "
                "or rewind with resume_from.",
                StepDroppedWarning,
                stacklevel=3,
            )
        return size

    def _merge(self, row: dict[str, Any]) -> None:
        if self._pending is None:
            self._pending = row
        else:
            self._pending.update(row)

    def _emit_pending(self) -> None:
        if self._pending is not None:
            self._buffer.append(
                StepLogged(incarnation=self._incarnation, step=self._step, metrics=self._pending)
            )
            self._pending = None

    def _enqueue(self, event: Event) -> None:
        with self._lock:
            self._check_open()
            self._buffer.append(event)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished or self._closing:
            raise RunFinishedError(
                f"run {self._project}/{self._id} is finished; start a new one with api.init(..., "
                'resume="allow") to continue it'
            )

    async def set_notes(self, notes: str) -> None:
        """Replace the run's notes and write them now."""
        self._set_notes_now(notes)
        await self.flush()

    def _set_notes_now(self, notes: str) -> None:
        if not isinstance(notes, str):
            raise InvalidArgument(f"notes are a string, not {type(notes).__name__}")
        self._enqueue(NotesEdited(notes=notes, incarnation=self._incarnation))
        self._notes = notes

    async def mark_preempting(self) -> None:
        """Record that this run is being preempted, durably, before the process dies.

        The next non-zero exit (or a heartbeat expiry) then ends the run PREEMPTED, and
        a sweep requeues it; an exit with code 0 still ends it FINISHED. Calling it again
        does nothing. Do not call it unconditionally after ``init``: every bug would then
        become a requeue loop.

        Raises:
            RunFinishedError: the run was finished.
        """
        self._check_open()
        if self._marked:
            return
        self._marked = True
        self._enqueue(PreemptMarked(incarnation=self._incarnation))
        if self._error is not None:
            raise self._error
        await self._drain()

    async def flush(self) -> None:
        """Write everything logged so far; when this returns it survives a SIGKILL.

        A row logged with an explicit ``step=`` stays pending (it may still be merged
        into) until a higher step, ``commit=True`` or ``finish()``.
        """
        if self._parked and not handling_preemption.get():
            await _forever()
        if self._error is not None:
            raise self._error
        await self._drain()

    def _park(self) -> None:
        """From now on ``log``/``flush`` wait for the process to exit, instead of failing
        on a run the preemption handler is finishing, except in the handler's own
        context (its checkpoint may save files)."""
        self._parked = True

    # --- files --------------------------------------------------------------------------

    async def save(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Keep a copy of a file (a checkpoint) with the run, by content; return its name.

        A resumed run, on this machine or on another against a shared store, gets it
        back with ``restore(name)``.
        """
        source = Path(path)
        saved_as = name or source.name
        digest, size = await self._store.put_file(source)
        self._enqueue(
            FileSaved(incarnation=self._incarnation, name=saved_as, digest=digest, size=size)
        )
        await self.flush()
        self._files[saved_as] = digest
        return saved_as

    async def restore(self, name: str, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the saved file ``name`` to ``path`` (default: the run's directory / name).

        Raises:
            InvalidArgument: the run never saved a file of that name.
        """
        digest = self._files.get(name)
        if digest is None:
            saved = ", ".join(sorted(self._files)) or "none"
            raise InvalidArgument(
                f"run {self._project}/{self._id} saved no file {name!r} (saved: {saved})"
            )
        target = Path(path) if path is not None else self._root / name
        await self._store.get_file(digest, target)
        return target

    # --- the writer ---------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while not self._closing and self._error is None:
            with anyio.move_on_after(self._flush_interval):
                await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except (StoreBusy, StoreUnavailable):
                continue  # the events stay buffered; the next round or flush() retries
            except Exception as exc:
                self._error = exc
                return

    async def _drain(self) -> None:
        async with self._write_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return
            # Ids are fixed before the first attempt, so a retry after an unclear
            # failure (a cancelled append) cannot store an event twice.
            fresh = [i for i, e in enumerate(batch) if not isinstance(e, NewEvent)]
            if fresh:
                ids = event_id_bytes(len(fresh))
                for index, event_id in zip(fresh, ids, strict=True):
                    batch[index] = NewEvent(batch[index], event_id)  # type: ignore[arg-type]
            try:
                await self._append(batch)
            except BaseException:
                with self._lock:
                    self._buffer[:0] = batch
                raise

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

    async def _heartbeat_loop(self) -> None:
        while True:
            due = self._last_write + self._heartbeat_interval
            await anyio.sleep(max(0.0, due - time.monotonic()))
            if time.monotonic() - self._last_write < self._heartbeat_interval:
                continue  # something was written meanwhile: any event proves liveness
            with self._lock:
                idle = not self._buffer
                if idle and not self._closing and self._error is None:
                    self._buffer.append(Heartbeat(incarnation=self._incarnation))
            if idle:
                self._last_write = time.monotonic()
                self._wake.set()

    # --- the end ------------------------------------------------------------------------

    async def finish(self, exit_code: int = 0, *, interrupted: bool = False) -> None:
        """End the run with ``exit_code`` and write everything; idempotent.

        Exit code 0 ends it FINISHED (and deletes the auto-resume file); otherwise the
        contract's table decides (failed, killed, crashed, or preempted after
        ``mark_preempting()``). The final write is shielded from cancellation.
        """
        if self._finished:
            return
        if isinstance(exit_code, bool) or not isinstance(exit_code, int):
            raise InvalidArgument(f"exit_code is an int, not {exit_code!r}")
        with anyio.CancelScope(shield=True):
            if not self._closing:
                with self._lock:
                    self._emit_pending()
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
                self._heartbeat.cancel()
                self._wake.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._heartbeat
                await self._writer
            if self._error is None:
                await self._drain()  # if this fails the events stay buffered: finish() again
            self._finished = True
            _active.discard(self)
            if self._owns_store:
                await self._store.aclose()
        if self._error is not None:
            raise self._error

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code, interrupted = exit_code_for(exc)
        await self.finish(code, interrupted=interrupted)

    def __del__(self) -> None:
        if not getattr(self, "_finished", True):
            warnings.warn(
                f"run {self._project}/{self._id} was never finished; use 'async with "
                "api.init(...)' or 'await run.finish()'",
                ResourceWarning,
                stacklevel=2,
            )


async def _forever() -> None:
    await asyncio.Event().wait()


def _checked_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``metrics`` that is known to encode (so a bad value fails here, not in
    a later batch)."""
    if not isinstance(metrics, Mapping):
        raise InvalidArgument(
            f"log() takes a mapping of metric names to values, not {type(metrics).__name__}"
        )
    row = dict(metrics)
    for key, value in row.items():
        if type(key) is not str:
            raise InvalidArgument(f"metric names are strings; got {key!r}")
        if type(value) not in _SCALARS:
            try:
                default_codec._encoder.encode(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidArgument(f"metric {key!r}: {exc}") from exc
    return row
