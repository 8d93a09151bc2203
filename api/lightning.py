"""PyTorch Lightning: a ``Logger`` that logs to a runlog run and resumes exactly.

::

    from api.lightning import RunlogLogger

    logger = RunlogLogger(project="demo", id="l1", resume="allow")
    trainer = lightning.Trainer(logger=logger, callbacks=[logger.preemption()], max_steps=1000)
    trainer.fit(model, loader, ckpt_path=logger.checkpoint_path())

Importing this module imports Lightning (``pip install 'runlog[lightning]'``);
``import api`` does not.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from ._frameworks import (
    DEFAULT_SIGNALS,
    LazyRun,
    StepBoundaryPreemption,
    plain_config,
    save_together,
    saved_files,
)
from .sync import SyncRun

__all__ = ["RunlogLogger"]

LAST = "last.ckpt"
BEST = "best.ckpt"


class RunlogLogger(Logger):  # type: ignore[misc]
    """Lightning's hyperparameters as the run's config, its metrics at the trainer's
    global step, and its checkpoints saved with the run.

    Args:
        run: an ``api.sync`` run; without it the logger starts one with
            ``init_kwargs`` (``project=``, ``id=``, ``resume=``, ``store=``, ...) when
            training starts, so the hyperparameters become its config. Without ``id=``
            and ``resume=`` the environment decides (``RUNLOG_RUN_ID``/``WANDB_RUN_ID``,
            ``RUNLOG_RESUME``/``WANDB_RESUME``), so a requeued sweep run continues.
        log_checkpoints: save every checkpoint ``ModelCheckpoint`` writes with the run
            (as ``last.ckpt``, and ``best.ckpt`` when it is the best so far).
        signals, grace: for ``preemption()``: the signals, and how long to wait for a
            step to end after one before finishing the run anyway.
    """

    def __init__(
        self,
        run: SyncRun | None = None,
        *,
        log_checkpoints: bool = True,
        signals: Iterable[signal.Signals | int] = DEFAULT_SIGNALS,
        grace: float = 20.0,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        self._lazy = LazyRun(run, init_kwargs)
        self._log_checkpoints = log_checkpoints
        self._signals = signals
        self._grace = grace
        self._hparams: dict[str, Any] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="runlog-lightning-"))
        self._preemption: StepBoundaryPreemption | None = None
        self._preempt_saved = False
        self._best_saved: str | None = None
        self._pending: tuple[dict[str, str | os.PathLike[str]], int] | None = None

    # --- what Lightning asks of a logger --------------------------------------------------

    @property
    def name(self) -> str:
        """The project (Lightning puts checkpoints under ``<save_dir>/<name>/<version>``)."""
        return self._lazy.planned_project()

    @property
    def version(self) -> str:
        """The run id."""
        return self._lazy.planned_id()

    @property
    def experiment(self) -> Any:
        """The run; before it started, a stand-in that starts it on first use (Lightning
        touches ``experiment`` before it logs the hyperparameters)."""
        run = self._lazy.run
        return run if run is not None else _NotStarted(self)

    @property
    def run(self) -> SyncRun:
        """The run (started now if need be)."""
        return self._lazy.get(self._hparams)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The hyperparameters become the config of the run this logger starts; a run
        that was given, or resumed, keeps its config."""
        if not isinstance(params, Mapping):
            params = vars(params)  # an argparse.Namespace
        self._hparams.update(plain_config(params))
        self._lazy.get(self._hparams)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log at ``step`` (the trainer's global step); rows of steps this run already
        logged (a restart from an older checkpoint) are not logged again."""
        run = self.run
        if self._pending is not None and step is not None and step >= self._pending[1]:
            # The rows before the checkpoint's step are all logged, and the next one is
            # not started yet: saving now writes the open row with it, complete.
            self._save_pending()
        if step is None:
            run.log(dict(metrics))
        elif step >= run.step:
            run.log(dict(metrics), step=step)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Keep the checkpoint just written (and the best one, when it changed).

        Lightning writes it at the end of a step, before that step's metrics are logged;
        it is saved with the run once they are (when the next step's arrive, or at the
        end), so a kill can never leave a checkpoint newer than the run's history.
        """
        if not self._log_checkpoints:
            return
        files: dict[str, str] = {}
        last = getattr(checkpoint_callback, "_last_checkpoint_saved", "") or getattr(
            checkpoint_callback, "last_model_path", ""
        )
        if last and Path(last).is_file():
            files[LAST] = last
        best = getattr(checkpoint_callback, "best_model_path", "")
        if best and best != self._best_saved and Path(best).is_file():
            files[BEST] = best
            self._best_saved = best
        if files:
            step = int(getattr(checkpoint_callback, "_last_global_step_saved", 0))
            self._hold(files, step)

    def _hold(self, files: Mapping[str, str | Path], step: int) -> None:
        """Keep a copy of a checkpoint until the rows before ``step`` are logged (the
        checkpoint callback may delete or overwrite its files meanwhile)."""
        held: dict[str, str | os.PathLike[str]] = {}
        for name, path in files.items():
            copy = self._workdir / f"held-{name}"
            copy.unlink(missing_ok=True)
            try:
                os.link(path, copy)
            except OSError:
                shutil.copyfile(path, copy)
            held[name] = copy
        if self._pending is not None:
            held = {**self._pending[0], **held}
        self._pending = (held, step)

    def _save_pending(self) -> None:
        if self._pending is not None:
            files, _ = self._pending
            self._pending = None
            save_together(self.run, files)

    def save(self) -> None:
        """Called after a training step that stops the trainer: after a preemption
        signal, the step's metrics are logged by now, so the run ends here."""
        if self._preempt_saved and self._preemption is not None:
            self._save_pending()
            self._preemption.stop()

    def finalize(self, status: str) -> None:
        """Write everything logged; the run itself ends with the process (or ``finish``)."""
        run = self._lazy.run
        if run is not None and not run.finished:
            self._save_pending()  # nothing more is logged in this fit
            run.flush()

    # --- resume and preemption ---------------------------------------------------------------

    def checkpoint_path(self) -> str | None:
        """On a resumed run, the last checkpoint it saved, restored to a local file, for
        ``trainer.fit(ckpt_path=...)``; None on a new run (which this call does not
        start, so the hyperparameters still become its config)."""
        run = self._lazy.resumable()
        if run is None or LAST not in saved_files(run):
            return None
        return str(run.restore(LAST, self._workdir / LAST))

    def preemption(self) -> Callback:
        """The callback that acts on SIGTERM/SIGUSR1 at the next training step's end:
        Lightning's own checkpoint is written and saved with the run, the run finishes
        with ``128 + signum`` and ``SystemExit`` ends ``fit``."""
        return _Preemption(self)

    def _preempt(self, trainer: pl.Trainer) -> None:
        path = self._workdir / "preempted.ckpt"
        trainer.save_checkpoint(path)
        self._hold({LAST: path}, trainer.global_step)
        self._preempt_saved = True
        trainer.should_stop = True  # Lightning then calls save() once the step is logged


class _NotStarted:
    """``logger.experiment`` before the run started: any use starts it."""

    def __init__(self, logger: RunlogLogger) -> None:
        self._logger = logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger.run, name)


class _Preemption(Callback):  # type: ignore[misc]
    """Installs the signal handlers for ``fit`` and checkpoints at a step's end."""

    def __init__(self, logger: RunlogLogger) -> None:
        self._logger = logger

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here, not in on_fit_start: the hyperparameters are logged (and the run started
        # with them as config) in between.
        logger = self._logger
        logger._preemption = StepBoundaryPreemption(logger.run, logger._signals, logger._grace)
        logger._preemption.install()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        logger = self._logger
        if (
            logger._preemption is not None
            and logger._preemption.pending is not None
            and not logger._preempt_saved
        ):
            logger._preempt(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._logger._preemption is not None:
            self._logger._preemption.remove()
