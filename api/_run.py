"""``Run``: an active run that logs through a group-committing writer.

``log`` only buffers (a lock-guarded list, so the blocking facade can log from the
training thread for the cost of a lock). One background task per run commits the buffer
as one append every ``flush_interval`` seconds, as soon as ``batch_size`` events wait,
and on ``flush()``/``finish()``; it also writes a heartbeat when nothing else was written
for ``heartbeat_interval``. A full buffer makes ``log`` wait for that write
(backpressure). Every append carries the stream version this run last saw, so a newer
incarnation's ``RunInitialized`` makes the next append of an older process fail: it is
fenced and can never interleave its steps with the new one.

Whatever a run records becomes durable in the order it was called: ``save``,
``mark_preempting``, notes, ``flush`` and ``finish`` first commit the step row still
pending, so a checkpoint recorded after ``log(step=s)`` implies step ``s`` is stored.

A run left open is still ended truthfully: when its event loop ends (``asyncio.run``
cancels every task), what it logged is written at once; when the interpreter exits, the
run is finished with the exit code the process leaves with (``api._exit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import msgspec

from eventstore import (
    Event,
    EventStore,
    EventTooLarge,
    FencedWriter,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    InvalidArgument,
    InvalidEvent,
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
    open_store,
    run_stream,
)
from projections import flatten_metrics, summarize

from . import _exit
from ._config import Config
from ._errors import RunFinishedError, StepDroppedWarning, ValueNotStored
from ._exit import exit_code_for
from ._loop import background
from ._settings import remove_auto_resume
from ._summary import Summary, define_metric

__all__ = ["Preemption", "Run", "active_runs", "exit_code_for", "handling_preemption"]

handling_preemption: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "runlog_handling_preemption", default=False
)
"""True while the preemption path checkpoints and finishes (and in tasks it starts)."""

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_SCALAR_BYTES = 9  # the most a msgpack number, bool or nil takes
_ROW_OVERHEAD = 64  # the StepLogged envelope around the metrics
_EXIT_TIMEOUT = 60.0  # the longest the interpreter waits at exit for one run's last write
_value_encoder = msgspec.msgpack.Encoder()
_open: set[Run] = set()  # strong: a run left open must live until it is finished at exit
_open_lock = threading.Lock()
_exit_hooked = False


def active_runs() -> list[Run]:
    """Runs of this process that are not finished."""
    with _open_lock:
        return [run for run in _open if not run.finished]


class Preemption:
    """A preemption signal that arrived: the run leaves at its next step boundary."""

    def __init__(
        self, signum: int, checkpoint: Callable[[], object] | None, deadline: float
    ) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.deadline = deadline  # time.monotonic() after which the helper stops waiting
        self.leaving = False

    @property
    def exit_code(self) -> int:
        """``128 + signum``, the conventional code of a handled signal."""
        return 128 + self.signum


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
        self._config = Config(config, self)
        self._notes = notes
        self._sweep_id = sweep_id
        self._files = files
        self._root = root
        self._auto_resume = auto_resume
        self._heartbeat_interval = heartbeat_interval
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._max_row_bytes = int(getattr(store, "max_event_bytes", 1 << 20)) - _ROW_OVERHEAD
        # Buffer and step state: log() may come from another thread. Reentrant, and
        # _owned() tells a signal handler that it interrupted this thread's log().
        self._lock = threading.RLock()
        self._buffer: list[Event | NewEvent] = []
        self._step = starting_step
        self._pending: dict[str, Any] | None = None
        self._pending_bytes = 0
        self._known_names: list[Any] = [frozenset(), 0]
        self._dropped = 0
        self._warned_drop = False
        self._marked = False
        self._preempt: Preemption | None = None
        self._parked = False  # the preemption path is finishing the run
        self._finished = False
        self._error: BaseException | None = None
        self._unstored: list[str] = []  # events the store refused after log() accepted them
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self._last_write = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._background: asyncio.Task[None] | None = self._loop.create_task(
            self._work(), name=f"runlog writer {run_id}"
        )
        _register(self)
        # W&B's summary/config surface (api/_summary.py, api/_config.py); _init fills
        # in what the run had before this incarnation.
        self._summary_values: dict[str, Any] = {}
        self._metric_defs: dict[str, dict[str, Any]] = {}
        self.entity: str | None = None
        """W&B's ``entity``, kept as given; runlog's namespace is the project."""
        self.name: str | None = None
        """The run's display name (``init(name=...)``, kept across resumes)."""

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
    def config(self) -> Config:
        """The run's config, merged across resumes (top-level keys replace); a dict
        with attribute access whose changes are recorded (``api/_config.py``)."""
        return self._config

    @property
    def sweep_id(self) -> str | None:
        """The sweep this run belongs to, if any."""
        return self._sweep_id

    @property
    def summary(self) -> Summary:
        """The run's summary: last logged values, aggregates, explicit assignments."""
        return Summary(self, self._summary_values)

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        *,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> dict[str, Any]:
        """How ``name`` (or ``prefix*``) is summarised (``summary="min"|"max"|"last"|...``)
        and charted (``step_metric``); recorded with the next write."""
        return define_metric(self, name, step_metric, hidden=hidden, summary=summary, goal=goal)

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
        dropped with a ``StepDroppedWarning`` (once per run; every drop is counted in
        ``dropped_steps``), never written. Values the store could not hold are refused
        here, naming the key, and nothing else is lost. Waits only when the buffer is
        full, or to leave at this step boundary when a preemption is pending.

        Raises:
            InvalidArgument: a metric name is not a string or a value cannot be stored.
            EventTooLarge: the row at this step would be over the store's event size limit.
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
        if self._preempt is not None and commit is not False and not handling_preemption.get():
            await self._leave_for_preemption()

    def _log_now(self, metrics: Mapping[str, Any], step: int | None, commit: bool | None) -> int:
        row, row_bytes = _checked_metrics(metrics, self._known_names)
        if _exit._status is not None:
            _exit.forget_exit()  # a sys.exit was caught: the program goes on
        dropped = None
        with self._lock:
            self._check_open()
            current = self._step
            if step is None:
                self._merge(row, row_bytes, current)
                if commit is not False:
                    self._commit_pending()
            elif isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise InvalidArgument(f"step must be a non-negative integer, got {step!r}")
            elif step < current:
                self._dropped += 1
                dropped = current
            else:
                if step > current:
                    self._merge_check(row_bytes, step, fresh=True)
                    self._commit_pending()
                    self._step = step
                self._merge(row, row_bytes, step)
                if commit:
                    self._commit_pending()
            size = len(self._buffer)
        if dropped is not None and not self._warned_drop:
            self._warned_drop = True
            warnings.warn(
                f"Tried to log to step {step} that is less than the current step {dropped}; "
                f"the data was dropped. Run {self._project}/{self._id} warns once; "
                "run.dropped_steps counts every dropped row. To log those steps again, "
                f'rewind with init(resume_from="{self._id}?_step=N"); to record values out '
                "of order, log a separate x-axis metric instead of step=.",
                StepDroppedWarning,
                stacklevel=3,
            )
        return size

    def _merge_check(self, row_bytes: int, step: int, *, fresh: bool) -> None:
        total = row_bytes if fresh else self._pending_bytes + row_bytes
        if total > self._max_row_bytes:
            raise EventTooLarge(
                f"the metrics logged at step {step} would take about {total} bytes, over the "
                f"store's limit of {self._max_row_bytes} for one row; nothing was logged by "
                "this call. Save large data as a file with run.save(), or open the store "
                "with a larger max_event_bytes"
            )

    def _merge(self, row: dict[str, Any], row_bytes: int, step: int) -> None:
        if self._pending is None:
            if row_bytes > self._max_row_bytes:
                self._merge_check(row_bytes, step, fresh=True)
            self._pending = row
            self._pending_bytes = row_bytes
            return
        if self._pending_bytes + row_bytes > self._max_row_bytes:
            # The estimate counts keys logged twice twice: measure before refusing.
            merged = {**self._pending, **row}
            self._merge_check(_row_bytes(merged), step, fresh=True)
            self._pending = merged
            self._pending_bytes = _row_bytes(merged)
            return
        self._pending.update(row)
        self._pending_bytes += row_bytes

    def _commit_pending(self) -> None:
        """Queue the pending row and move past its step (callers hold the lock)."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._pending_bytes = 0
            self._buffer.append(
                StepLogged(incarnation=self._incarnation, step=self._step, metrics=pending)
            )
            if self._metric_defs:
                summarize(self._summary_values, self._metric_defs, pending)
            else:
                self._summary_values.update(pending)
            self._step += 1

    @contextlib.contextmanager
    def _guard(self, interrupted: bool) -> Iterator[None]:
        """The buffer lock, unless ``interrupted``: a signal handler on the thread that
        holds it (inside ``log``) is running, and that thread waits for this call, so
        the buffer is ours and taking the lock would deadlock."""
        if interrupted:
            yield
        else:
            with self._lock:
                yield

    def _owned(self) -> bool:
        """True on the thread holding the buffer lock (a signal handler interrupted it)."""
        return bool(self._lock._is_owned())  # type: ignore[attr-defined]

    def _enqueue(self, event: Event, *, interrupted: bool = False) -> None:
        with self._guard(interrupted):
            self._check_open()
            if not interrupted:
                self._commit_pending()  # durable in call order (contract §7)
            self._buffer.append(event)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished or self._closing:
            raise RunFinishedError(
                f"run {self._project}/{self._id} is finished; start a new one with api.init(..., "
                'resume="allow") to continue it'
            )

    async def set_notes(self, notes: str, *, _interrupted: bool = False) -> None:
        """Replace the run's notes and write them now."""
        self._set_notes_now(notes, interrupted=_interrupted)
        await self.flush(_interrupted=_interrupted)

    def _set_notes_now(self, notes: str, *, interrupted: bool = False) -> None:
        if not isinstance(notes, str):
            raise InvalidArgument(f"notes are a string, not {type(notes).__name__}")
        self._enqueue(
            NotesEdited(notes=notes, incarnation=self._incarnation), interrupted=interrupted
        )
        self._notes = notes

    async def mark_preempting(self, *, _interrupted: bool = False) -> None:
        """Record that this run is being preempted, durably, before the process dies.

        What was logged before (the pending step row included) is written first. The
        next non-zero exit (or a heartbeat expiry) then ends the run PREEMPTED, and a
        sweep requeues it; an exit with code 0 still ends it FINISHED. Calling it again
        does nothing. Do not call it unconditionally after ``init``: every bug would then
        become a requeue loop.

        Raises:
            RunFinishedError: the run was finished.
        """
        self._check_open()
        if self._marked:
            return
        self._marked = True
        self._enqueue(PreemptMarked(incarnation=self._incarnation), interrupted=_interrupted)
        await self._drain(interrupted=_interrupted)
        self._raise_unstored()

    def _note_preemption(self, preemption: Preemption, *, interrupted: bool = False) -> bool:
        """The preemption helper's mark, queued at once (the caller drains it): the row
        being logged is left alone, since the loop adds to it until its step ends and
        the run leaves there. False if a preemption is already under way."""
        if self._preempt is not None or self._finished or self._closing:
            return False
        self._preempt = preemption
        if not self._marked:
            self._marked = True
            with self._guard(interrupted):
                self._buffer.append(PreemptMarked(incarnation=self._incarnation))
        return True

    async def flush(self, *, _interrupted: bool = False) -> None:
        """Write everything logged so far; when this returns it survives a SIGKILL.

        The pending step row is committed too: the step advances past it, so a later
        ``log(step=s)`` at that same step is dropped.

        Raises:
            ValueNotStored: an event the store refused was left out of an earlier write.
        """
        if self._parked and not handling_preemption.get():
            await _forever()
        if self._error is not None:
            raise self._error
        if not _interrupted:
            with self._lock:
                self._check_open()
                self._commit_pending()
        await self._drain(interrupted=_interrupted)
        self._raise_unstored()

    def _raise_unstored(self) -> None:
        if self._unstored:
            reasons, self._unstored = self._unstored, []
            raise ValueNotStored(
                f"run {self._project}/{self._id}: the store refused {len(reasons)} event(s), "
                f"which were left out; everything else was written: {'; '.join(reasons)}"
            )

    def _park(self) -> None:
        """From now on ``log``/``flush`` wait for the process to exit, instead of failing
        on a run the preemption path is finishing, except in that path's own context
        (its checkpoint may save files)."""
        self._parked = True

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

    async def save(
        self, path: str | os.PathLike[str], name: str | None = None, *, _interrupted: bool = False
    ) -> str:
        """Keep a copy of a file (a checkpoint) with the run, by content; return its name.

        The step row logged before is written first, so a checkpoint saved after
        ``log(step=s)`` implies step ``s`` is in the log. A resumed run, on this machine
        or on another against a shared store, gets the file back with ``restore(name)``.
        """
        source = Path(path)
        saved_as = name or source.name
        digest, size = await self._store.put_file(source)
        self._enqueue(
            FileSaved(incarnation=self._incarnation, name=saved_as, digest=digest, size=size),
            interrupted=_interrupted,
        )
        await self._drain(interrupted=_interrupted)
        self._files[saved_as] = digest
        self._raise_unstored()
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
        self._store = await open_store(url)
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


