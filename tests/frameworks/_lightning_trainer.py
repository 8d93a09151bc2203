"""A tiny PyTorch Lightning training script for the kill-and-resume tests.

usage: python _lightning_trainer.py STORE RUN_ID MAX_STEPS

Prints "started STEP" and "step N" after every training step (N = global step).
"""

from __future__ import annotations

import sys
import warnings

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from api.lightning import RunlogLogger

warnings.filterwarnings("ignore")  # Lightning's advice about workers and logging intervals


class Regression(pl.LightningModule):
    def __init__(self, lr: float = 0.01, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        self.log("weight", self.net[0].weight.sum())
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ResumableLoader(DataLoader):
    """Lightning resumes inside an epoch only with a loader that has a state: this one
    counts the batches it served in the current epoch and skips them after a restore."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.served = 0
        self.skip = 0

    def __iter__(self):
        skip, self.skip = self.skip, 0
        self.served = skip
        for index, batch in enumerate(super().__iter__()):
            if index >= skip:
                self.served += 1
                yield batch

    def state_dict(self):
        return {"served": self.served}

    def load_state_dict(self, state):
        self.skip = state["served"]


class Progress(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        print("step", trainer.global_step, flush=True)


def main(store: str, run_id: str, max_steps: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1
    loader = ResumableLoader(TensorDataset(x, y), batch_size=8, shuffle=False)
    model = Regression()
    logger = RunlogLogger(project="p", id=run_id, resume="allow", store=store)
    checkpoints = pl.callbacks.ModelCheckpoint(every_n_train_steps=40, save_top_k=-1)
    trainer = pl.Trainer(
        max_steps=max_steps,
        logger=logger,
        callbacks=[logger.preemption(), checkpoints, Progress()],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        accelerator="cpu",
        default_root_dir=".",
    )
    ckpt_path = logger.checkpoint_path()
    print("started", ckpt_path is not None, flush=True)
    trainer.fit(model, loader, ckpt_path=ckpt_path)
    logger.run.finish()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
