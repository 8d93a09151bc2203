"""Keras 3: a callback that logs each epoch, keeps the best model and resumes exactly.

::

    from api.keras import RunlogCallback

    callback = RunlogCallback(project="demo", id="k1", resume="allow", monitor="loss")
    model = callback.restore() or build_and_compile()
    model.fit(x, y, epochs=30, initial_epoch=callback.initial_epoch, callbacks=[callback])

Importing this module imports Keras (``pip install 'runlog[keras]'``); ``import api``
does not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import keras

from ._frameworks import (
    DEFAULT_SIGNALS,
    LazyRun,
    StepBoundaryPreemption,
    save_together,
    saved_files,
    the_active_run,
)
from .sync import SyncRun

__all__ = ["RunlogCallback", "WandbCallback"]

STATE_FILE = "runlog-keras-state.json"


class RunlogCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Log every epoch's logs at step = epoch, save the best model by ``monitor`` and a
    resumable checkpoint with the run, and stop cleanly on preemption.

    Args:
        run: an ``api.sync`` run; without it the callback starts one with
            ``init_kwargs`` (lazily, so ``fit``'s parameters become its config), or,
            with no ``init_kwargs`` either, uses ``api.sync.run``.
        monitor: the logged value that decides the best model (``"val_loss"``).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for accuracy-like names).
        save_model: keep the best model with the run as ``best_model_name``.
        best_model_name: the saved name of the best model (``"model-best.h5"``, as
            W&B's callback; a ``.keras`` name saves in Keras' own format).
        checkpoint_every: save the resumable checkpoint (model, optimizer, epoch, best
            value) every this many epochs; 0 never.
        signals, grace: the preemption signals, and how long to wait for a step to end
            after one before finishing the run anyway.
    """

    def __init__(
        self,
        run: SyncRun | None = None,
        *,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_model: bool = True,
        best_model_name: str = "model-best.h5",
        checkpoint_every: int = 1,
        signals: Iterable[signal.Signals | int] = DEFAULT_SIGNALS,
        grace: float = 20.0,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode is 'min', 'max' or 'auto', not {mode!r}")
        if mode == "auto":
            mode = (
                "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall")) else "min"
            )
        self.monitor = monitor
        self.mode = mode
        self.save_model = save_model
        self.best_model_name = best_model_name
        self.checkpoint_every = checkpoint_every
        self.best: float | None = None
        self._lazy = LazyRun(run, init_kwargs) if run is not None or init_kwargs else None
        self._signals = signals
        self._grace = grace
        self._preemption: StepBoundaryPreemption | None = None
        self._initial_epoch = 0
        self._workdir = Path(tempfile.mkdtemp(prefix="runlog-keras-"))

    # --- the run ------------------------------------------------------------------------

    @property
    def run(self) -> SyncRun:
        """The run the callback logs to (started on first use)."""
        return self._the_run()

    def _the_run(self, config: Mapping[str, Any] | None = None) -> SyncRun:
        if self._lazy is None:
            self._lazy = LazyRun(the_active_run(), {})
        return self._lazy.get(config)

    @property
    def initial_epoch(self) -> int:
        """The epoch to pass to ``fit(initial_epoch=)``: the one after the restored
        checkpoint's, 0 on a new run. Call ``restore()`` first."""
        return self._initial_epoch

    def restore(self, compile: bool = True) -> keras.Model | None:
        """On a resumed run: the model of the last checkpoint saved with the run
        (weights and optimizer state), and the best value so far; else None.

        A new run is not started by this call, so ``fit``'s parameters still become its
        config.
        """
        if self._lazy is None:
            self._lazy = LazyRun(the_active_run(), {})
        run = self._lazy.resumable()
        if run is None or STATE_FILE not in saved_files(run):
            return None
        state = json.loads(run.restore(STATE_FILE, self._workdir / STATE_FILE).read_text())
        self.best = state["best"]
        self._initial_epoch = int(state["epoch"]) + 1
        path = run.restore(state["checkpoint"], self._workdir / state["checkpoint"])
        return keras.models.load_model(path, compile=compile)

    # --- Keras hooks --------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Start the run (with ``fit``'s parameters as config) and the signal handling."""
        run = self._the_run(_fit_config(self.model, self.params))
        self._preemption = StepBoundaryPreemption(run, self._signals, self._grace)
        self._preemption.install()

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        """After a signal: stop here, at a step boundary.

        Keras resumes ``fit`` at an epoch (``initial_epoch``), not inside one, so the
        checkpoint a restart continues from is the last epoch's; the interrupted epoch
        is trained again from its start and its row is logged once.
        """
        if self._preemption is not None and self._preemption.pending is not None:
            self._preemption.stop()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Log the epoch's logs at step ``epoch``; save the best model and the checkpoint."""
        run = self._the_run()
        row = _scalars(logs or {})
        if epoch >= run.step:  # below: logged before a kill, restored from an older checkpoint
            run.log(row, step=epoch, commit=True)
        files: dict[str, Path] = {}
        value = row.get(self.monitor)
        if value is not None and not math.isnan(value) and self._improved(value):
            self.best = value
            if self.save_model:
                files[self.best_model_name] = self._save(self.best_model_name)
        if self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0:
            checkpoint = "model-latest.keras"
            files[checkpoint] = self._save(checkpoint)
            state = self._workdir / STATE_FILE
            state.write_text(
                json.dumps(
                    {
                        "epoch": epoch,
                        "best": self.best,
                        "monitor": self.monitor,
                        "checkpoint": checkpoint,
                    }
                )
            )
            files[STATE_FILE] = state
        if files:
            save_together(run, files)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """Put the previous signal handlers back and write what was logged."""
        if self._preemption is not None:
            self._preemption.remove()
        self._the_run().flush()

    # --- helpers ------------------------------------------------------------------------

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def _save(self, name: str) -> Path:
        path = self._workdir / name
        absl = logging.getLogger("absl")
        level = absl.level
        # Keras calls HDF5 "legacy" on every save; W&B's callback and the seed use it.
        absl.setLevel(logging.ERROR)
        # Keras' HDF5 writer pops "optimizer" out of the model's own compile config, so
        # every later ``.keras`` save (the resumable checkpoint) would lose the optimizer.
        compile_config = getattr(getattr(self.model, "_compile_config", None), "config", None)
        kept = dict(compile_config) if isinstance(compile_config, dict) else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if path.suffix in (".h5", ".hdf5"):
                    # Keras 3 cannot load the compile settings it writes to HDF5
                    # ("Could not deserialize 'keras.metrics.mse'"): keep the model
                    # without them; the resumable checkpoint is the .keras file.
                    self.model.save(path, include_optimizer=False)
                else:
                    self.model.save(path)
        finally:
            absl.setLevel(level)
            if kept is not None and isinstance(compile_config, dict):
                compile_config.clear()
                compile_config.update(kept)
        return path


WandbCallback = RunlogCallback
"""The name W&B's Keras callback has, for scripts ported with only the imports changed."""


def _scalars(logs: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in logs.items():
        try:
            row[str(key)] = float(value)
        except (TypeError, ValueError):
            continue  # not a number: Keras only puts metric values here
    return row


def _fit_config(model: Any, params: Mapping[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        k: v for k, v in (params or {}).items() if isinstance(v, (int, float, str, bool))
    }
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        config["optimizer"] = type(optimizer).__name__
        with_lr = getattr(optimizer, "learning_rate", None)
        with contextlib.suppress(TypeError, ValueError):  # a schedule is not a number
            config["learning_rate"] = float(with_lr) if with_lr is not None else None
    return config
