"""``serve`` (the HTTP server) and ``demo`` (train, preempt, resume, replay)."""

from __future__ import annotations

from typing import TypeVar

import click

from eventstore import RunLogError

from .._library._settings import root_dir, store_target
from ._common import (
    failure,
    run_coroutine,
    store_option,
)

_T = TypeVar("_T")

__all__ = ["demo", "serve"]


@click.command()
@click.option(
    "--store",
    default=lambda: str(store_target(None, root_dir())),
    show_default="$RUNLOG_STORE or runlog/runlog.db",
    help="Path or URL of the store.",
)
@click.option("--script", default=None, help="The training script (default: examples/train.py).")
def demo(store: str, script: str | None) -> None:
    """Train, get preempted by SIGTERM, resume at the right step; replay it from the log."""
    from ._demo import run_demo

    run_coroutine(lambda: run_demo(store, print, script))


@click.command()
@store_option
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
    from .._server import load_token
    from .._server import serve as run_server

    try:
        token = load_token(token_file)
    except RunLogError as exc:
        raise failure(exc) from exc
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
