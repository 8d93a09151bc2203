"""Sweeps as streams: create, control, claim work, and the heartbeat watchdog.

Every command reads the sweep's projected state, decides, and appends with the sweep
stream's version as the expected version; a concurrent writer makes the append fail
and the command decides again. That is what makes claims exactly-once with any number
of agents in any number of processes, and a grid never propose a combination twice.
"""

from __future__ import annotations

import functools
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import msgspec

from eventstore import (
    NO_STREAM,
    AgentStarted,
    ClaimLapsed,
    Event,
    EventStore,
    HeartbeatExpired,
    RunClaimed,
    RunKilled,
    RunScheduled,
    SweepCancelled,
    SweepCreated,
    SweepFinished,
    SweepPaused,
    SweepResumed,
    SweepStopped,
    WrongExpectedVersion,
    run_stream,
    sweep_stream,
)
from projections import Projector, RunStatus, SweepState, SweepStatus, open_projector

from .._errors import SweepError, SweepNotFound
from .._library._ids import generate_id
from .._library._settings import env
from .._library._stores import StoreArg, opened_store
from ._sweep_config import SweepConfig, load_sweep_config, parse_sweep_config, sweep_id_of

__all__ = [
    "SweepError",
    "SweepNotFound",
    "Work",
    "cancel_sweep",
    "claim",
    "create_sweep",
    "pause_sweep",
    "reap",
    "register_agent",
    "resume_sweep",
    "stop_sweep",
]

_T = TypeVar("_T")
_PATIENCE_S = 60.0  # how long a command keeps deciding again while others win the race
_ALIVE = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PREEMPTING)
_BAYES_WINDOW = 400  # the most recent runs of a bayes sweep its model learns from


class Work(msgspec.Struct, frozen=True):
    """A run an agent has claimed: start it (``requeue`` False) or resume it (True)."""

    sweep_id: str
    project: str
    run_id: str
    params: dict[str, Any]
    requeue: bool
    claim_position: int


async def _decide(
    store: EventStore,
    projector: Projector,
    stream: str,
    decide: Callable[[int], Awaitable[tuple[list[Event], _T]]],
) -> _T:
    """Run ``decide`` on fresh state and append its events expecting the stream's version;
    decide again if another writer got there first (with jittered backoff, so racing
    agents spread out instead of colliding again)."""
    deadline = time.monotonic() + _PATIENCE_S
    backoff = 0.001
    while time.monotonic() < deadline:
        await projector.catch_up()
        info = await store.stream_info(stream)
        if info is not None and info.last_position > projector.position:
            continue
        version = info.version if info is not None else -1
        events, result = await decide(version)
        if not events:
            return result
        try:
            await store.append(stream, events, version if version >= 0 else NO_STREAM)
        except WrongExpectedVersion:
            await anyio.sleep(backoff * random.random())
            backoff = min(backoff * 2, 0.1)
            continue
        return result
    raise SweepError(f"{stream} kept changing under this command for {_PATIENCE_S:.0f} s; retry")


# --- creating ---------------------------------------------------------------------------


async def create_sweep(
    config: Mapping[str, Any] | str | os.PathLike[str] | SweepConfig,
    *,
    project: str | None = None,
    store: StoreArg = None,
    seed: int | None = None,
    sweep_id: str | None = None,
) -> str:
    """Create a sweep from a config (a dict, a YAML file, or a ``SweepConfig``); return its id.

    Raises:
        SweepConfigError: the config is invalid (the message names the key).
        SweepError: a sweep with ``sweep_id`` already exists.
    """
    parsed = config if isinstance(config, SweepConfig) else load_sweep_config(config)
    chosen_project = project or parsed.raw.get("project") or env("PROJECT") or "uncategorized"
    chosen_id = sweep_id or generate_id()
    event = SweepCreated(
        sweep_id=chosen_id,
        project=str(chosen_project),
        method=parsed.method,
        config=parsed.raw,
        seed=seed if seed is not None else secrets.randbits(31),
        run_cap=parsed.run_cap,
    )
    async with opened_store(store) as opened:
        try:
            await opened.append(sweep_stream(chosen_id), [event], NO_STREAM)
        except WrongExpectedVersion:
            raise SweepError(f"sweep {chosen_id!r} already exists; choose another id") from None
    return chosen_id


# --- control ----------------------------------------------------------------------------


