"""What runlog's framework integrations add to a training step, against no logger and
against the framework's own CSV and TensorBoard loggers, measured in one run.

What it measures
    A tiny model (an MLP 8 -> 16 -> 1, batches of 8, CPU) trained for ``S`` steps by
    each framework that imports, once per configuration:

    none         the framework with no logger at all (the baseline);
    noop         (Lightning) a ``Logger`` that keeps nothing: with ``logger=False``
                 Lightning skips its own per-step metric handling, which every real
                 logger pays, so runlog's own cost is also given against this one;
    runlog       ``api.lightning.RunlogLogger`` (with its preemption callback),
                 ``api.huggingface.RunlogCallback``, or ``api.keras.RunlogCallback``
                 (logging only: ``save_model=False, checkpoint_every=0``), each given a
                 run in a fresh SQLite store in a temporary directory, started before
                 training (``init`` is not timed);
    csv          Lightning's ``CSVLogger``, Keras' ``CSVLogger`` (Transformers has none);
    tensorboard  Lightning's ``TensorBoardLogger``, Transformers' ``report_to=
                 "tensorboard"`` (Keras' needs TensorFlow: skipped, and said so).

    Every configuration logs every step (Lightning ``log_every_n_steps=1``,
    Transformers ``logging_steps=1``; Keras logs per epoch, 10 steps an epoch) and
    writes no checkpoints, so the figure is the logging cost. A timing callback stamps
    ``time.process_time()`` at the start of every training batch: the CPU time of the
    whole process (every thread: runlog's writer thread and TensorBoard's are in it),
    which other processes on a shared machine do not inflate as they do wall-clock
    time; torch runs on one thread (``torch.set_num_threads(1)``), so the figure is not
    spin-waiting of idle intra-op threads either. The step time is the
    mean over the steps after the first 10 (start-up and warm-up excluded; one whole
    unlogged run before the rounds warms up each framework and is not counted), so it
    holds the model's forward/backward/optimizer step and all the logger does per step.

    ``overhead`` is step time / the ``none`` step time - 1. On a shared machine these
    end-to-end figures move by a few per cent from run to run (the ``none`` and ``noop``
    runs differ by that much), so runlog's own cost is also measured directly: the CPU
    time (``time.thread_time``) the training thread spends inside runlog's hooks, plus
    the CPU time of the thread ``api.sync`` writes on (its ``pthread_getcpuclockid`` clock) while
    the runlog configurations train, per step, as a share of the unlogged step (of the
    ``noop`` step for Lightning): ``runlog_own_share``, the figure the 5 % bar is
    checked on; ``below_tensorboard`` compares the end-to-end step times (the bars of
    issue 18). The hooks timed: ``log_metrics``, ``on_log``, ``on_epoch_end``, the
    step-end checks and the checkpoint hooks.

Repeats
    ``--repeat`` rounds (default 5, 1 for a smoke run with ``--events`` up to 20,000),
    interleaved (none, noop, runlog, csv, tensorboard, none, ...); the headline is the best
    (lowest) step time of each configuration, as interference on a shared machine only
    slows a run down; the medians are in the JSON line.

Run ``python benchmarks/bench_frameworks.py`` (``--events 50000``: 2,000 steps per run)
or ``--events 5000`` for a smoke run (200 steps). ``--events`` / 25 is the number of
steps per run. A framework that does not import is skipped and recorded as
``"skipped: not installed"``. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from time import process_time, thread_time
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

WARM = 10
BATCH = 8
SAMPLES = 80  # 10 batches an epoch
Stamps = list[float]


def step_time(stamps: Stamps) -> float:
    """Mean seconds per step after the warm-up."""
    if len(stamps) <= WARM + 1:
        raise SystemExit(f"only {len(stamps)} steps were timed")
    return (stamps[-1] - stamps[WARM]) / (len(stamps) - 1 - WARM)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The frameworks' banners, tips and warnings are not figures."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


class HookTimer:
    """CPU time the training thread spends inside an integration's hooks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.steps = 0

    @contextlib.contextmanager
    def around(self, cls: type, names: tuple[str, ...]) -> Iterator[None]:
        originals = {name: getattr(cls, name) for name in names}

        def timed(method: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                began = thread_time()
                try:
                    return method(*args, **kwargs)
                finally:
                    self.seconds += thread_time() - began

            return wrapper

        for name, method in originals.items():
            setattr(cls, name, timed(method))
        try:
            yield
        finally:
            for name, method in originals.items():
                setattr(cls, name, method)


HOOKS = HookTimer()


def writer_cpu() -> float:
    """CPU seconds used so far by the thread ``api.sync`` writes on (0 before it starts)."""
    return sum(
        time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        for t in threading.enumerate()
        if t.name in ("runlog-loop", "runlog-sync") and t.ident is not None
    )


class WriterTimer:
    """CPU the writer thread spends while the runlog configurations train."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def during(self) -> Iterator[None]:
        began = writer_cpu()
        try:
            yield
        finally:
            self.seconds += writer_cpu() - began


WRITER = WriterTimer()
_runs = iter(range(1_000_000))


def fresh_run(workdir: Path) -> Any:
    """A run in a fresh store, started before training (``init`` is not timed, as in
    ``bench_log.py``)."""
    from api import sync

    n = next(_runs)
    return sync.init(project="bench", id=f"r{n}", store=str(workdir / f"runlog-{n}.db"))


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


# --- Lightning ------------------------------------------------------------------------


def lightning_runs(steps: int, workdir: Path) -> dict[str, Callable[[], float]]:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    from api.lightning import RunlogLogger

    class Tiny(pl.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
            )

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=0.01)

    class NoOp(Logger):  # type: ignore[misc]
        """A logger that keeps nothing: Lightning's own per-step logging work, alone."""

        name = "noop"
        version = "0"

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    class Clock(pl.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.stamps: Stamps = []

        def on_train_batch_start(self, *args: Any) -> None:
            self.stamps.append(process_time())

    x = torch.randn(SAMPLES, 8)
    loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=BATCH)

    def fit(make_logger: Callable[[], Any], extra: Callable[[Any], list[Any]]) -> float:
        clock = Clock()
        logger = make_logger()
        trainer = pl.Trainer(
            max_steps=steps,
            logger=logger,
            callbacks=[clock, *extra(logger)],
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            default_root_dir=str(workdir),
        )
        with quiet():
            trainer.fit(Tiny(), loader)
        if isinstance(logger, RunlogLogger):
            logger.run.finish()
        return step_time(clock.stamps)

    def runlog() -> RunlogLogger:
        return RunlogLogger(fresh_run(workdir))

    def timed_runlog() -> float:
        from api.lightning import _Preemption

        with (
            HOOKS.around(RunlogLogger, ("log_metrics", "after_save_checkpoint", "save")),
            HOOKS.around(_Preemption, ("on_train_batch_end",)),
            WRITER.during(),
        ):
            HOOKS.steps += steps
            return fit(runlog, lambda logger: [logger.preemption()])

    return {
        "none": lambda: fit(lambda: False, lambda _: []),
        "noop": lambda: fit(NoOp, lambda _: []),
        "runlog": timed_runlog,
        "csv": lambda: fit(lambda: CSVLogger(str(workdir), name="csv"), lambda _: []),
        "tensorboard": lambda: fit(
            lambda: TensorBoardLogger(str(workdir), name="tb"), lambda _: []
        ),
    }


# --- Transformers ---------------------------------------------------------------------


def transformers_runs(steps: int, workdir: Path) -> dict[str, Callable[[], float]]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from api.huggingface import RunlogCallback

    class Tiny(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
            )

        def forward(self, x: Any, labels: Any = None) -> dict[str, Any]:
            out = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    class Clock(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.stamps: Stamps = []

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.stamps.append(process_time())

    x = torch.randn(SAMPLES, 8)
    data = [{"x": row, "labels": row.sum(dim=0, keepdim=True)} for row in x]

    def train(report_to: str, callbacks: list[Any]) -> float:
        clock = Clock()
        args = TrainingArguments(
            output_dir=str(workdir / "hf"),
            max_steps=steps,
            per_device_train_batch_size=BATCH,
            logging_steps=1,
            save_strategy="no",
            report_to=report_to,
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=Tiny(), args=args, train_dataset=data, callbacks=[clock, *callbacks]
        )
        with quiet(), contextlib.redirect_stdout(io.StringIO()):
            trainer.train()
        for callback in callbacks:
            if isinstance(callback, RunlogCallback):
                callback.run.finish()
        return step_time(clock.stamps)

    def runlog() -> float:
        callback = RunlogCallback(fresh_run(workdir))
        with HOOKS.around(RunlogCallback, ("on_log", "on_step_end", "on_save")), WRITER.during():
            HOOKS.steps += steps
            return train("none", [callback])

    return {
        "none": lambda: train("none", []),
        "runlog": runlog,
        "tensorboard": lambda: train("tensorboard", []),
    }


# --- Keras ----------------------------------------------------------------------------


def keras_runs(steps: int, workdir: Path) -> dict[str, Callable[[], float]]:
    import keras
    import numpy as np

    from api.keras import RunlogCallback

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.stamps: Stamps = []

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self.stamps.append(process_time())

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    epochs = max(2, steps * BATCH // SAMPLES)

    def fit(callbacks: list[Any]) -> float:
        clock = Clock()
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        with quiet():
            model.fit(
                x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[clock, *callbacks]
            )
        for callback in callbacks:
            if isinstance(callback, RunlogCallback):
                callback.run.finish()
        return step_time(clock.stamps)

    def runlog() -> float:
        callback = RunlogCallback(
            fresh_run(workdir),
            monitor="loss",
            save_model=False,
            checkpoint_every=0,
        )
        with (
            HOOKS.around(RunlogCallback, ("on_epoch_end", "on_train_batch_end")),
            WRITER.during(),
        ):
            HOOKS.steps += steps
            return fit([callback])

    return {
        "none": lambda: fit([]),
        "runlog": runlog,
        "csv": lambda: fit([keras.callbacks.CSVLogger(str(workdir / "keras.csv"))]),
    }


FRAMEWORKS: dict[
    str, tuple[tuple[str, ...], Callable[[int, Path], dict[str, Callable[[], float]]]]
] = {
    "lightning": (("lightning", "torch"), lightning_runs),
    "transformers": (("transformers", "accelerate", "torch"), transformers_runs),
    "keras": (("keras", "torch"), keras_runs),
}
NOT_MEASURED = {
    ("transformers", "csv"): "n/a: Transformers has no CSV logger",
    ("keras", "tensorboard"): "skipped: Keras' TensorBoard callback needs TensorFlow",
}


def measure(name: str, steps: int, repeat: int, workdir: Path) -> dict[str, Any]:
    needs, build = FRAMEWORKS[name]
    if not installed(*needs):
        print(f"{name}: skipped, not installed (pip install torch==2.13.0 'runlog[{name}]')")
        return {"status": "skipped: not installed"}
    runs = build(steps, workdir / name)
    HOOKS.seconds, HOOKS.steps, WRITER.seconds = 0.0, 0, 0.0
    samples: dict[str, list[float]] = {config: [] for config in runs}
    runs["none"]()  # warm-up, not counted: the first fit pays for lazy imports and set-up
    for _ in range(repeat):
        for config, run in runs.items():
            samples[config].append(run())
    best = {config: min(values) for config, values in samples.items()}
    base = best["none"]
    figures: dict[str, Any] = {"steps": steps, "status": "measured"}
    print(f"{name} ({steps} steps a run, best of {repeat}):")
    for config in ("none", "noop", "runlog", "csv", "tensorboard"):
        if config == "noop" and config not in best:
            continue
        if config not in best:
            figures[config] = NOT_MEASURED.get((name, config), "not measured")
            print(f"  {config:<12} {figures[config]}")
            continue
        overhead = best[config] / base - 1
        figures[config] = {
            "step_us": round(best[config] * 1e6, 1),
            "median_step_us": round(statistics.median(samples[config]) * 1e6, 1),
            "overhead": round(overhead, 4),
        }
        print(
            f"  {config:<12} {best[config] * 1e6:8.1f} us/step  overhead {overhead * 100:+6.2f} %"
        )
    hook_us = HOOKS.seconds / max(HOOKS.steps, 1) * 1e6
    writer_us = WRITER.seconds / max(HOOKS.steps, 1) * 1e6
    reference = best.get("noop", base) * 1e6
    own = (hook_us + writer_us) / reference
    figures["runlog_hooks_us_per_step"] = round(hook_us, 2)
    figures["runlog_writer_us_per_step"] = round(writer_us, 2)
    figures["runlog_own_share"] = round(own, 4)
    print(
        f"  runlog's own CPU: hooks {hook_us:.1f} us/step on the training thread + writer "
        f"thread {writer_us:.1f} us/step = {own * 100:.2f} % of the "
        f"{'no-op-logger' if 'noop' in best else 'unlogged'} step"
    )
    if "noop" in best:
        figures["runlog_vs_noop"] = round(best["runlog"] / best["noop"] - 1, 4)
        print(
            f"  runlog against a logger that keeps nothing: {figures['runlog_vs_noop'] * 100:+.2f} %"
        )
    tensorboard = best.get("tensorboard")
    figures["under_5_percent"] = own < 0.05
    figures["below_tensorboard"] = None if tensorboard is None else best["runlog"] < tensorboard
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="steps per run x 25")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--only", choices=sorted(FRAMEWORKS), action="append")
    args = parser.parse_args()
    steps = max(WARM + 20, args.events // 25)
    repeat = args.repeat or (5 if args.events > 20_000 else 1)
    results: dict[str, Any] = {"steps_per_run": steps, "repeat": repeat, "clock": "process_time"}
    if installed("torch"):
        import torch

        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="runlog-bench-frameworks-") as tmp:
        for name in args.only or list(FRAMEWORKS):
            results[name] = measure(name, steps, repeat, Path(tmp))
    print(json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