def _register(run: Run) -> None:
    global _exit_hooked
    with _open_lock:
        _open.add(run)
        hook = not _exit_hooked
        _exit_hooked = True
    if hook:
        _exit.on_exit(_finish_open_runs)


def _unregister(run: Run) -> None:
    with _open_lock:
        _open.discard(run)


def _finish_open_runs(exit_code: int, interrupted: bool) -> None:
    for run in active_runs():
        try:
            run._finish_at_exit(exit_code, interrupted)
        except BaseException as exc:  # one run must not keep the others open
            print(
                f"runlog: could not finish run {run.project}/{run.id} at exit: {exc!r}; "
                "the watchdog (runlog reap) will end it",
                file=sys.stderr,
            )


async def _forever() -> None:
    await asyncio.Event().wait()


def _checked_metrics(metrics: Mapping[str, Any], known: list[Any]) -> tuple[dict[str, Any], int]:
    """A copy of ``metrics`` known to encode, and its approximate encoded size: a value
    the store cannot hold fails here, naming its key, not in a later batch. ``known``
    holds the last set of names found good and their size, ``[frozenset, int]``."""
    if not isinstance(metrics, Mapping):
        raise InvalidArgument(
            f"log() takes a mapping of metric names to values, not {type(metrics).__name__}"
        )
    row = dict(metrics)
    keys = row.keys()
    if keys == known[0]:  # a loop logs the same names step after step: checked once
        size = known[1]
    else:
        try:
            names = "".join(row)  # in C: every name is a str, and their total length
        except TypeError:
            bad = next(key for key in row if type(key) is not str)
            raise InvalidArgument(f"metric names are strings; got {bad!r}") from None
        if not names.isascii():
            for key in row:
                _check_text(key, f"metric name {key!r}")
        size = len(names) + (2 + _SCALAR_BYTES) * len(row)
        known[:] = [frozenset(keys), size]
    for key, value in row.items():
        kind = type(value)
        if kind is float or kind is bool or value is None:
            continue
        if kind is int:
            if _INT_MIN <= value <= _INT_MAX:
                continue
            raise InvalidArgument(
                f"metric {key!r}: the integer {value} does not fit in 64 bits (the store "
                "keeps -2**63 .. 2**64-1); log it as a float or a string. Nothing was logged "
                "by this call"
            )
        if isinstance(value, Mapping):  # a metric group: W&B charts it as "group.key"
            return _checked_metrics(flatten_metrics(row), known)
        try:
            size += len(_value_encoder.encode(value))
        except UnicodeEncodeError as exc:
            raise InvalidArgument(
                f"metric {key!r}: the text holds a character UTF-8 cannot encode ({exc.reason}, "
                f"at index {exc.start}); clean it, e.g. with .encode('utf-8', 'replace')"
                ".decode(). Nothing was logged by this call"
            ) from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgument(
                f"metric {key!r}: {exc}. Metrics hold str, int (64-bit), float, bool, None, "
                "and lists and str-keyed dicts of those. Nothing was logged by this call"
            ) from exc
    return row, size


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} holds a character UTF-8 cannot encode ({exc.reason}, at index {exc.start}); "
            "nothing was logged by this call"
        ) from exc


def _row_bytes(row: Mapping[str, Any]) -> int:
    return len(_value_encoder.encode(row))


Checkpoint = Callable[[], Awaitable[None] | None]
