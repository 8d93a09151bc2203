"""``Run``: an active run that logs through a group-committing writer.

``log`` only buffers; one background task per run commits the buffer in batches and
writes heartbeats; a full buffer makes ``log`` wait for that write (backpressure).
Whatever a run records becomes durable in the order it was called: ``save``,
``mark_preempting``, notes, ``flush`` and ``finish`` first commit the step row still
pending, so a checkpoint recorded after ``log(step=s)`` implies step ``s`` is stored.

``Run`` is one public class built in layers, each a module of one idea:

- ``api/_library/_run_buffer.py``: the state, the step rules and the buffer;
- ``api/_library/_run_writer.py``: the writer task, heartbeats, fencing and catching up;
- ``api/_library/_run_end.py``: ``finish``, leaving at a preemption, runs left open at exit;
- this module: what a run is (its properties), logging, notes, files;
- ``api/_library/_run_hook.py``: what the blocking facade and the preemption helper may do.

A run left open is still ended truthfully: when its event loop ends (``asyncio.run``
cancels every task), what it logged is written at once; when the interpreter exits, the
run is finished with the exit code the process leaves with (``_exit.py``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from eventstore import (
    Event,
    EventStore,
    FileSaved,
    InvalidArgument,
    NewEvent,
    NotesEdited,
    PreemptMarked,
    run_stream,
)

from ._config import Config
from ._exit import exit_code_for
from ._run_buffer import _ROW_OVERHEAD, Checkpoint, Preemption, _forever, handling_preemption
from ._run_end import RunEnd, open_runs, register
from ._summary import Summary, define_metric

__all__ = ["Checkpoint", "Preemption", "Run", "active_runs", "exit_code_for", "handling_preemption"]


def active_runs() -> list[Run]:
    """Runs of this process that are not finished."""
    return [run for run in open_runs() if isinstance(run, Run)]


class Run(RunEnd):
    """One run of a training script. Create it with ``api.init``."""

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
        register(self)
        # W&B's summary/config surface (api/_library/_summary.py, api/_library/_config.py); _init fills
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
        with attribute access whose changes are recorded (``api/_library/_config.py``)."""
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
        if size >= self._batch_size and (not self._wake.is_set() or size % self._batch_size == 0):
            # Hand the batch to the writer and let it start: a training loop that
            # awaits nothing else would otherwise starve it until the buffer is full.
            # Yielding again every batch_size rows lets a writer whose append has
            # finished meanwhile start the next one, so writing overlaps logging
            # instead of waiting for the full buffer (issue 16).
            self._wake.set()
            await asyncio.sleep(0)
        if size >= self._max_buffer:
            await self._drain()
        if self._preempt is not None and commit is not False and not handling_preemption.get():
            await self._leave_for_preemption()

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