async def _control(
    sweep_id: str,
    store: StoreArg,
    decide: Callable[[SweepState, Projector], Awaitable[list[Event]]],
) -> SweepState:
    sweep_id = sweep_id_of(sweep_id)
    async with opened_store(store) as opened, open_projector(opened) as projector:

        async def attempt(version: int) -> tuple[list[Event], None]:
            sweep = await projector.sweep(sweep_id)
            if sweep is None or version < 0:
                raise SweepNotFound(f"there is no sweep {sweep_id!r} in {opened.url}")
            return await decide(sweep, projector), None

        await _decide(opened, projector, sweep_stream(sweep_id), attempt)
        sweep = await projector.sweep(sweep_id)
        assert sweep is not None
        if sweep.status is SweepStatus.CANCELED:
            await _kill_live_runs(opened, projector, sweep)
        return sweep


async def pause_sweep(sweep_id: str, *, store: StoreArg = None) -> SweepState:
    """Stop handing out new runs until resumed; executing runs continue.

    Raises:
        SweepError: "Cannot pause <state> sweep." unless RUNNING or PAUSED.
    """

    async def decide(sweep: SweepState, projector: Projector) -> list[Event]:
        if sweep.status is SweepStatus.PAUSED:
            return []
        if sweep.status is not SweepStatus.RUNNING:
            raise SweepError(f"Cannot pause {sweep.status} sweep.")
        return [SweepPaused()]

    return await _control(sweep_id, store, decide)


async def resume_sweep(sweep_id: str, *, store: StoreArg = None) -> SweepState:
    """Hand out runs again (from PAUSED), or reopen a FINISHED sweep.

    Raises:
        SweepError: "Sweep is <state> and cannot be resumed." for CANCELED, FAILED,
            CRASHED (and PENDING: start an agent instead).
    """

    async def decide(sweep: SweepState, projector: Projector) -> list[Event]:
        if sweep.status is SweepStatus.RUNNING:
            return []
        if sweep.status not in (SweepStatus.PAUSED, SweepStatus.FINISHED):
            raise SweepError(f"Sweep is {sweep.status} and cannot be resumed.")
        if sweep.status is SweepStatus.PAUSED:
            return [SweepResumed()]
        # Reopening re-evaluates the search (§9.1): with nothing left to hand out and
        # nothing running, the sweep finishes again in the same append.
        reopened = msgspec.structs.replace(sweep, status=SweepStatus.RUNNING)
        return [SweepResumed(), *await _settled(projector, reopened)]

    return await _control(sweep_id, store, decide)


async def stop_sweep(sweep_id: str, *, store: StoreArg = None) -> SweepState:
    """Finish the sweep: no new runs; executing runs continue to completion.

    Raises:
        SweepError: "Sweep already <state>." from a terminal state.
    """

    async def decide(sweep: SweepState, projector: Projector) -> list[Event]:
        if sweep.status.terminal:
            raise SweepError(f"Sweep already {sweep.status}.")
        return [SweepStopped()]

    return await _control(sweep_id, store, decide)


async def cancel_sweep(sweep_id: str, *, store: StoreArg = None) -> SweepState:
    """Cancel: no new runs, every live run gets ``RunKilled``, queued runs end killed.

    Agents see the CANCELED state and kill their children at once.

    Raises:
        SweepError: "Sweep already <state>." from a terminal state.
    """

    async def decide(sweep: SweepState, projector: Projector) -> list[Event]:
        if sweep.status.terminal:
            raise SweepError(f"Sweep already {sweep.status}.")
        return [SweepCancelled()]

    return await _control(sweep_id, store, decide)


async def settle_sweep(sweep_id: str, *, store: StoreArg = None) -> SweepState | None:
    """Finish a RUNNING sweep now if it has nothing left to hand out and no live run
    (§9.1's automatic FINISHED), as a claim would; agents call it when they leave, so a
    sweep whose last agent quit with ``count`` does not stay RUNNING."""
    async with opened_store(store) as opened, open_projector(opened) as projector:

        async def attempt(version: int) -> tuple[list[Event], None]:
            sweep = await projector.sweep(sweep_id)
            if sweep is None or version < 0 or sweep.status is not SweepStatus.RUNNING:
                return [], None
            return await _settled(projector, sweep), None

        await _decide(opened, projector, sweep_stream(sweep_id), attempt)
        return await projector.sweep(sweep_id)


async def _settled(projector: Projector, sweep: SweepState) -> list[Event]:
    """``[SweepFinished]`` if the search of a RUNNING sweep would finish it now, else []."""
    events, _ = await _next_work(projector, sweep, "runlog-settle", 0.0)
    if len(events) == 1 and isinstance(events[0], SweepFinished):
        return events
    return []


