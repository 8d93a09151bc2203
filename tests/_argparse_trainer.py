"""A plain synchronous training script that reads its hyperparameters from flags, the
way scripts written for ``wandb agent`` do (``program: train.py`` with ``${args}``).

usage: python _argparse_trainer.py --lr=0.1 --epochs=40 [--augment=True] [--layers=[64, 32]]

Prints one line ``argv <json>`` (the flags it was given) and ``run <id> <incarnation>
<step>``, then logs one step per epoch from the run's current step, so a requeued run
continues where its last incarnation stopped. SIGTERM preempts it (handle_preemption).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time

from api import sync


def flag(text: str) -> bool:
    """W&B writes booleans as Python does: True / False."""
    if text not in ("True", "False"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return text == "True"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--augment", type=flag, default=False)
    parser.add_argument("--layers", type=ast.literal_eval, default=[8])
    parser.add_argument("--pause", type=float, default=0.05)
    args = parser.parse_args()
    print("argv", json.dumps(sys.argv[1:]), flush=True)
    with sync.init(config=vars(args)) as run:
        print("run", run.id, run.incarnation, run.step, flush=True)
        sync.handle_preemption(run)
        for epoch in range(run.step, args.epochs):
            run.log({"loss": args.lr * (args.epochs - epoch) / sum(args.layers)})
            time.sleep(args.pause)


if __name__ == "__main__":
    main()
