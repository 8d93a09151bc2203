"""The ``runlog`` command line."""

from __future__ import annotations

import os
from importlib.metadata import version

import anyio
import click

from eventstore import RunLogError

from ._demo import DEFAULT_STORE, run_demo

__all__ = ["main"]


@click.group()
@click.version_option(version("runlog"), prog_name="runlog")
def main() -> None:
    """runlog: an event-sourced run log for machine-learning training."""


@main.command()
@click.option(
    "--store",
    default=lambda: os.environ.get("RUNLOG_STORE", str(DEFAULT_STORE)),
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
