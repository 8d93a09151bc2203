"""A deterministic training loop for the preemption tests: pure Python arithmetic, so two
runs that compute the same steps log exactly the same values.

usage: python _boundary_trainer.py API STORE RUN_ID STEPS EVERY [GRACE]

API is "sync" (api.sync, no with block) or "async". The loop restores its checkpoint
(the weight and the step to continue from) from the run, recomputes from there, logs
every step with step= (rows the log already holds are dropped, identical), saves a
checkpoint every EVERY steps, and installs handle_preemption with a checkpoint callback.
Between the update and the log of a step it "does the rest of the step" (a short sleep),
where a signal often lands. Mode "stall" (STEPS = 0): log one step, then wait for a
signal without logging again, to exercise the grace period.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import warnings
from pathlib import Path

import api
from api import sync
from eventstore import InvalidArgument

warnings.simplefilter("ignore", api.StepDroppedWarning)  # re-logged steps are expected


def target(step: int) -> float:
    return math.sin(step * 0.1)


def update(w: float, step: int) -> float:
    return w - 0.1 * (w - target(step))


def metrics(w: float, step: int) -> dict[str, float]:
    return {"loss": (w - target(step)) ** 2, "w": w}


def reference(steps: int) -> dict[int, dict[str, float]]:
    """The history of an uninterrupted run."""
    w, rows = 0.0, {}
    for step in range(steps):
        w = update(w, step)
        rows[step] = metrics(w, step)
    return rows


def main_sync(store: str, run_id: str, steps: int, every: int, grace: float) -> None:
    run = sync.init(project="p", id=run_id, resume="allow", store=store)
    ckpt = Path(store).with_name(f"{run_id}-{run.incarnation}.json")
    w, start = 0.0, 0
    try:
        state = json.loads(run.restore("ckpt.json", ckpt).read_text())
        w, start = state["w"], state["step"]
    except InvalidArgument:
        pass  # no checkpoint yet: from the beginning
    state = {"w": w, "next": start}

    def checkpoint() -> None:
        # The loop's own counter: it equals run.step, except while re-logging steps the
        # log already holds (after a SIGKILL), which are dropped.
        ckpt.write_text(json.dumps({"w": state["w"], "step": state["next"]}))
        run.save(ckpt, "ckpt.json")

    sync.handle_preemption(run, checkpoint=checkpoint, grace=grace)
    print("started", run.incarnation, start, run.step, flush=True)
    if steps == 0:  # stall
        run.log({"loss": 0.0})
        time.sleep(3600)
    for step in range(start, steps):
        state["w"] = update(state["w"], step)
        time.sleep(0.004)  # the rest of the step
        state["next"] = step + 1
        run.log(metrics(state["w"], step), step=step)
        if (step + 1) % every == 0:
            checkpoint()
    run.finish()


async def main_async(store: str, run_id: str, steps: int, every: int, grace: float) -> None:
    run = await api.init(project="p", id=run_id, resume="allow", store=store)
    ckpt = Path(store).with_name(f"{run_id}-{run.incarnation}.json")
    w, start = 0.0, 0
    try:
        state = json.loads((await run.restore("ckpt.json", ckpt)).read_text())
        w, start = state["w"], state["step"]
    except InvalidArgument:
        pass
    state = {"w": w, "next": start}

    async def checkpoint() -> None:
        ckpt.write_text(json.dumps({"w": state["w"], "step": state["next"]}))
        await run.save(ckpt, "ckpt.json")

    api.handle_preemption(run, checkpoint=checkpoint, grace=grace)
    print("started", run.incarnation, start, run.step, flush=True)
    if steps == 0:
        await run.log({"loss": 0.0})
        await asyncio.sleep(3600)  # a loop that never logs again
    for step in range(start, steps):
        state["w"] = update(state["w"], step)
        await asyncio.sleep(0.004)
        state["next"] = step + 1
        await run.log(metrics(state["w"], step), step=step)
        if (step + 1) % every == 0:
            await checkpoint()
    await run.finish()


if __name__ == "__main__":
    kind, store, run_id, steps, every = sys.argv[1:6]
    grace = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    if kind == "sync":
        main_sync(store, run_id, int(steps), int(every), grace)
    else:
        asyncio.run(main_async(store, run_id, int(steps), int(every), grace))
