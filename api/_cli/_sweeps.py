"""Sweeps and agents: ``sweep`` (create, show, control, stop a run), ``sweeps``,
``agent``, ``reap`` (the watchdog) and ``explain``."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from eventstore import RunLogError

from .._errors import SweepConfigWarning
from ._common import (
    emit,
    json_option,
    on_existing_store,
    rich_console,
    run_coroutine,
    store_option,
    time_text,
)

_T = TypeVar("_T")

__all__ = ["agent", "explain", "reap", "sweep", "sweeps"]


class _SweepCommands(click.Group):
    """``runlog sweep``'s subcommands, and the two short forms W&B users type:
    ``runlog sweep FILE`` creates (``create FILE``) and ``runlog sweep --pause SWEEP_ID``
    (or ``--resume``, ``--stop``, ``--cancel``) controls (``pause SWEEP_ID``)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands:
            name = ctx.params.get("action") or "create"
            return name, self.commands[name], args
        if args and ctx.params.get("action"):
            raise click.UsageError(f"--{ctx.params['action']} takes one sweep id")
        return super().resolve_command(ctx, args)


def _given(ctx: click.Context, name: str, value: Any) -> Any:
    """An option given to the subcommand, else to ``runlog sweep`` before it."""
    if value is not None:
        return value
    parent = ctx.parent
    return parent.params.get(name) if parent is not None else None


@click.group(cls=_SweepCommands)
@click.option("--pause", "action", flag_value="pause", help="Stop handing out new runs.")
@click.option("--resume", "action", flag_value="resume", help="Hand out runs again.")
@click.option(
    "--stop", "action", flag_value="stop", help="Finish: no new runs; running ones complete."
)
@click.option("--cancel", "action", flag_value="cancel", help="Cancel: kill running runs too.")
@click.option("--project", default=None, help="Project of a new sweep.")
@store_option
@json_option
def sweep(action: str | None, project: str | None, store: str | None, as_json: bool) -> None:
    """Create a sweep, show one, or control one.

    \b
    runlog sweep create sweep.yaml     (or: runlog sweep sweep.yaml)
    runlog sweep show SWEEP_ID
    runlog sweep --pause|--resume|--stop|--cancel SWEEP_ID   (or: runlog sweep pause SWEEP_ID)
    runlog sweep stop-run PROJECT/RUN_ID   (SIGTERM, then SIGKILL: the run ends killed)

    SWEEP_ID may be written ENTITY/PROJECT/ID or PROJECT/ID, as W&B prints it.
    """


@sweep.command()
@click.argument("file")
@click.option("--project", default=None, help="Project of the new sweep.")
@store_option
@json_option
@click.pass_context
def create(
    ctx: click.Context, file: str, project: str | None, store: str | None, as_json: bool
) -> None:
    """Create a sweep from a YAML config FILE; print its id."""
    from .._sweeping._sweeps import create_sweep

    project, store = _given(ctx, "project", project), _given(ctx, "store", store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepConfigWarning)
        sweep_id = run_coroutine(lambda: create_sweep(file, project=project, store=store))
    for warning in caught:  # as W&B's CLI does: the sweep is created, the key named
        click.echo(f"runlog: warning: {warning.message}", err=True)
    if as_json:
        emit({"sweep_id": sweep_id})
    else:
        click.echo(
            f"created sweep {sweep_id}; run agents with: runlog agent {sweep_id} "
            f"(or: runlog agent {sweep_id} -- COMMAND)"
        )


def _control(action: str, summary: str) -> click.Command:
    @click.argument("sweep_id")
    @store_option
    @json_option
    @click.pass_context
    def control(ctx: click.Context, sweep_id: str, store: str | None, as_json: bool) -> None:
        from .._sweeping import _sweeps

        command = getattr(_sweeps, f"{action}_sweep")
        store = _given(ctx, "store", store)
        state = on_existing_store(store, lambda opened: _on_sweep(sweep_id, opened, command))
        if as_json:
            emit(state)
            return
        reason = f" ({state.finish_reason})" if state.finish_reason else ""
        click.echo(f"sweep {sweep_id}: {state.status}{reason}")

    control.__doc__ = f"{summary} (also: runlog sweep --{action} SWEEP_ID)."
    return click.command(name=action)(control)


