"""What the framework integrations (``api.keras``, ``api.lightning``, ``api.huggingface``)
share: starting the run lazily, saving a checkpoint's files in one append, and
preemption acted on at the framework's next step boundary.

Nothing here imports a framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NoReturn

from eventstore import FileSaved

from . import _wandb
from ._errors import ActiveRunError, RunNotFound
from ._library._ids import generate_id
from ._library._init import DEFAULT_PROJECT
from ._library._settings import (
    env,
    normalize_resume,
    read_auto_resume,
    read_settings_file,
    root_dir,
)
from .sync import SyncRun, _thread
from .sync import init as sync_init

__all__ = ["LazyRun", "StepBoundaryPreemption", "save_together"]

log = logging.getLogger("runlog")

DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)


class LazyRun:
    """A run given to an integration, or started by it on first use with ``init_kwargs``.

    Starting late lets the framework's hyperparameters become the new run's config.
    ``resumable()`` answers "is there an existing run to continue?" without creating
    one: it starts the run only when the resume mode allows continuing and the run
    exists, so asking for a checkpoint before training does not fix the config early.
    """

    def __init__(self, run: SyncRun | None, init_kwargs: Mapping[str, Any]) -> None:
        self._run = run
        self._init_kwargs = dict(init_kwargs)

    @property
    def started(self) -> bool:
        """True once there is a run (given, started or resumed)."""
        return self._run is not None

    @property
    def run(self) -> SyncRun | None:
        """The run, if started."""
        return self._run

    def planned_id(self) -> str:
        """The run's id, known before it starts (``id=``, the environment, the
        auto-resume file, else one generated now and then used)."""
        if self._run is not None:
            return self._run.id
        planned = self._init_kwargs.get("id") or env("RUN_ID")
        if planned is None and self._resume_mode(self._init_kwargs) == "auto":
            planned = read_auto_resume(root_dir(self._init_kwargs.get("dir") or None))
        if planned is None:
            planned = self._init_kwargs["id"] = generate_id()
        return str(planned)

    def planned_project(self) -> str:
        """The run's project, known before it starts."""
        if self._run is not None:
            return self._run.project
        return str(self._init_kwargs.get("project") or env("PROJECT") or DEFAULT_PROJECT)

    def get(self, config: Mapping[str, Any] | None = None) -> SyncRun:
        """The run, started now with ``config`` merged over ``config=`` if need be."""
        if self._run is None:
            kwargs = dict(self._init_kwargs)
            if config:
                kwargs["config"] = {**(kwargs.get("config") or {}), **config}
            self._run = sync_init(**kwargs)
        return self._run

    def resumable(self) -> SyncRun | None:
        """The run if it continues an existing one (started now if need be), else None."""
        if self._run is not None:
            return self._run if self._run.resumed else None
        kwargs = dict(self._init_kwargs)
        mode = self._resume_mode(kwargs)
        if mode is None or mode == "never":
            return None  # a new run every time: nothing to restore
        if mode == "auto" and not kwargs.get("id") and env("RUN_ID") is None:
            kwargs["id"] = read_auto_resume(root_dir(kwargs.get("dir") or None))
            if kwargs["id"] is None:
                return None
        kwargs["resume"] = "must"
        try:
            self._run = sync_init(**kwargs)
        except (RunNotFound, ActiveRunError):
            return None
        return self._run

    @staticmethod
    def _resume_mode(kwargs: Mapping[str, Any]) -> str | None:
        if "resume" in kwargs:
            return normalize_resume(kwargs["resume"])
        settings = kwargs.get("settings")
        if isinstance(settings, Mapping) and settings.get("resume") is not None:
            return normalize_resume(settings["resume"])
        value = env("RESUME")
        if value is not None:
            return normalize_resume(value, source="RUNLOG_RESUME")
        from_file = read_settings_file(root_dir(kwargs.get("dir") or None)).get("resume")
        return normalize_resume(from_file, source="the settings file's resume")


