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
finished then, with the exit code the process exits with (``sys.exit(n)``, 1 after an
uncaught exception, 255 after Ctrl-C, else 0), and everything they logged is written.

Every method is safe to call from a signal handler, even one that interrupted ``log``
itself (the seed pattern: ``mark_preempting()``, save a checkpoint, ``sys.exit(143)``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from . import _wandb
from ._library._exit import exit_code_for
from ._library._init import init as _async_init
from ._library._loop import background
from ._library._run import Preemption, Run
from ._library._run_hook import RunHook
from ._library._summary import Summary

__all__ = [
    "DEFAULT_GRACE",
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

DEFAULT_GRACE = 10.0
"""Seconds ``handle_preemption`` waits for the loop's next ``log`` before leaving anyway:
well under the 30 s most schedulers allow between SIGTERM and SIGKILL."""

_STUCK = 5.0  # after the grace period, how long the main thread may stay in native code


_thread = background  # every blocking run lives on the shared loop thread


class SyncRun:
    """A ``Run`` with blocking methods. Create it with ``api.sync.init``."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._hook = RunHook(run)

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
        self._hook.set_notes_now(value)

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, commit: bool | None = None
    ) -> None:
        """Like ``Run.log``; blocks only when the buffer is full, or to leave at this step
        boundary when ``handle_preemption`` caught a signal."""
        hook = self._hook
        if hook.log(metrics, step, commit):
            _thread.call(hook.drain())
        if hook.preemption is not None and commit is not False:
            self._leave_for_preemption()

    def set_notes(self, notes: str) -> None:
        """Replace the notes and write them now."""
        _thread.call(self._hook.set_notes(notes))

    def mark_preempting(self) -> None:
        """Like ``Run.mark_preempting``: durable when it returns."""
        _thread.call(self._hook.mark_preempting())

    def flush(self) -> None:
        """Write everything logged so far (the pending step row included)."""
        _thread.call(self._hook.flush())

    def save(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Keep a copy of a file with the run; return its name."""
        return _thread.call(self._hook.save(path, name))

    def restore(self, name: str, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a saved file back; return where."""
        return _thread.call(self._run.restore(name, path))

    def finish(self, exit_code: int = 0, *, interrupted: bool = False) -> None:
        """End the run and write everything; idempotent."""
        _thread.call(self._hook.finish(exit_code, interrupted=interrupted))

    def _leave_for_preemption(self) -> None:
        """At a step boundary after a preemption signal: commit the step, checkpoint,
        finish with ``128 + signum`` and raise ``SystemExit`` with that code."""
        hook = self._hook
        preemption = hook.preemption
        if preemption is None or preemption.leaving or hook.run.finished:
            return
        preemption.leaving = True
        try:
            hook.commit_step()
            if preemption.checkpoint is not None:
                preemption.checkpoint()
        finally:
            self.finish(preemption.exit_code)
        sys.exit(preemption.exit_code)

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
        return str(self._hook.root)

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
    grace: float = DEFAULT_GRACE,
) -> Callable[[], None]:
    """Leave at a step boundary when the platform preempts the job.

    On any of ``signals`` the run is marked preempting at once, durably. The training
    loop goes on until its next ``run.log(...)``: once that step is recorded the step
    row is committed, ``checkpoint`` runs (so ``run.step`` is the step to resume from,
    and the checkpoint holds the weights of every step logged), the run finishes with
    ``128 + signum`` (PREEMPTED; a sweep requeues it) and ``SystemExit`` leaves the loop.
    If the loop does not log within ``grace`` seconds, the handler does the same
    wherever the main thread is. A checkpoint callback may assume that every step up
    to ``run.step - 1`` is logged and none after. Call it from the main thread; SIGINT
    is left alone. Returns a function that restores the old handlers.
    """
    if grace < 0:
        raise ValueError(f"grace is a number of seconds >= 0, not {grace!r}")
    chosen = [signal.Signals(s) for s in signals]
    inner = run._hook

    def on_signal(signum: int, frame: object) -> None:
        preemption = inner.preemption
        if inner.run.finished:
            return
        if preemption is None:
            preemption = Preemption(signum, checkpoint, time.monotonic() + grace)
            interrupted = inner.interrupted()
            if inner.note_preemption(preemption, interrupted=interrupted):
                _thread.call(inner.drain(interrupted=interrupted))
                threading.Thread(
                    target=_grace_watch, args=(run, preemption), name="runlog-grace", daemon=True
                ).start()
            return
        if preemption.leaving or time.monotonic() < preemption.deadline:
            return  # a repeated signal, or the loop still has time to reach its next log
        if inner.interrupted():
            # We interrupted log() itself: let it finish its few lines, then come back.
            threading.Timer(0.05, _signal_main_thread, (signum,)).start()
            return
        run._leave_for_preemption()

    previous = {s: signal.signal(s, on_signal) for s in chosen}

    def remove() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return remove


def _signal_main_thread(signum: int) -> None:
    """Deliver ``signum`` to the main thread itself, so that a blocking call there (a
    sleep, a read) is interrupted and the Python handler runs now."""
    ident = threading.main_thread().ident
    if ident is not None:
        signal.pthread_kill(ident, signum)


def _grace_watch(run: SyncRun, preemption: Preemption) -> None:
    """After the grace period, make the main thread leave; if it is stuck in native code
    past that, end the run from here so the log says PREEMPTED, and exit."""
    time.sleep(max(0.0, preemption.deadline - time.monotonic()))
    if preemption.leaving or run.finished:
        return
    _signal_main_thread(preemption.signum)
    stuck_until = time.monotonic() + _STUCK
    while time.monotonic() < stuck_until:
        time.sleep(0.05)
        if preemption.leaving or run.finished:
            return
    preemption.leaving = True
    try:
        run.finish(preemption.exit_code)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(preemption.exit_code)


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