async def _kill_live_runs(store: EventStore, projector: Projector, sweep: SweepState) -> None:
    for run in await projector.runs(sweep.project):
        if run.sweep_id == sweep.sweep_id and run.status in _ALIVE:
            await store.append(
                run_stream(run.project, run.run_id),
                [RunKilled(reason="sweep cancelled", sweep_id=sweep.sweep_id)],
            )


# --- agents -----------------------------------------------------------------------------


async def register_agent(
    sweep_id: str, *, store: StoreArg = None, agent_id: str | None = None
) -> str:
    """Register an agent with the sweep (a PENDING sweep becomes RUNNING); return its id.

    Raises:
        SweepNotFound: no such sweep.
    """
    chosen = agent_id or f"agent-{generate_id()}"
    sweep_id = sweep_id_of(sweep_id)
    async with opened_store(store) as opened:
        if await opened.stream_info(sweep_stream(sweep_id)) is None:
            raise SweepNotFound(f"there is no sweep {sweep_id!r} in {opened.url}")
        await opened.append(
            sweep_stream(sweep_id),
            [AgentStarted(agent_id=chosen, host=socket.gethostname(), pid=os.getpid())],
        )
    return chosen


# --- claiming work ----------------------------------------------------------------------


async def claim(
    sweep_id: str, agent_id: str, *, store: StoreArg = None, lease_s: float = 300.0
) -> Work | None:
    """Claim the next run for ``agent_id``: the oldest queued (preempted) run first, then a
    new suggestion that lapsed, then a new one from the search. None when there is no
    work now (paused, exhausted, run_cap reached, or cancelled).

    Exactly one agent wins each claim, however many race for it (contract §8.2).
    """
    sweep_id = sweep_id_of(sweep_id)
    async with opened_store(store) as opened, open_projector(opened) as projector:

        async def attempt(
            version: int,
        ) -> tuple[list[Event], tuple[str, dict[str, Any], bool] | None]:
            sweep = await projector.sweep(sweep_id)
            if sweep is None or version < 0:
                raise SweepNotFound(f"there is no sweep {sweep_id!r} in {opened.url}")
            return await _next_work(projector, sweep, agent_id, lease_s)

        decided = await _decide(opened, projector, sweep_stream(sweep_id), attempt)
        if decided is None:
            return None
        run_id, params, requeue = decided
        sweep = await projector.sweep(sweep_id)
        run = await projector.run(sweep.project, run_id) if sweep else None
        if sweep is None or run is None or run.claimed_by != agent_id or run.claim_position is None:
            return None  # pragma: no cover - the append succeeded, so the claim is ours
        return Work(sweep_id, sweep.project, run_id, params, requeue, run.claim_position)


async def _next_work(
    projector: Projector, sweep: SweepState, agent_id: str, lease_s: float
) -> tuple[list[Event], tuple[str, dict[str, Any], bool] | None]:
    # Everything here is read from the sweep's own state (plus single runs), so a
    # decision costs the same on the 10th claim as on the 10,000th.
    if sweep.status in (SweepStatus.RUNNING, SweepStatus.FINISHED) and sweep.queue:
        run_id = sweep.queue[0]  # contract §8.4: the queue before the search
        claimed = RunClaimed(run_id=run_id, agent_id=agent_id, requeue=True, lease_s=lease_s)
        return [claimed], (run_id, await _params(projector, sweep, run_id), True)
    if sweep.status is not SweepStatus.RUNNING:
        return [], None
    if sweep.reoffer:
        run_id = sweep.reoffer[0]
        claimed = RunClaimed(run_id=run_id, agent_id=agent_id, lease_s=lease_s)
        return [claimed], (run_id, await _params(projector, sweep, run_id), False)
    config = _stored_config(sweep.config)
    index = len(sweep.scheduled)
    # New suggestions claimed but not started yet count against run_cap (§9.1).
    outstanding = max(0, index - sweep.ever_running - len(sweep.reoffer))
    reason: str | None = None
    params: dict[str, Any] | None = None
    if config.run_cap is not None and sweep.ever_running + outstanding >= config.run_cap:
        reason = "run_cap"
    elif config.method == "grid":
        # Cells are proposed in order and each proposal is a conditional append, so
        # the next cell is always the one at the count of proposals so far.
        if index < config.grid_size():
            params = config.grid_cell(index)
        else:
            reason = "exhausted"
    elif config.method == "bayes":
        params = await _bayes_suggestion(projector, sweep, config, index)
    else:
        params = config.suggestion(sweep.seed, index)
    if params is None:
        if reason == "run_cap" and sweep.ever_running < (config.run_cap or 0):
            return [], None  # claims are still outstanding: they may start
        if all(RunStatus(status).terminal for status in sweep.counts) and not sweep.queue:
            return [SweepFinished(reason=reason or "exhausted")], None
        return [], None
    run_id = await _fresh_run_id(projector, sweep.project)
    scheduled = RunScheduled(run_id=run_id, params=params, index=index)
    claimed = RunClaimed(run_id=run_id, agent_id=agent_id, lease_s=lease_s)
    return [scheduled, claimed], (run_id, params, False)


