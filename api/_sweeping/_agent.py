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
from typing import Any

import anyio
from anyio.abc import Process

from eventstore import AgentHeartbeat, AgentStopped, EventStore, RunKilled, run_stream, sweep_stream
from projections import Projector, RunStatus, SweepStatus, open_projector

from .._errors import ConfigurationError, SweepNotFound
from .._library._stores import StoreArg, opened_store
from ._command import build_command, check_command
from ._hyperband import HyperbandController
from ._sweep_path import resolve_sweep_id
from ._sweeps import (
    Work,
    claim,
    reap,
    register_agent,
    settle_sweep,
)

__all__ = ["FORWARDED", "agent", "kill_delay", "run_agent_command"]

log = logging.getLogger("runlog")
_HEARTBEAT_S = 30.0


class _Agent:
    """The loop both kinds of agent share: claim, hand out, poll, reap, control."""

    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        sweep_id: str,
        count: int | None,
        poll_interval: float,
        reap_interval: float,
        timeout_s: float,
    ) -> None:
        self.store = store
        self.projector = projector
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
        self._last_control = 0.0
        self._last_beat = 0.0
        self._beat_runs: list[str] | None = None
        self.stopping = False
        self.silent = False  # after a shutdown signal: no more heartbeats (§9.3)
        self.controller = HyperbandController(store, sweep_id)

    async def work(self) -> AsyncGenerator[Work, None]:
        """Claimed runs until ``count`` is reached or the sweep has nothing more."""
        self.agent_id = await register_agent(self.sweep_id, store=self.store)
        try:
            while not self.stopping and (self.count is None or self.done < self.count):
                await self.maybe_reap()
                await self.maybe_control()
                await self.heartbeat([])
                item = await claim(
                    self.sweep_id, self.agent_id, store=self.store, lease_s=self.timeout_s
                )
                if item is None:
                    if await self.finished():
                        return
                    await anyio.sleep(self.poll_interval)  # paused, or runs still pending
                    continue
                await self.heartbeat([item.run_id])
                yield item
                self.done += 1
        finally:
            with anyio.CancelScope(shield=True):
                await self.store.append(
                    sweep_stream(self.sweep_id),
                    [AgentStopped(agent_id=self.agent_id, reason=f"{self.done} runs")],
                )
                # Leaving with count reached, this agent may be the last one that would
                # have asked for work: finish an exhausted sweep now instead.
                await settle_sweep(self.sweep_id, store=self.store)

    async def status(self) -> SweepStatus | None:
        sweep = await self.projector.sweep(self.sweep_id)
        return sweep.status if sweep is not None else None

    async def config(self) -> dict[str, Any]:
        """The sweep's config as created.

        Raises:
            SweepNotFound: no such sweep.
        """
        sweep = await self.projector.sweep(self.sweep_id)
        if sweep is None:
            raise SweepNotFound(f"there is no sweep {self.sweep_id!r} in {self.store.url}")
        return dict(sweep.config)

    async def finished(self) -> bool:
        """True when this agent should leave: the sweep is over (or cancelled)."""
        sweep = await self.projector.sweep(self.sweep_id)
        status = sweep.status if sweep is not None else None
        if status in (SweepStatus.CANCELED, SweepStatus.FAILED, SweepStatus.CRASHED, None):
            return True
        if status is SweepStatus.FINISHED:
            return sweep is None or not sweep.queue
        return False

    async def heartbeat(self, run_ids: list[str]) -> None:
        """Record that this agent is alive and which runs it runs (contract §9.2).

        Recorded when the set of live runs changes and otherwise every
        ``_HEARTBEAT_S``: commands are read from the log at every poll anyway, so a
        beat every 5 s as W&B sends would only grow the sweep stream.
        """
        if self.silent or not self.agent_id:
            return
        now = time.monotonic()
        if run_ids == self._beat_runs and now - self._last_beat < _HEARTBEAT_S:
            return
        self._beat_runs, self._last_beat = list(run_ids), now
        await self.store.append(
            sweep_stream(self.sweep_id), [AgentHeartbeat(agent_id=self.agent_id, run_ids=run_ids)]
        )

    async def maybe_reap(self) -> None:
        if time.monotonic() - self._last_reap >= self.reap_interval:
            self._last_reap = time.monotonic()
            for decision in await reap(store=self.store, timeout_s=self.timeout_s):
                log.info("runlog watchdog: %s", decision)

    async def maybe_control(self) -> None:
        """Evaluate the sweep's early termination rule (at most once a second)."""
        if time.monotonic() - self._last_control < min(self.poll_interval, 1.0):
            return
        self._last_control = time.monotonic()
        for decision in await self.controller.step(self.projector):
            log.info("runlog agent: stopping run %s: %s", decision.run_id, decision.reason)

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


