"""The ``runlog`` command line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import anyio
import click

from eventstore import RunLogError

from ._demo import run_demo
from ._settings import root_dir, store_target

__all__ = ["main"]


@click.group()
@click.version_option(version("runlog"), prog_name="runlog")
def main() -> None:
    """runlog: an event-sourced run log for machine-learning training."""


@main.command()
@click.option(
    "--store",
    default=lambda: str(store_target(None, root_dir())),
    show_default="$RUNLOG_STORE or runlog/runlog.db",
    help="Path or URL of the store.",
)
@click.option("--script", default=None, help="The training script (default: examples/train.py).")
def demo(store: str, script: str | None) -> None:
    """Train, get preempted by SIGTERM, resume at the right step; replay it from the log."""
    try:
        anyio.run(run_demo, store, print, script)
    except RunLogError as exc:
        raise click.ClickException(str(exc)) from exc


def _store_option(function: Any) -> Any:
    return click.option(
        "--store",
        default=None,
        help="Path or URL of the store (default: $RUNLOG_STORE or runlog/runlog.db).",
    )(function)


def _run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return anyio.run(coroutine)
    except RunLogError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("target", nargs=-1, required=True)
@click.option("--pause", "action", flag_value="pause", help="Stop handing out new runs.")
@click.option("--resume", "action", flag_value="resume", help="Hand out runs again.")
@click.option(
    "--stop", "action", flag_value="stop", help="Finish: no new runs; running ones complete."
)
@click.option("--cancel", "action", flag_value="cancel", help="Cancel: kill running runs too.")
@click.option("--project", default=None, help="Project of a new sweep.")
@_store_option
def sweep(
    target: tuple[str, ...], action: str | None, project: str | None, store: str | None
) -> None:
    """Create a sweep from a config file, or control one.

    \b
    runlog sweep sweep.yaml            (or: runlog sweep create sweep.yaml)
    runlog sweep --pause|--resume|--stop|--cancel SWEEP_ID
    """
    from ._sweeps import cancel_sweep, create_sweep, pause_sweep, resume_sweep, stop_sweep

    if action is None:
        files = target[1:] if target[0] == "create" else target
        if len(files) != 1:
            raise click.UsageError("give one sweep config file: runlog sweep create sweep.yaml")
        sweep_id = _run(lambda: create_sweep(files[0], project=project, store=store))
        click.echo(f"created sweep {sweep_id}; run agents with: runlog agent {sweep_id} -- COMMAND")
        return
    if len(target) != 1:
        raise click.UsageError(f"--{action} takes one sweep id")
    command = {
        "pause": pause_sweep,
        "resume": resume_sweep,
        "stop": stop_sweep,
        "cancel": cancel_sweep,
    }
    state = _run(lambda: command[action](target[0], store=store))
    reason = f" ({state.finish_reason})" if state.finish_reason else ""
    click.echo(f"sweep {target[0]}: {state.status}{reason}")


@main.command()
@click.argument("sweep_id")
@click.argument("command", nargs=-1, required=True)
@click.option("--count", type=int, default=None, help="Quit after this many runs.")
@click.option("--forward-signals", is_flag=True, help="Pass SIGTERM/SIGINT/SIGUSR1 to the run.")
@click.option(
    "--poll", type=float, default=5.0, show_default=True, help="Seconds between polls when idle."
)
@_store_option
def agent(
    sweep_id: str,
    command: tuple[str, ...],
    count: int | None,
    forward_signals: bool,
    poll: float,
    store: str | None,
) -> None:
    """Run COMMAND for runs of SWEEP_ID, preempted runs first: runlog agent SWEEP -- python train.py"""
    from ._agent import run_agent_command

    done = _run(
        lambda: run_agent_command(
            sweep_id,
            command,
            count=count,
            store=store,
            forward_signals=forward_signals,
            poll_interval=poll,
        )
    )
    click.echo(f"agent done: {done} runs")


@main.command()
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds of silence before a run is declared dead.",
)
@_store_option
def reap(timeout: float, store: str | None) -> None:
    """Run the heartbeat watchdog once: expire silent runs, lapse stale claims."""
    from ._sweeps import reap as reap_once

    decisions = _run(lambda: reap_once(store=store, timeout_s=timeout))
    for line in decisions:
        click.echo(line)
    click.echo(f"{len(decisions)} decisions")


@main.command()
@click.argument("run")
@_store_option
def explain(run: str, store: str | None) -> None:
    """Say why RUN (PROJECT/RUN_ID) was queued or not, from the events that decided it."""
    from ._explain import explain as explain_run

    project, slash, run_id = run.rpartition("/")
    if not slash:
        raise click.UsageError("name the run as PROJECT/RUN_ID")
    for line in _run(lambda: explain_run(project, run_id, store=store)):
        click.echo(line)


@main.command()
@_store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the write endpoints' bearer token (default: $RUNLOG_SERVER_TOKEN).",
)
@click.option(
    "--reap-interval",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between watchdog rounds (0 turns the watchdog off).",
)
@click.option(
    "--reap-timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds of silence before the watchdog expires a run.",
)
def serve(
    store: str | None,
    host: str,
    port: int,
    token_file: str | None,
    reap_interval: float,
    reap_timeout: float,
) -> None:
    """Serve the store over HTTP: JSON API, live events, remote runs and a dashboard."""
    from ._server import load_token
    from ._server import serve as run_server

    try:
        token = load_token(token_file)
    except RunLogError as exc:
        raise click.ClickException(str(exc)) from exc
    target = store_target(store, root_dir())
    writes = "need the bearer token" if token else "are disabled: no token configured"
    click.echo(f"runlog serve: {target} at http://{host}:{port}/; writes {writes}", err=True)
    run_server(
        target,
        host=host,
        port=port,
        token=token,
        reap_interval=reap_interval or None,
        reap_timeout=reap_timeout,
    )
