"""A training script that survives preemption: run it, SIGTERM it, run it again.

    python examples/train.py --id my-run --steps 300
    runlog agent SWEEP_ID -- python examples/train.py      (in a sweep: the agent's id)

Every start with the same id continues the same run: the step comes from the log (the
last logged step + 1), the weights from the checkpoint the run saved. On SIGTERM or
SIGUSR1 the run is marked preempting, checkpointed, and the process exits with
128 + signum, so the run ends PREEMPTED (a sweep would requeue it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
from pathlib import Path

import anyio

import api


def make_data(n: int = 256, seed: int = 0) -> list[tuple[float, float]]:
    """Noisy points on y = 3x - 1."""
    rng = random.Random(seed)
    return [(x, 3 * x - 1 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(n))]


def sgd_step(weights: dict[str, float], batch: list[tuple[float, float]], lr: float) -> float:
    """One step of least squares on ``batch``; returns the loss before the step."""
    grad_w = grad_b = loss = 0.0
    for x, y in batch:
        error = weights["w"] * x + weights["b"] - y
        loss += error * error
        grad_w += 2 * error * x
        grad_b += 2 * error
    n = len(batch)
    weights["w"] -= lr * grad_w / n
    weights["b"] -= lr * grad_b / n
    return loss / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", default=None, help="the run id; the same id continues the run")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument(
        "--store", default=None, help="store path or URL (default: runlog/runlog.db)"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds of pretend work per step")
    args = parser.parse_args()

    data = make_data()
    async with api.init(
        project="demo", id=args.id, resume="allow", config={"lr": args.lr}, store=args.store
    ) as run:
        checkpoint_file = Path(tempfile.gettempdir()) / f"runlog-checkpoint-{run.id}.json"
        args.lr = run.config["lr"]  # in a sweep, the agent's parameter
        weights = {"w": 0.0, "b": 0.0}
        if run.resumed:
            # back where it was saved (a temporary directory), not into the current one
            restored = await run.restore(checkpoint_file.name, checkpoint_file)
            weights = json.loads(await anyio.Path(restored).read_text())

        async def checkpoint() -> None:
            await anyio.Path(checkpoint_file).write_text(json.dumps(weights))
            await run.save(checkpoint_file)

        api.handle_preemption(run, checkpoint=checkpoint)
        print(
            f"{'resumed' if run.resumed else 'started'} run {run.id} at step {run.step}", flush=True
        )
        rng = random.Random(run.step)
        for step in range(run.step, args.steps):
            loss = sgd_step(weights, rng.sample(data, 32), args.lr)
            await run.log({"loss": loss, "w": weights["w"], "b": weights["b"]})
            print(f"step {step} loss {loss:.4f}", flush=True)
            if args.delay:
                await asyncio.sleep(args.delay)
        await checkpoint()
        print(
            f"finished at step {run.step - 1}: w={weights['w']:.3f} b={weights['b']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
