"""The blocking facade: the same library for ordinary synchronous training loops.

::

    from api import sync

    with sync.init(project="mnist", id="r1", resume="allow") as run:
        sync.handle_preemption(run, checkpoint=save_checkpoint)
        for step in range(run.step, 10_000):
            run.log({"loss": train_one_step()})

The async core runs on one private event-loop thread per process. ``log`` only takes
a lock and appends to the run's buffer (the writer on that thread commits it in
batches), so it costs microseconds. Runs still open when the interpreter exits are
finished then (exit code 1 after an uncaught exception, else 0) and everything they
logged is written.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from . import _wandb
from ._init import init as _async_init
from ._run import Run, exit_code_for
from ._summary import Summary

__all__ = [
    "Settings",
    "SyncRun",
    "agent",
    "config",
    "define_metric",
    "finish",
    "handle_preemption",
    "init",
    "log",
    "login",
    "mark_preempting",
    "restore",
    "save",
    "summary",
    "sweep",
    "util",
    "watch",
]

_T = TypeVar("_T")


class _LoopThread:
    """One event loop on a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runs: list[SyncRun] = []
        self.uncaught = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name="runlog-sync", daemon=True).start()
                ready.wait()
                self._loop = loop
                atexit.register(self._at_exit)
                previous = sys.excepthook

                def excepthook(*args: Any) -> None:
                    self.uncaught = True
                    previous(*args)

                sys.excepthook = excepthook
            return self._loop

    def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result()

    def _at_exit(self) -> None:
        for run in list(self.runs):
            if not run.finished:
                run.finish(1 if self.uncaught else 0)


_thread = _LoopThread()