def plain_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as a config runlog can store: numbers, strings, lists and dicts stay,
    anything else (a class, a callable, an enum) becomes its ``str``."""

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        item = getattr(value, "item", None)  # a NumPy or torch scalar
        if callable(item):
            with contextlib.suppress(Exception):
                return plain(item())
        return str(value)

    return {str(k): plain(v) for k, v in params.items()}


def the_active_run() -> SyncRun:
    """``api.sync.run``, the current run (for integrations built without ``run=``, as
    W&B's use ``wandb.run``).

    Raises:
        ActiveRunError: there is none.
    """
    current = _wandb._state.run
    if current is None or current.finished:
        raise ActiveRunError(
            "no api.sync run is open in this process; start one with api.sync.init(...), "
            "or pass run= or the init arguments (project=, id=, resume=) to the integration"
        )
    return current


def save_together(run: SyncRun, files: Mapping[str, str | os.PathLike[str]]) -> None:
    """Keep ``files`` (name -> local path) with the run as one append.

    A checkpoint is several files (weights, optimizer, trainer state); a kill between
    two separate saves would leave the run with a newer half and an older half. The
    contents go to the store first; the ``FileSaved`` events are then written together,
    after everything logged before (the open step row included: durable in call order,
    as ``Run.save``), so the run never holds a checkpoint newer than its history.
    """

    async def save() -> None:
        inner = run._run
        saved: list[tuple[str, str, int]] = []
        for name, path in files.items():
            digest, size = await inner.store.put_file(Path(path))
            saved.append((name, digest, size))
        for name, digest, size in saved:
            inner._enqueue(
                FileSaved(incarnation=inner.incarnation, name=name, digest=digest, size=size)
            )
        await inner.flush()
        for name, digest, _ in saved:
            inner._files[name] = digest

    _thread.call(save())


def saved_files(run: SyncRun) -> dict[str, str]:
    """Name -> content digest of every file the run saved (latest version of each)."""
    return dict(run._run._files)


class StepBoundaryPreemption:
    """Preemption for a framework's training loop, acted on at a step boundary.

    The signal handler only records the signal and asks the run's writer thread to mark
    the run preempting (durable at once, without waiting in the handler: the training
    thread may hold the run's lock). The integration calls ``pending`` from the
    framework's step hook and, when it is set, ``stop(...)`` once its checkpoint is
    written: the run finishes with ``128 + signum`` and ``SystemExit`` leaves the
    training loop. If no step boundary comes within ``grace`` seconds (a long
    validation), a timer finishes the run with that code and ends the process; the last
    checkpoint saved with the run is then the one a restart continues from.
    """

    def __init__(
        self,
        run: SyncRun,
        signals: Iterable[signal.Signals | int] = DEFAULT_SIGNALS,
        grace: float = 20.0,
    ) -> None:
        self._run = run
        self._signals = [signal.Signals(s) for s in signals]
        self._grace = grace
        self._previous: dict[signal.Signals, Any] = {}
        self._signum: int | None = None
        self._marked: Future[None] | None = None
        self._timer: threading.Timer | None = None
        self._stopping = threading.Lock()
        self._stopped = False

    @property
    def pending(self) -> int | None:
        """The signal received and not yet acted on, or None."""
        return None if self._stopped else self._signum

    def install(self) -> None:
        """Install the handlers (only from the main thread, where Python runs them)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        self._previous = {s: signal.signal(s, self._on_signal) for s in self._signals}

    def remove(self) -> None:
        """Put the previous handlers back."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._signum is not None or self._run.finished:
            return
        self._signum = signum
        self._marked = asyncio.run_coroutine_threadsafe(
            self._run._run.mark_preempting(), _thread.loop
        )
        self._timer = threading.Timer(self._grace, self._out_of_time)
        self._timer.daemon = True
        self._timer.start()

    def _wait_marked(self) -> None:
        if self._marked is not None:
            try:
                self._marked.result(timeout=max(self._grace, 1.0))
            except Exception:
                log.exception("runlog: marking the run preempting failed")

    def stop(self) -> NoReturn:
        """Finish the run with ``128 + signum`` and raise ``SystemExit`` with that code.

        Call it at a step boundary after the checkpoint was saved with the run.
        """
        assert self._signum is not None
        code = 128 + self._signum
        with self._stopping:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
            self._wait_marked()
            self._run.finish(code)
        self.remove()
        raise SystemExit(code)

    def _out_of_time(self) -> None:
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            assert self._signum is not None
            code = 128 + self._signum
            log.warning(
                "runlog: no training step ended within %.0f s of signal %d; exiting with %d "
                "(a restart continues from the last checkpoint saved with the run)",
                self._grace,
                self._signum,
                code,
            )
            try:
                self._wait_marked()
                self._run.finish(code)
            except BaseException:
                log.exception("runlog: finishing the run failed; exiting with %d anyway", code)
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
