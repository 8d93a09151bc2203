"""Sweep agents: take work from a sweep (its queue first) and run it, in-process or as
child processes (contract §9.2 to §9.4)."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path

import anyio
from anyio.abc import Process

from eventstore import AgentStopped, EventStore
from projections import SweepStatus, open_projector

from ._sweeps import StoreArg, Work, _opened, claim, reap, register_agent, settle_sweep

__all__ = ["agent", "run_agent_command"]

log = logging.getLogger("runlog")
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class _Agent:
    """The loop both kinds of agent share: claim, hand out, poll, reap."""

    def __init__(
        self,
        store: EventStore,
        sweep_id: str,
        count: int | None,
        poll_interval: float,
        reap_interval: float,
        timeout_s: float,
    ) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.count = count
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval
        self.timeout_s = timeout_s
        self.agent_id = ""
        self.done = 0
        self.failures_in_a_row = 0
        self.early_failures: list[float] = []
        self.started = time.monotonic()
        self._last_reap = 0.0
        self.stopping = False

    async def work(self) -> AsyncGenerator[Work, None]:
        """Claimed runs until ``count`` is reached or the sweep has nothing more."""
        self.agent_id = await register_agent(self.sweep_id, store=self.store)
        try:
            while not self.stopping and (self.count is None or self.done < self.count):
                await self.maybe_reap()
                item = await claim(
                    self.sweep_id, self.agent_id, store=self.store, lease_s=self.timeout_s
                )
                if item is None:
                    if await self.finished():
                        return
                    await anyio.sleep(self.poll_interval)  # paused, or runs still pending
                    continue
                yield item
                self.done += 1
        finally:
            with anyio.CancelScope(shield=True):
                await self.store.append(
                    f"sweep:{self.sweep_id}",
                    [AgentStopped(agent_id=self.agent_id, reason=f"{self.done} runs")],
                )
                # Leaving with count reached, this agent may be the last one that would
                # have asked for work: finish an exhausted sweep now instead.
                await settle_sweep(self.sweep_id, store=self.store)

    async def status(self) -> SweepStatus | None:
        async with open_projector(self.store) as projector:
            sweep = await projector.sweep(self.sweep_id)
        return sweep.status if sweep is not None else None

    async def finished(self) -> bool:
        """True when this agent should leave: the sweep is over (or cancelled)."""
        status = await self.status()
        if status in (SweepStatus.CANCELED, SweepStatus.FAILED, SweepStatus.CRASHED, None):
            return True
        if status is SweepStatus.FINISHED:
            async with open_projector(self.store) as projector:
                sweep = await projector.sweep(self.sweep_id)
            return sweep is None or not sweep.queue
        return False

    async def maybe_reap(self) -> None:
        if time.monotonic() - self._last_reap >= self.reap_interval:
            self._last_reap = time.monotonic()
            for decision in await reap(store=self.store, timeout_s=self.timeout_s):
                log.info("runlog watchdog: %s", decision)

    def record_exit(self, failed: bool) -> bool:
        """Apply the failure guards (§9.4); True when the agent must quit."""
        if not failed:
            self.failures_in_a_row = 0
            return False
        self.failures_in_a_row += 1
        now = time.monotonic()
        if now - self.started <= 60:
            self.early_failures.append(now)
        flapping = (
            os.environ.get(
                "RUNLOG_AGENT_DISABLE_FLAPPING", os.environ.get("WANDB_AGENT_DISABLE_FLAPPING", "")
            ).lower()
            != "true"
        )
        limit = int(
            os.environ.get(
                "RUNLOG_AGENT_MAX_INITIAL_FAILURES",
                os.environ.get("WANDB_AGENT_MAX_INITIAL_FAILURES", "5"),
            )
        )
        if flapping and len(self.early_failures) >= 3:
            log.error("runlog agent: 3 runs failed within its first 60 s (flapping); quitting")
            return True
        if self.done < limit and self.failures_in_a_row >= limit:
            log.error("runlog agent: the first %d runs failed in a row; quitting", limit)
            return True
        return False


def _environment(item: Work, params_dir: Path, store_url: str) -> dict[str, str]:
    params = params_dir / f"{item.run_id}.json"
    params.write_text(json.dumps(item.params))
    return {
        "RUNLOG_SWEEP_ID": item.sweep_id,
        "RUNLOG_RUN_ID": item.run_id,
        "RUNLOG_PROJECT": item.project,
        "RUNLOG_RESUME": "allow",
        "RUNLOG_SWEEP_PARAM_PATH": str(params),
        "RUNLOG_STORE": store_url,
    }


def _store_url(store: EventStore) -> str:
    url = store.url
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else url


async def agent(
    sweep_id: str,
    function: Callable[[], Awaitable[None] | None],
    *,
    count: int | None = None,
    store: StoreArg = None,
    poll_interval: float = 5.0,
    reap_interval: float = 60.0,
    timeout_s: float = 300.0,
) -> int:
    """Run ``function`` for runs of the sweep, in this process; return how many ran.

    Before each call the environment names the run (``RUNLOG_RUN_ID``, the sweep id,
    ``RUNLOG_RESUME=allow`` and the parameter file), so ``api.init()`` inside
    ``function`` starts or resumes it with the parameters in ``run.config``. A requeued
    run comes first and resumes at its last step. The agent leaves when ``count`` runs
    are done, or the sweep is finished (and its queue drained) or cancelled.
    """
    async with _opened(store) as opened:
        loop = _Agent(opened, sweep_id, count, poll_interval, reap_interval, timeout_s)
        with tempfile.TemporaryDirectory(prefix="runlog-agent-") as params_dir:
            work = loop.work()
            async with contextlib.aclosing(work):  # leaves while the store is still open
                async for item in work:
                    failed = await _call_in_run_environment(
                        function, _environment(item, Path(params_dir), _store_url(opened))
                    )
                    if failed:
                        log.error("runlog agent: run %s raised", item.run_id)
                    if loop.record_exit(failed):
                        break
        return loop.done


async def _call_in_run_environment(
    function: Callable[[], Awaitable[None] | None], variables: dict[str, str]
) -> bool:
    """Call ``function`` with ``variables`` set in the environment; True if it raised."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        result = function()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("runlog agent: the run function raised")
        return True
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return False


