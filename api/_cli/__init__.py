"""The ``runlog`` command line: train and sweep, and audit the log.

Every command that reports takes ``--json`` (one JSON document on stdout). Errors are
one line on stderr (and ``{"error": ...}`` on stdout with ``--json``), never a
traceback, and the exit code says what kind of failure it was; see ``EXIT_CODES``.

The commands come in groups, one module each: ``_runs.py`` (runs, show, history,
replay), ``_sweeps.py`` (sweep and its subcommands, sweeps, agent, reap, explain),
``_log.py`` (verify, export, import) and ``_serve.py`` (serve, demo); ``_common.py``
holds what they share (exit codes, failures, options, output).
"""

from __future__ import annotations

from importlib.metadata import version

import click

from . import _log, _runs, _serve, _sweeps
from ._common import EXIT_CODES

__all__ = ["EXIT_CODES", "main"]


@click.group(
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
)
@click.version_option(version("runlog"), prog_name="runlog")
def main() -> None:
    """runlog: an event-sourced run log for machine-learning training."""


for _command in (
    _serve.demo,
    _runs.runs,
    _runs.show,
    _runs.history,
    _sweeps.sweep,
    _sweeps.sweeps,
    _sweeps.agent,
    _sweeps.reap,
    _sweeps.explain,
    _runs.replay,
    _log.verify,
    _log.export,
    _log.import_,
    _log.rebuild_heads,
    _serve.serve,
):
    main.add_command(_command)