async def _bayes_suggestion(
    projector: Projector, sweep: SweepState, config: SweepConfig, index: int
) -> dict[str, Any]:
    # Imported here: numpy (and scikit-learn after it) add global warning filters, which
    # importing api must not do for users who never run a bayes sweep.
    from ._bayes import Observation, suggest

    # Only the most recent runs are read, so a claim's cost stays bounded however long
    # the sweep has been going; the fit itself is bounded in _bayes.py.
    runs: list[Observation] = []
    for run_id in sweep.scheduled[-_BAYES_WINDOW:]:
        run = await projector.run(sweep.project, run_id)
        if run is None or run.params is None:
            continue
        value = run.summary.get(config.metric_name or "")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            value = None
        runs.append(Observation(run.params, str(run.status), value))
    # The fit is CPU work: off the event loop, so the agent's own heartbeats go on.
    return await anyio.to_thread.run_sync(suggest, config, sweep.seed, index, runs)


@functools.lru_cache(maxsize=64)
def _parsed(encoded: bytes) -> SweepConfig:
    return parse_sweep_config(msgspec.json.decode(encoded))


def _stored_config(raw: dict[str, Any]) -> SweepConfig:
    # Parsed once per distinct config, quietly: its warnings were shown when the sweep
    # was created, not on every claim.
    return _parsed(msgspec.json.encode(raw))


async def _params(projector: Projector, sweep: SweepState, run_id: str) -> dict[str, Any]:
    run = await projector.run(sweep.project, run_id)
    return dict(run.params or {}) if run is not None else {}


async def _fresh_run_id(projector: Projector, project: str) -> str:
    while True:
        run_id = generate_id()
        if await projector.run(project, run_id) is None:
            return run_id


# --- the watchdog -----------------------------------------------------------------------


async def reap(
    *, store: StoreArg = None, timeout_s: float = 300.0, now_us: int | None = None
) -> list[str]:
    """Write ``HeartbeatExpired`` for every running or preempting run silent for longer
    than ``timeout_s``, and ``ClaimLapsed`` for every claim older than its lease whose run
    has not started; return one line per decision.

    The fold turns an expired preempting run into PREEMPTED (queued in its sweep) and an
    expired running one into CRASHED. Each decision is a conditional append, so a run
    that writes meanwhile is left alone.
    """
    now = now_us if now_us is not None else int(time.time() * 1_000_000)
    decisions: list[str] = []
    async with opened_store(store) as opened, open_projector(opened) as projector:
        for run in await projector.runs():
            if run.status in (RunStatus.RUNNING, RunStatus.PREEMPTING):
                silent = (now - run.last_event_us) / 1_000_000
                if silent <= timeout_s:
                    continue
                stream = run_stream(run.project, run.run_id)
                info = await opened.stream_info(stream)
                if info is None:
                    continue
                expired = HeartbeatExpired(
                    incarnation=run.incarnation,
                    last_position=run.last_position,
                    observed_at_us=now,
                    timeout_s=timeout_s,
                )
                try:
                    await opened.append(stream, [expired], info.version)
                except WrongExpectedVersion:
                    continue  # it wrote meanwhile: alive
                outcome = "preempted" if run.status is RunStatus.PREEMPTING else "crashed"
                decisions.append(
                    f"{run.project}/{run.run_id}: silent for {silent:.0f} s "
                    f"(over {timeout_s:.0f} s) -> {outcome}"
                )
            elif (
                run.status is RunStatus.PENDING and run.claim_position is not None and run.sweep_id
            ):
                [claim_record] = await opened.read_positions([run.claim_position])
                lease = getattr(claim_record.event, "lease_s", timeout_s)
                age = (now - claim_record.recorded_at_us) / 1_000_000
                if age <= lease:
                    continue
                stream = sweep_stream(run.sweep_id)
                info = await opened.stream_info(stream)
                if info is None:
                    continue
                lapsed = ClaimLapsed(run_id=run.run_id, claim_position=run.claim_position)
                try:
                    await opened.append(stream, [lapsed], info.version)
                except WrongExpectedVersion:
                    continue
                decisions.append(
                    f"{run.project}/{run.run_id}: claim by {run.claimed_by} lapsed after "
                    f"{age:.0f} s (lease {lease:.0f} s)"
                )
    return decisions