async def run_agent_command(
    sweep_id: str,
    command: Sequence[str],
    *,
    count: int | None = None,
    store: StoreArg = None,
    forward_signals: bool = False,
    poll_interval: float = 5.0,
    reap_interval: float = 60.0,
    timeout_s: float = 300.0,
) -> int:
    """Run ``command`` as a child process for each run of the sweep; return how many ran.

    Without ``forward_signals`` children run in their own session and do not see the
    agent's signals; with it, SIGTERM/SIGINT/SIGUSR1 are passed on. A cancelled sweep
    kills the running child with SIGKILL at once (its run ends KILLED). An agent that
    is itself killed leaves its child's run to the watchdog.
    """
    if not command:
        raise ValueError(
            "give the command to run after --, e.g. runlog agent SWEEP -- python train.py"
        )
    async with _opened(store) as opened:
        loop = _Agent(opened, sweep_id, count, poll_interval, reap_interval, timeout_s)
        with tempfile.TemporaryDirectory(prefix="runlog-agent-") as params_dir:
            async for item in loop.work():
                environment = {
                    **os.environ,
                    **_environment(item, Path(params_dir), _store_url(opened)),
                }
                async with await anyio.open_process(
                    list(command),
                    env=environment,
                    stdin=None,
                    stdout=None,
                    stderr=None,
                    start_new_session=not forward_signals,
                ) as child:
                    code = await _supervise(loop, child, forward_signals)
                    log.info("runlog agent: run %s exited with %s", item.run_id, code)
                    if loop.record_exit(code != 0):
                        break
        return loop.done


async def _supervise(loop: _Agent, child: Process, forward_signals: bool) -> int:
    """Wait for the child; kill it if the sweep is cancelled; pass signals on."""
    received: list[int] = []
    async with anyio.create_task_group() as tg:

        async def watch_sweep() -> None:
            while True:
                await anyio.sleep(min(loop.poll_interval, 1.0))
                if await loop.status() is SweepStatus.CANCELED:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()  # §9.1: cancel kills at once, no handlers run
                    return

        async def relay() -> None:
            with anyio.open_signal_receiver(*_FORWARDED) as signals:
                async for signum in signals:
                    received.append(signum)
                    loop.stopping = True  # an agent shutting down never asks for new work
                    with contextlib.suppress(ProcessLookupError):
                        child.send_signal(signum)
                    if len(received) >= 3:
                        with contextlib.suppress(ProcessLookupError):
                            child.kill()

        tg.start_soon(watch_sweep)
        if forward_signals:
            tg.start_soon(relay)
        code = await child.wait()
        tg.cancel_scope.cancel()
    return code
