"""A tiny Hugging Face Trainer script for the kill-and-resume tests.

usage: python _hf_trainer.py STORE RUN_ID MAX_STEPS

Prints "step N" after every optimizer step (N = global step).
"""

from __future__ import annotations

import sys
import warnings

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from api.huggingface import RunlogCallback

warnings.filterwarnings("ignore")


class Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )

    def forward(self, x, labels=None):
        out = self.net(x)
        loss = torch.nn.functional.mse_loss(out, labels) if labels is not None else None
        return {"loss": loss, "logits": out}


class Points(torch.utils.data.Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 8, generator=generator)
        self.y = self.x @ torch.randn(8, 1, generator=generator) + 0.1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class Progress(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        print("step", state.global_step, flush=True)


def main(store: str, run_id: str, max_steps: int) -> None:
    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir="out",
        max_steps=max_steps,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="steps",
        save_steps=40,
        report_to="none",
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callback = RunlogCallback(project="p", id=run_id, resume="allow", store=store)
    trainer = Trainer(
        model=Regression(), args=args, train_dataset=Points(), callbacks=[callback, Progress()]
    )
    checkpoint = callback.checkpoint_path("restored")
    print("started", checkpoint is not None, flush=True)
    trainer.train(resume_from_checkpoint=checkpoint)
    callback.run.finish()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