for _action, _summary in (
    ("pause", "Stop handing out new runs"),
    ("resume", "Hand out runs again"),
    ("stop", "Finish: no new runs; running ones complete"),
    ("cancel", "Cancel: kill running runs too"),
):
    sweep.add_command(_control(_action, _summary))


@sweep.command(name="show")
@click.argument("sweep_id")
@store_option
@json_option
@click.pass_context
def show_sweep(ctx: click.Context, sweep_id: str, store: str | None, as_json: bool) -> None:
    """Show a sweep: its counts, its queue of preempted runs, claims and agents."""
    _show_sweep(sweep_id, _given(ctx, "store", store), as_json)


@sweep.command(name="stop-run")
@click.argument("run")
@store_option
@json_option
@click.pass_context
def stop_run(ctx: click.Context, run: str, store: str | None, as_json: bool) -> None:
    """Ask RUN (PROJECT/RUN_ID) to stop: its agent sends SIGTERM, then SIGKILL."""
    _stop_run((run,), _given(ctx, "store", store), as_json)


async def _on_sweep(sweep_path: str, store: Any, command: Callable[..., Awaitable[_T]]) -> _T:
    """``command(sweep_id, store=...)`` with the id given in any of W&B's forms."""
    if "/" not in sweep_path:
        return await command(sweep_path, store=store)
    from projections import open_projector

    from .._library._stores import existing_store
    from .._sweeping._sweep_path import resolve_sweep_id

    async with existing_store(store) as opened:
        async with open_projector(opened) as projector:
            sweep_id = await resolve_sweep_id(sweep_path, projector, opened.url)
        return await command(sweep_id, store=opened)


def _stop_run(target: tuple[str, ...], store: str | None, as_json: bool) -> None:
    from .._sweeping._stop import stop_run

    if len(target) != 1 or "/" not in target[0]:
        raise click.UsageError("give one run: runlog sweep stop-run PROJECT/RUN_ID")
    project, _, run_id = target[0].rpartition("/")
    state = on_existing_store(store, lambda opened: stop_run(project, run_id, store=opened))
    if as_json:
        emit(state)
        return
    click.echo(
        f"run {project}/{run_id}: asked to stop; its agent sends SIGTERM, then SIGKILL "
        "after the kill delay"
    )


def _show_sweep(sweep_id: str, store: str | None, as_json: bool) -> None:
    from .._audit._queries import show_sweep

    state = run_coroutine(lambda: _on_sweep(sweep_id, store, show_sweep))
    if as_json:
        emit(state)
        return
    from rich.table import Table

    console = rich_console()
    reason = f" ({state.finish_reason})" if state.finish_reason else ""
    console.print(f"[bold]sweep {state.sweep_id}[/bold]  {state.status}{reason}")
    console.print(
        f"project {state.project}, method {state.method}, run cap {state.run_cap or '-'}, "
        f"{len(state.scheduled)} runs scheduled, {state.ever_running} ever started"
    )
    counts = Table("status", "runs", box=None, header_style="bold")
    for status, count in sorted(state.counts.items()):
        if count:
            counts.add_row(status, str(count))
    console.print(counts)
    console.print(
        "[bold]queue[/bold] (preempted runs, next first): " + (", ".join(state.queue) or "empty")
    )
    if state.claims:
        claims = Table("run", "claimed by", box=None, header_style="bold")
        for run_id, agent_id in sorted(state.claims.items()):
            claims.add_row(run_id, agent_id)
        console.print(claims)
    _show_agents(console, state)


def _show_agents(console: Any, state: Any) -> None:
    """The sweep's agents that have not left: where they run, when last heard, their runs.

    An agent killed outside its control never records that it left; one not heard from
    for the watchdog's 300 s is shown silent rather than live.
    """
    from rich.table import Table

    if not state.agents:
        console.print("[bold]agents[/bold]: none")
        return
    now_us = int(datetime.now(tz=UTC).timestamp() * 1_000_000)
    agents = Table(
        "agent", "state", "host", "pid", "last seen (UTC)", "running", box=None, header_style="bold"
    )
    for agent_id, info in sorted(state.agents.items()):
        seen = info.last_seen_us or info.started_us
        alive = "live" if now_us - seen <= 300_000_000 else "silent"
        agents.add_row(
            agent_id,
            alive,
            info.host,
            str(info.pid),
            time_text(seen),
            ", ".join(info.run_ids) or "-",
        )
    console.print(agents)


