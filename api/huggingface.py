"""Hugging Face Transformers: a ``TrainerCallback`` that logs to a runlog run and
resumes exactly.

::

    from api.huggingface import RunlogCallback

    callback = RunlogCallback(project="demo", id="hf1", resume="allow")
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train(resume_from_checkpoint=callback.checkpoint_path())

Importing this module imports Transformers (``pip install 'runlog[transformers]'``);
``import api`` does not.
"""

from __future__ import annotations

import json
import signal
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ._frameworks import (
    DEFAULT_SIGNALS,
    LazyRun,
    StepBoundaryPreemption,
    plain_config,
    save_together,
    saved_files,
)
from .sync import SyncRun

__all__ = ["RunlogCallback"]

MANIFEST = "hf-checkpoint.json"
PREFIX = "hf-checkpoint/"
# What Trainer logs once at the end of train(): figures of this process (its run time,
# its mean loss), not of a step; W&B keeps them in the run's summary, not its history.
_END_OF_TRAINING = "train_runtime"


class RunlogCallback(TrainerCallback):  # type: ignore[misc]
    """``TrainingArguments`` (and the model's config) as the run's config, ``Trainer``'s
    logs at its global step, its checkpoints saved with the run, and preemption acted on
    at a step boundary with ``Trainer``'s own checkpoint.

    Args:
        run: an ``api.sync`` run; without it the callback starts one with
            ``init_kwargs`` (``project=``, ``id=``, ``resume=``, ``store=``, ...) when
            training begins. Without ``id=``/``resume=`` the environment decides
            (``RUNLOG_RUN_ID``/``WANDB_RUN_ID``, ``RUNLOG_RESUME``/``WANDB_RESUME``), so a
            requeued sweep run continues.
        save_checkpoints: save every checkpoint ``Trainer`` writes with the run.
        signals, grace: the preemption signals, and how long to wait for a step to end
            after one before finishing the run anyway.
    """

    def __init__(
        self,
        run: SyncRun | None = None,
        *,
        save_checkpoints: bool = True,
        signals: Iterable[signal.Signals | int] = DEFAULT_SIGNALS,
        grace: float = 20.0,
        **init_kwargs: Any,
    ) -> None:
        self._lazy = LazyRun(run, init_kwargs)
        self._save_checkpoints = save_checkpoints
        self._signals = signals
        self._grace = grace
        self._preemption: StepBoundaryPreemption | None = None
        self._preempting = False
        self._workdir = Path(tempfile.mkdtemp(prefix="runlog-hf-"))

    @property
    def run(self) -> SyncRun:
        """The run (started now if need be)."""
        return self._lazy.get()

    def checkpoint_path(self, directory: str | Path | None = None) -> str | None:
        """On a resumed run, the last checkpoint it saved, restored as a checkpoint
        directory (under ``directory``, default a temporary one), for
        ``trainer.train(resume_from_checkpoint=...)``; None on a new run (which this call
        does not start, so ``TrainingArguments`` still become its config)."""
        run = self._lazy.resumable()
        if run is None or MANIFEST not in saved_files(run):
            return None
        root = Path(directory) if directory is not None else self._workdir
        manifest = json.loads(run.restore(MANIFEST, self._workdir / MANIFEST).read_text())
        target = root / manifest["checkpoint"]
        for relative in manifest["files"]:
            run.restore(PREFIX + relative, target / relative)
        return str(target)

    # --- Trainer's events ---------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the run with ``TrainingArguments`` (and ``model.config``) as config
        (in the main process only, when training runs on several)."""
        if not state.is_world_process_zero:
            return
        config = plain_config(args.to_dict())
        model_config = getattr(kwargs.get("model"), "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model_config"] = plain_config(model_config.to_dict())
        run = self._lazy.get(config)
        self._preemption = StepBoundaryPreemption(run, self._signals, self._grace)
        self._preemption.install()

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Log at ``state.global_step``; steps this run already logged (a restart from an
        older checkpoint) are not logged again."""
        if not logs or _END_OF_TRAINING in logs or not state.is_world_process_zero:
            return
        row = {
            k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        run = self.run
        if row and state.global_step >= run.step:
            run.log(row, step=state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After a signal: have Trainer write its checkpoint now and stop."""
        if self._preemption is not None and self._preemption.pending is not None:
            self._preempting = True
            control.should_save = True
            control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Keep the checkpoint Trainer just wrote (all its files, in one append, with the
        step's logs before it); after a signal, end the run here."""
        if self._save_checkpoints or self._preempting:
            self._keep(Path(args.output_dir) / f"checkpoint-{state.global_step}", state)
        if self._preempting and self._preemption is not None:
            self._preemption.stop()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Put the previous signal handlers back and write what was logged."""
        if self._preemption is not None:
            self._preemption.remove()
        run = self._lazy.run
        if run is not None and not run.finished:
            run.flush()

    def _keep(self, checkpoint: Path, state: Any) -> None:
        if not checkpoint.is_dir() or not state.is_world_process_zero:
            return
        files = {
            str(p.relative_to(checkpoint)): p for p in sorted(checkpoint.rglob("*")) if p.is_file()
        }
        manifest = self._workdir / MANIFEST
        manifest.write_text(
            json.dumps(
                {
                    "checkpoint": checkpoint.name,
                    "global_step": state.global_step,
                    "files": list(files),
                }
            )
        )
        save_together(
            self.run,
            {**{PREFIX + name: path for name, path in files.items()}, MANIFEST: manifest},
        )