def kill_delay() -> float:
    """Seconds between a stop's SIGTERM and its SIGKILL: ``RUNLOG_AGENT_KILL_DELAY``,
    else ``WANDB_AGENT_KILL_DELAY``, else 30.

    Raises:
        ConfigurationError: the variable is not a number >= 0.
    """
    for name in ("RUNLOG_AGENT_KILL_DELAY", "WANDB_AGENT_KILL_DELAY"):
        value = os.environ.get(name)
        if value:
            try:
                delay = float(value)
            except ValueError:
                delay = -1.0
            if not delay >= 0:
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
            return delay
    return 30.0


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
    ``sweep_id`` may be written ``entity/project/ID`` as W&B prints it.

    Raises:
        SweepNotFound: no such sweep (or it belongs to another project).
    """
    async with opened_store(store) as opened, open_projector(opened) as projector:
        sweep_id = await resolve_sweep_id(sweep_id, projector, opened.url)
        loop = _Agent(opened, projector, sweep_id, count, poll_interval, reap_interval, timeout_s)
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
    command: Sequence[str] = (),
    *,
    count: int | None = None,
    store: StoreArg = None,
    forward_signals: bool = False,
    term_timeout: float | None = None,
    poll_interval: float = 5.0,
    reap_interval: float = 60.0,
    timeout_s: float = 300.0,
) -> int:
    """Run ``command`` as a child process for each run of the sweep; return how many ran.

    Without ``command`` the sweep config's ``program``/``command`` is run, with its
    macros expanded for each run (``${env} ${interpreter} ${program} ${args}`` by
    default, as W&B's agent does; see ``_command.py``); a given command wins.

    Without ``forward_signals`` children run in their own session and do not see the
    agent's signals. With it, every signal in ``FORWARDED`` is passed on and the agent
    stops asking for work; SIGTERM, SIGHUP, SIGQUIT and SIGINT also count towards the
    shutdown cascade of contract §9.3 (the first is passed on and the agent waits, the
    second SIGTERMs the child, the third SIGKILLs it); ``term_timeout`` SIGKILLs a
    child still alive that many seconds after a shutdown signal.

    A stop for the running run (Hyperband, ``runlog sweep stop-run``) SIGTERMs the
    child, and SIGKILLs it after ``kill_delay()``; a cancelled sweep SIGKILLs it at
    once. A child killed that way leaves no exit, so the agent records ``RunKilled``.
    An agent that is itself killed leaves its child's run to the watchdog.

    Raises:
        SweepNotFound: no such sweep (or it belongs to another project).
        SweepConfigError: no ``command`` and the config has nothing to run.
        ConfigurationError: ``term_timeout`` without ``forward_signals``, or a kill
            delay that is not a number.
    """
    if term_timeout is not None and not forward_signals:
        raise ConfigurationError(
            "--term-timeout bounds the wait after a forwarded signal; add --forward-signals"
        )
    if term_timeout is not None and not term_timeout >= 0:
        raise ConfigurationError(f"--term-timeout must be seconds >= 0, got {term_timeout}")
    delay = kill_delay()
    async with opened_store(store) as opened, open_projector(opened) as projector:
        sweep_id = await resolve_sweep_id(sweep_id, projector, opened.url)
        loop = _Agent(opened, projector, sweep_id, count, poll_interval, reap_interval, timeout_s)
        config: dict[str, Any] | None = None
        if not command:
            config = await loop.config()
            check_command(config, to_run=True)  # refused before any run is claimed
        shutdown = _Shutdown(term_timeout)
        async with anyio.create_task_group() as signals:
            if forward_signals:
                await signals.start(shutdown.receive, loop)
            with tempfile.TemporaryDirectory(prefix="runlog-agent-") as params_dir:
                work = loop.work()
                async with contextlib.aclosing(work):
                    async for item in work:
                        environment = {
                            **os.environ,
                            **_environment(item, Path(params_dir), _store_url(opened)),
                        }
                        argv = (
                            list(command)
                            if config is None
                            else build_command(
                                config,
                                item.params,
                                json_file=Path(params_dir) / f"{item.run_id}.args.json",
                            )
                        )
                        log.info("runlog agent: run %s: %s", item.run_id, " ".join(argv))
                        async with await anyio.open_process(
                            argv,
                            env=environment,
                            stdin=None,
                            stdout=None,
                            stderr=None,
                            start_new_session=not forward_signals,
                        ) as child:
                            code, stopped = await _supervise(loop, item, child, shutdown, delay)
                        log.info("runlog agent: run %s exited with %s", item.run_id, code)
                        await loop.heartbeat([])
                        # A stopped run did not fail: it must not trip the failure guards.
                        if loop.record_exit(code != 0 and not stopped):
                            break
            signals.cancel_scope.cancel()
        return loop.done


FORWARDED: tuple[signal.Signals, ...] = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
"""The signals ``--forward-signals`` passes on to the child."""
_CASCADE = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT)


class _Shutdown:
    """The agent's signal handling with ``--forward-signals`` (contract §9.3)."""

    def __init__(self, term_timeout: float | None) -> None:
        self.term_timeout = term_timeout
        self.count = 0
        self.child: Process | None = None
        self.deadline: float | None = None  # when a waiting child gets SIGKILL

    async def receive(
        self, loop: _Agent, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(*FORWARDED) as signals:
            task_status.started()
            async for signum in signals:
                loop.stopping = True  # an agent shutting down never asks for new work
                if signum in _CASCADE:
                    self.count += 1
                    loop.silent = True
                    if self.term_timeout is not None:
                        self.deadline = time.monotonic() + self.term_timeout
                self.deliver(signum)

    def deliver(self, signum: signal.Signals) -> None:
        child = self.child
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if signum not in _CASCADE or self.count <= 1:
                child.send_signal(signum)
            elif self.count == 2:
                child.terminate()
            else:
                child.kill()

    def overdue(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


async def _supervise(
    loop: _Agent, item: Work, child: Process, shutdown: _Shutdown, delay: float
) -> tuple[int, bool]:
    """Wait for the child, acting on the log's commands for its run; return its exit
    code and whether it was stopped (stop request or cancel)."""
    shutdown.child = child
    stopped = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal stopped
            term_sent: float | None = None
            while True:
                await anyio.sleep(min(loop.poll_interval, 1.0))
                if shutdown.overdue():
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()  # --term-timeout: waited long enough
                if await loop.status() is SweepStatus.CANCELED:
                    stopped = True
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()  # §9.1: cancel kills at once, no handlers run
                    return
                run = await loop.projector.run(item.project, item.run_id)
                if run is not None and run.stop_requested and term_sent is None:
                    stopped = True
                    term_sent = time.monotonic()
                    log.info("runlog agent: run %s: %s; SIGTERM", item.run_id, run.reason)
                    with contextlib.suppress(ProcessLookupError):
                        child.terminate()
                if term_sent is not None and time.monotonic() - term_sent >= delay:
                    log.info(
                        "runlog agent: run %s still alive after %s s; SIGKILL", item.run_id, delay
                    )
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                await loop.maybe_control()
                await loop.heartbeat([item.run_id])

        tg.start_soon(watch)
        code = await child.wait()
        tg.cancel_scope.cancel()
    shutdown.child = None
    if stopped:
        await _record_killed(loop, item)
    return code, stopped


async def _record_killed(loop: _Agent, item: Work) -> None:
    """A child killed on a stop leaves no exit: say the run was killed, so it ends
    KILLED now instead of when the watchdog notices (and is never requeued)."""
    run = await loop.projector.run(item.project, item.run_id)
    if run is None or run.status not in (RunStatus.RUNNING, RunStatus.PREEMPTING):
        return
    await loop.store.append(
        run_stream(item.project, item.run_id),
        [
            RunKilled(
                reason=run.reason or "stopped", incarnation=run.incarnation, sweep_id=item.sweep_id
            )
        ],
    )
