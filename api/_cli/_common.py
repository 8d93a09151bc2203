"""What every command shares: exit codes, one-line failures, options, output helpers.

``--json`` is carried by click's context (``ctx.meta``), not by a module global: a
failure raised inside a command reads it when it is made, so two commands run in one
process (the tests' ``CliRunner``) never see each other's mode. ``on_existing_store`` is
the one way a command opens the store it names (``api._library._stores``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import click
import msgspec

from eventstore import ConcurrencyError, DecodeError, RunLogError, StoreError

from .._errors import RunNotFound, SweepNotFound

__all__ = [
    "EXIT_CODES",
    "EXIT_PROBLEM",
    "Failure",
    "StoreProblem",
    "emit",
    "failure",
    "json_option",
    "on_existing_store",
    "progress_bar",
    "rich_console",
    "run_coroutine",
    "store_option",
    "time_text",
]

_T = TypeVar("_T")
_JSON = "runlog.json"  # the key of --json in click's ctx.meta, shared by a command's contexts

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_STORE = 4
EXIT_REFUSED = 5
EXIT_CODES = {
    EXIT_OK: "success; for verify: the log and the read models are sound",
    EXIT_PROBLEM: "verify found a damaged log or a read model that differs from the replay",
    EXIT_USAGE: "the command line is wrong (unknown option, missing argument)",
    EXIT_NOT_FOUND: "the run or sweep named is not in the log",
    EXIT_STORE: "the store cannot be used: missing, not a runlog database, newer, damaged",
    EXIT_REFUSED: "the request was refused: invalid input, a conflict, a refused sweep command",
}


def _json_requested() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_JSON, False))


class Failure(click.ClickException):
    """A one-line error; subclasses set the exit code. Made inside a command, it
    remembers whether that command was asked for ``--json``."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.as_json = _json_requested()

    def show(self, file: Any = None) -> None:
        """Print the error: one line on stderr, and ``{"error": ...}`` on stdout with
        ``--json``."""
        if self.as_json:
            error = {"error": {"type": self.kind, "message": self.message, "exit": self.exit_code}}
            click.echo(msgspec.json.encode(error).decode())
        click.echo(f"runlog: {self.message}", err=True)


class NotFound(Failure):
    """The run or sweep named is not in the log."""

    exit_code = EXIT_NOT_FOUND


class StoreProblem(Failure):
    """The store cannot be used (missing, not a runlog database, damaged)."""

    exit_code = EXIT_STORE


def failure(exc: BaseException) -> Failure:
    """The one-line failure, with its exit code, for one of the project's errors."""
    if isinstance(exc, (RunNotFound, SweepNotFound)):
        return NotFound(str(exc), type(exc).__name__)
    if isinstance(exc, (OSError, DecodeError)) or (
        isinstance(exc, StoreError) and not isinstance(exc, ConcurrencyError)
    ):
        return StoreProblem(str(exc), type(exc).__name__)
    return Failure(str(exc), type(exc).__name__)


def run_coroutine(coroutine: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``coroutine`` and turn the project's errors into one-line failures."""
    try:
        return anyio.run(coroutine)
    except (RunLogError, OSError) as exc:
        raise failure(exc) from exc


def on_existing_store(store: str | None, action: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``action(opened_store)`` on the store at ``store``, which must already exist.

    Commands that read or act on a store must never leave an empty database behind
    when the path is wrong: they refuse, naming the path they looked at.
    """
    from .._library._stores import existing_store

    async def on_store() -> _T:
        async with existing_store(store) as opened:
            return await action(opened)

    return run_coroutine(on_store)


def emit(value: Any) -> None:
    """Print ``value`` as one JSON document."""
    click.echo(msgspec.json.encode(msgspec.to_builtins(value)).decode())


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``: the command prints one JSON document, and failures say so too."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
    @functools.wraps(function)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        as_json = as_json or bool(ctx.meta.get(_JSON, False))  # given to a parent command
        ctx.meta[_JSON] = as_json
        return function(*args, as_json=as_json, **kwargs)

    return wrapper


def store_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--store PATH|URL``."""
    return click.option(
        "--store",
        default=None,
        metavar="PATH|URL",
        help="The store (default: $RUNLOG_STORE, else runlog/runlog.db).",
    )(function)


def rich_console() -> Any:
    """A rich console for tables on stdout."""
    from rich.console import Console

    # Piped output is read by grep and scripts: give it whole lines, not a terminal's
    # 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, width=width)


def time_text(microseconds: int | None) -> str:
    """A time in microseconds since the epoch as UTC text to the millisecond, or ``-``."""
    if not microseconds:
        return "-"
    moment = datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr (when it is a terminal) fed by ``callback(done, total)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    err = Console(stderr=True)
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
