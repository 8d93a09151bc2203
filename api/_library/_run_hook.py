"""``RunHook``: what code outside a run's event loop may do to it.

The blocking facade (``api.sync``) calls a run from the training thread and from signal
handlers, and the preemption helper drives a run from a signal; both need more than the
public ``Run`` offers (log without awaiting, know whether a signal interrupted ``log``
itself, leave at a step boundary). They go through this hook, never through ``Run``'s
private members, so the run's layers can change without breaking them.

A method that may run in a signal handler takes the buffer lock only when the handler
did not interrupt the thread holding it (``interrupted()``): that thread waits for the
handler, so the buffer is the handler's, and taking the lock would deadlock.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from ._run import Run
from ._run_buffer import Preemption

__all__ = ["RunHook"]


class RunHook:
    """The internal hook of one ``Run`` (see the module docstring)."""

    __slots__ = ("_run",)

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        """The run."""
        return self._run

    @property
    def root(self) -> Path:
        """The run's directory, where ``restore`` writes files back."""
        return self._run._root

    @property
    def preemption(self) -> Preemption | None:
        """The preemption under way, if a preemption signal arrived."""
        return self._run._preempt

    def interrupted(self) -> bool:
        """True on the thread holding the buffer lock: a signal handler interrupted it."""
        return self._run._owned()

    def log(self, metrics: Mapping[str, Any], step: int | None, commit: bool | None) -> bool:
        """``Run.log`` without awaiting: buffer the row, wake the writer once a batch
        waits. True when the buffer is full: the caller must ``drain()`` before going on."""
        run = self._run
        size = run._log_now(metrics, step, commit)
        if size >= run._batch_size and not run._wake.is_set():
            run._loop.call_soon_threadsafe(run._wake.set)  # once per batch, not per log
        return size >= run._max_buffer

    def drain(self, *, interrupted: bool = False) -> Coroutine[Any, Any, None]:
        """Write what is buffered now (run it on the run's loop)."""
        return self._run._drain(interrupted=interrupted)

    def commit_step(self) -> None:
        """Commit the pending step row, so ``run.step`` is the step to resume from."""
        run = self._run
        with run._lock:
            run._commit_pending()

    def set_notes_now(self, notes: str) -> None:
        """Record new notes with the next write."""
        self._run._set_notes_now(notes, interrupted=self.interrupted())

    def note_preemption(self, preemption: Preemption, *, interrupted: bool = False) -> bool:
        """Queue the preemption mark (the caller drains it); False if a preemption is
        already under way or the run is ending."""
        return self._run._note_preemption(preemption, interrupted=interrupted)

    def park(self) -> None:
        """From now on ``log``/``flush`` wait for the process to exit (the preemption
        path is finishing the run)."""
        self._run._park()

    def checkpoint_and_finish(self, preemption: Preemption) -> Coroutine[Any, Any, None]:
        """Commit the step, run the checkpoint, finish with ``128 + signum``."""
        return self._run._checkpoint_and_finish(preemption)

    # The run's own methods, told whether a signal handler interrupted ``log``.

    def set_notes(self, notes: str) -> Coroutine[Any, Any, None]:
        """``Run.set_notes``, safe in a signal handler."""
        return self._run.set_notes(notes, _interrupted=self.interrupted())

    def mark_preempting(self) -> Coroutine[Any, Any, None]:
        """``Run.mark_preempting``, safe in a signal handler."""
        return self._run.mark_preempting(_interrupted=self.interrupted())

    def flush(self) -> Coroutine[Any, Any, None]:
        """``Run.flush``, safe in a signal handler."""
        return self._run.flush(_interrupted=self.interrupted())

    def save(self, path: str | os.PathLike[str], name: str | None) -> Coroutine[Any, Any, str]:
        """``Run.save``, safe in a signal handler."""
        return self._run.save(path, name, _interrupted=self.interrupted())

    def finish(self, exit_code: int, *, interrupted: bool) -> Coroutine[Any, Any, None]:
        """``Run.finish``, safe in a signal handler."""
        return self._run.finish(exit_code, interrupted=interrupted, _interrupted=self.interrupted())