class SyncRun:
    """A ``Run`` with blocking methods. Create it with ``api.sync.init``."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._preempted: tuple[int, Callable[[], object] | None] | None = None
        _thread.runs.append(self)

    @property
    def id(self) -> str:
        """The run id."""
        return self._run.id

    @property
    def project(self) -> str:
        """The project."""
        return self._run.project

    @property
    def resumed(self) -> bool:
        """True when this process continued an existing, started run."""
        return self._run.resumed

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step=`` uses."""
        return self._run.step

    @property
    def starting_step(self) -> int:
        """The step this incarnation started at."""
        return self._run.starting_step

    @property
    def incarnation(self) -> int:
        """This process's incarnation of the run."""
        return self._run.incarnation

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, merged across resumes."""
        return self._run.config

    @property
    def sweep_id(self) -> str | None:
        """The sweep the run belongs to, if any."""
        return self._run.sweep_id

    @property
    def dropped_steps(self) -> int:
        """How many rows were dropped for being below the current step."""
        return self._run.dropped_steps

    @property
    def finished(self) -> bool:
        """True once the run is finished."""
        return self._run.finished

    @property
    def notes(self) -> str | None:
        """The run's notes; setting them records a ``NotesEdited``."""
        return self._run.notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._run.notes = value

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, commit: bool | None = None
    ) -> None:
        """Like ``Run.log``; blocks only when the buffer is full."""
        run = self._run
        size = run._log_now(metrics, step, commit)
        if size >= run._batch_size and not run._wake.is_set():
            run._loop.call_soon_threadsafe(run._wake.set)  # once per batch, not per log
        if size >= run._max_buffer:
            _thread.call(run._drain())

    def set_notes(self, notes: str) -> None:
        """Replace the notes and write them now."""
        _thread.call(self._run.set_notes(notes))

    def mark_preempting(self) -> None:
        """Like ``Run.mark_preempting``: durable when it returns."""
        _thread.call(self._run.mark_preempting())

    def flush(self) -> None:
        """Write everything logged so far."""
        _thread.call(self._run.flush())

    def save(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Keep a copy of a file with the run; return its name."""
        return _thread.call(self._run.save(path, name))

    def restore(self, name: str, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a saved file back; return where."""
        return _thread.call(self._run.restore(name, path))

    def finish(self, exit_code: int = 0, *, interrupted: bool = False) -> None:
        """End the run and write everything; idempotent."""
        if self._preempted is not None and not self._run.finished:
            signum, checkpoint = self._preempted
            self._preempted = None
            exit_code, interrupted = 128 + signum, False
            try:
                self.mark_preempting()
                if checkpoint is not None:
                    checkpoint()
            finally:
                _thread.call(self._run.finish(exit_code))
        _thread.call(self._run.finish(exit_code, interrupted=interrupted))
        if self in _thread.runs:
            _thread.runs.remove(self)

    def __enter__(self) -> SyncRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code, interrupted = exit_code_for(exc)
        self.finish(code, interrupted=interrupted)

    def __repr__(self) -> str:
        return f"<SyncRun {self._run!r}>"

    # --- W&B's run attributes (api/_wandb.py, docs/wandb.md) ---------------------------

    @property
    def summary(self) -> Summary:
        """The run's summary (see ``Run.summary``)."""
        return self._run.summary

    def define_metric(self, name: str, step_metric: str | None = None, **kwargs: Any) -> Any:
        """See ``Run.define_metric``."""
        return self._run.define_metric(name, step_metric, **kwargs)

    @property
    def entity(self) -> str | None:
        """W&B's ``entity`` as given to ``init`` (not part of runlog's namespace)."""
        return self._run.entity

    @property
    def name(self) -> str:
        """The run's display name, else its id. Setting it changes this process's view
        only; pass ``name=`` to ``init`` to record it."""
        return self._run.name or self._run.id

    @name.setter
    def name(self, value: str) -> None:
        self._run.name = value

    @property
    def dir(self) -> str:
        """The run's directory (``init(dir=)``, else the working directory): where
        ``restore`` writes files back."""
        return str(self._run._root)

    @property
    def path(self) -> str:
        """``"<project>/<run id>"``."""
        return f"{self._run.project}/{self._run.id}"


def init(*args: Any, **kwargs: Any) -> SyncRun:
    """Start or continue a run, blocking; takes the same arguments as ``api.init``, and
    every keyword ``wandb.init`` takes (``api/_wandb.py``, ``docs/wandb.md``). The run
    becomes ``api.sync.run``.

    A store object cannot be shared with async code on another loop; pass a path or
    URL (or nothing, for the embedded default).
    """
    return _wandb.init(*args, **kwargs)


def _start(*args: Any, **kwargs: Any) -> SyncRun:
    """``init`` with runlog's own arguments only."""

    async def start() -> Run:
        return await _async_init(*args, **kwargs)

    return SyncRun(_thread.call(start()))


def handle_preemption(
    run: SyncRun,
    signals: Iterable[signal.Signals | int] = (signal.SIGTERM, signal.SIGUSR1),
    checkpoint: Callable[[], object] | None = None,
) -> Callable[[], None]:
    """On any of ``signals``: leave the training loop with ``SystemExit(128 + signum)``;
    on the way out the run is marked preempting, ``checkpoint`` runs and the run
    finishes with that code, whether the run is in a ``with`` block or not.

    The handler itself only raises: a Python signal handler runs between any two
    bytecodes of the main thread, perhaps inside ``log``'s critical section, so the
    writes happen once the stack has unwound. Call it from the main thread. Returns a
    function that restores the old handlers.
    """
    chosen = [signal.Signals(s) for s in signals]

    def on_signal(signum: int, frame: object) -> None:
        if run._preempted is not None or run.finished:
            return
        run._preempted = (signum, checkpoint)
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, on_signal) for s in chosen}

    def remove() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return remove


# --- W&B's module-level API: `from api import sync as wandb` (api/_wandb.py) -------------

config = _wandb.config
summary = _wandb.summary
log = _wandb.log
finish = _wandb.finish
mark_preempting = _wandb.mark_preempting
define_metric = _wandb.define_metric
save = _wandb.save
restore = _wandb.restore
sweep = _wandb.sweep
agent = _wandb.agent
login = _wandb.login
watch = _wandb.watch
util = _wandb.util
Settings = _wandb.Settings


def __getattr__(name: str) -> Any:
    """``api.sync.run``: the run the module-level functions act on (``wandb.run``), set by
    ``init`` and None again once it is finished, however that happened."""
    if name == "run":
        current = _wandb._state.run
        return current if current is not None and not current.finished else None
    raise AttributeError(f"module 'api.sync' has no attribute {name!r}")