@click.command()
@click.option("--project", default=None, help="Only this project's sweeps.")
@click.option("--status", default=None, help="Only sweeps in this status.")
@store_option
@json_option
def sweeps(project: str | None, status: str | None, store: str | None, as_json: bool) -> None:
    """List sweeps, oldest first."""
    from .._audit._queries import list_sweeps

    found = run_coroutine(lambda: list_sweeps(project=project, status=status, store=store))
    if as_json:
        emit({"sweeps": found})
        return
    from rich.table import Table

    table = Table("sweep", "project", "status", "method", "scheduled", "queued", box=None)
    for state in found:
        table.add_row(
            state.sweep_id,
            state.project,
            str(state.status),
            state.method,
            str(len(state.scheduled)),
            str(len(state.queue)),
        )
    console = rich_console()
    console.print(table)
    console.print(f"{len(found)} sweeps")


@click.command()
@click.argument("sweep_id")
@click.argument("command", nargs=-1, required=False)
@click.option("--count", type=int, default=None, help="Quit after this many runs.")
@click.option(
    "--forward-signals",
    is_flag=True,
    help="Pass signals on to the run; SIGTERM/SIGHUP/SIGQUIT/SIGINT: 1st waits, "
    "2nd SIGTERMs the run, 3rd SIGKILLs it.",
)
@click.option(
    "--term-timeout",
    type=float,
    default=None,
    help="With --forward-signals: SIGKILL a run still alive this many seconds after a signal.",
)
@click.option(
    "--poll", type=float, default=5.0, show_default=True, help="Seconds between polls when idle."
)
@store_option
@json_option
def agent(
    sweep_id: str,
    command: tuple[str, ...],
    count: int | None,
    forward_signals: bool,
    term_timeout: float | None,
    poll: float,
    store: str | None,
    as_json: bool,
) -> None:
    """Run COMMAND for runs of SWEEP_ID, preempted runs first: runlog agent SWEEP -- python train.py

    Without COMMAND the sweep config's program is run, as W&B's agent runs it: its
    `command` (default ${env} ${interpreter} ${program} ${args}) with the macros filled in.
    """
    from .._sweeping._agent import run_agent_command

    if term_timeout is not None and not forward_signals:
        # A usage error is told before the store is even looked at.
        raise click.UsageError(
            "--term-timeout bounds the wait after a forwarded signal; add --forward-signals"
        )
    done = on_existing_store(
        store,
        lambda opened: run_agent_command(
            sweep_id,
            command,
            count=count,
            store=opened,
            forward_signals=forward_signals,
            term_timeout=term_timeout,
            poll_interval=poll,
        ),
    )
    if as_json:
        emit({"sweep_id": sweep_id, "runs": done})
    else:
        click.echo(f"agent done: {done} runs")


@click.command()
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds of silence before a run is declared dead.",
)
@store_option
@json_option
def reap(timeout: float, store: str | None, as_json: bool) -> None:
    """Run the heartbeat watchdog once: expire silent runs, lapse stale claims."""
    from .._sweeping._sweeps import reap as reap_once

    decisions = on_existing_store(store, lambda opened: reap_once(store=opened, timeout_s=timeout))
    if as_json:
        emit({"decisions": decisions})
        return
    for line in decisions:
        click.echo(line)
    click.echo(f"{len(decisions)} decisions")


@click.command()
@click.argument("run")
@store_option
@json_option
def explain(run: str, store: str | None, as_json: bool) -> None:
    """Say why RUN (PROJECT/RUN_ID, or a RUN_ID used in one project only) was queued or
    not, from the events that decided it."""
    from .._audit._explain import explain as explain_run
    from .._audit._queries import find_run, split_run

    try:
        split_run(run)
    except RunLogError as exc:
        raise click.UsageError(str(exc)) from None

    async def explained(opened: Any) -> list[str]:
        from projections import open_projector

        async with open_projector(opened) as projector:
            state = await find_run(projector, run)  # a bare id as `show` takes it
        return await explain_run(state.project, state.run_id, store=opened)

    lines = on_existing_store(store, explained)
    if as_json:
        emit({"run": run, "lines": lines})
        return
    for line in lines:
        click.echo(line)
