"""The ``runlog`` command line: train and sweep, and audit the log.

Every command that reports takes ``--json`` (one JSON document on stdout). Errors are
one line on stderr (and ``{"error": ...}`` on stdout with ``--json``), never a
traceback, and the exit code says what kind of failure it was; see ``EXIT_CODES``.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, TypeVar

import anyio
import click
import msgspec

from eventstore import ConcurrencyError, DecodeError, RunLogError, StoreError

from .._errors import RunNotFound
from .._library._settings import root_dir, store_target
from .._sweeping._sweep_config import SweepConfigWarning
from .._sweeping._sweeps import SweepNotFound

__all__ = ["EXIT_CODES", "main"]

_T = TypeVar("_T")

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

_json_mode = False


class Failure(click.ClickException):
    """A one-line error; subclasses set the exit code."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind

    def show(self, file: Any = None) -> None:
        if _json_mode:
            error = {"error": {"type": self.kind, "message": self.message, "exit": self.exit_code}}
            click.echo(msgspec.json.encode(error).decode())
        click.echo(f"runlog: {self.message}", err=True)


class _NotFound(Failure):
    exit_code = EXIT_NOT_FOUND


class _StoreProblem(Failure):
    exit_code = EXIT_STORE


def _failure(exc: BaseException) -> Failure:
    if isinstance(exc, (RunNotFound, SweepNotFound)):
        return _NotFound(str(exc), type(exc).__name__)
    if isinstance(exc, (OSError, DecodeError)) or (
        isinstance(exc, StoreError) and not isinstance(exc, ConcurrencyError)
    ):
        return _StoreProblem(str(exc), type(exc).__name__)
    return Failure(str(exc), type(exc).__name__)


def _run(coroutine: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``coroutine`` and turn the project's errors into one-line failures."""
    try:
        return anyio.run(coroutine)
    except (RunLogError, OSError) as exc:
        raise _failure(exc) from exc


def _on_existing_store(store: str | None, action: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``action(opened_store)`` on the store at ``store``, which must already exist.

    Commands that read or act on a store must never leave an empty database behind
    when the path is wrong: they refuse, naming the path they looked at.
    """
    from .._library._stores import existing_store

    async def on_store() -> _T:
        async with existing_store(store) as opened:
            return await action(opened)

    return _run(on_store)


def _emit(value: Any) -> None:
    """Print ``value`` as one JSON document."""
    click.echo(msgspec.json.encode(msgspec.to_builtins(value)).decode())


def _json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
    @functools.wraps(function)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        global _json_mode
        _json_mode = as_json
        return function(*args, as_json=as_json, **kwargs)

    return wrapper


def _store_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--store",
        default=None,
        metavar="PATH|URL",
        help="The store (default: $RUNLOG_STORE, else runlog/runlog.db).",
    )(function)


def _console() -> Any:
    from rich.console import Console

    # Piped output is read by grep and scripts: give it whole lines, not a terminal's
    # 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, width=width)


def _time(microseconds: int | None) -> str:
    if not microseconds:
        return "-"
    moment = datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr (when it is a terminal) fed by ``callback(done, total)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@click.group(
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
)
@click.version_option(version("runlog"), prog_name="runlog")
def main() -> None:
    """runlog: an event-sourced run log for machine-learning training."""


# --- the story -------------------------------------------------------------------------


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
    from ._demo import run_demo

    _run(lambda: run_demo(store, print, script))


# --- runs -------------------------------------------------------------------------------


@main.command()
@click.option("--project", default=None, help="Only this project's runs.")
@click.option(
    "--status",
    default=None,
    help="Only runs in this status (running, preempting, preempted, finished, failed, crashed, killed).",
)
@_store_option
@_json_option
def runs(project: str | None, status: str | None, store: str | None, as_json: bool) -> None:
    """List runs, oldest first."""
    from .._audit._queries import list_runs

    found = _run(lambda: list_runs(project=project, status=status, store=store))
    if as_json:
        _emit({"runs": found})
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("run", "status", "last step", "steps", "incarnation", "sweep", "updated (UTC)"):
        table.add_column(
            column, justify="right" if column in ("last step", "steps") else "left", no_wrap=True
        )
    for state in found:
        table.add_row(
            f"{state.project}/{state.run_id}",
            str(state.status),
            "-" if state.last_step is None else str(state.last_step),
            str(state.steps),
            str(state.incarnation),
            state.sweep_id or "-",
            _time(state.updated_us),
        )
    console = _console()
    console.print(table)
    console.print(f"{len(found)} runs")


@main.command()
@click.argument("run")
@_store_option
@_json_option
def show(run: str, store: str | None, as_json: bool) -> None:
    """Show RUN (PROJECT/RUN_ID, or a RUN_ID used in one project only)."""
    from .._audit._queries import show_run

    report = _run(lambda: show_run(run, store=store))
    if as_json:
        _emit(report)
        return
    from rich.table import Table

    state = report.state
    console = _console()
    console.print(f"[bold]run {state.project}/{state.run_id}[/bold]  {state.status}")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    rows = [
        ("last step", "-" if state.last_step is None else str(state.last_step)),
        ("next step", str(state.next_step)),
        ("steps logged", f"{state.steps} ({state.dropped_steps} dropped)"),
        ("incarnation", f"{state.incarnation} ({state.resumes} resumes)"),
        ("exit code", "-" if state.exit_code is None else str(state.exit_code)),
        ("reason", state.reason or "-"),
        ("sweep", state.sweep_id or "-"),
        ("host / pid", f"{state.host or '-'} / {state.pid}"),
        ("created", _time(state.created_us)),
        ("updated", _time(state.updated_us)),
        ("last heartbeat", _time(state.last_heartbeat_us)),
        ("as of position", str(report.position)),
    ]
    for name, value in rows:
        facts.add_row(name, value)
    console.print(facts)
    if state.notes:
        console.print(f"[bold]notes[/bold]: {state.notes}")
    if state.config:
        console.print(f"[bold]config[/bold]: {msgspec.json.encode(state.config).decode()}")
    if state.summary:
        summary = Table("metric", "last value", box=None, header_style="bold")
        for name, value in sorted(state.summary.items()):
            summary.add_row(name, str(value))
        console.print(summary)
    if state.files:
        files = Table("file", "size", "digest", "position", box=None, header_style="bold")
        for name, ref in sorted(state.files.items()):
            files.add_row(name, str(ref.size), ref.digest, str(ref.position))
        console.print(files)
    lives = Table(
        "#",
        "started (UTC)",
        "position",
        "how",
        "from step",
        "host",
        "pid",
        "ended",
        box=None,
        header_style="bold",
    )
    for column in lives.columns[:-1]:
        column.no_wrap = True
    lives.columns[-1].overflow = "fold"
    lives.columns[-1].min_width = 8
    for life in report.incarnations:
        lives.add_row(
            str(life.number),
            _time(life.started_us),
            str(life.position),
            "resumed" if life.resumed else "started",
            str(life.starting_step),
            life.host or "-",
            str(life.pid),
            life.ended or "-",
        )
    console.print(lives)


@main.command()
@click.argument("run")
@click.option("--since", type=int, default=0, help="Only events at this position or later.")
@click.option("--limit", type=int, default=None, help="At most this many events.")
@click.option(
    "--all-steps",
    is_flag=True,
    help="List every StepLogged (by default a stretch of them is one line).",
)
@_store_option
@_json_option
def history(
    run: str,
    since: int,
    limit: int | None,
    all_steps: bool,
    store: str | None,
    as_json: bool,
) -> None:
    """The timeline of RUN: every event, with position, time, incarnation and its effect."""
    from .._audit._queries import timeline

    # A run can log millions of steps: entries stream out (JSON) or fold into table rows
    # that are printed as they close; neither is ever held whole.
    stretch = _Stretch(collapse=not all_steps)
    table = _StreamedTable()
    encode = msgspec.json.Encoder().encode
    out = sys.stdout

    async def produce(progress: Callable[[int, int], None] | None) -> int:
        count = 0
        async for entry in timeline(run, store=store, since=since, limit=limit, progress=progress):
            if as_json:
                if count == 0:
                    out.write('{"run":' + encode(run).decode() + ',"events":[')
                else:
                    out.write(",")
                out.write(encode(entry).decode())
            else:
                done = stretch.add(entry)
                if done is not None:
                    table.row(done)
            count += 1
        return count

    with _progress("reading the run's events", not as_json) as progress:
        count = _run(lambda: produce(progress))
    if as_json:
        out.write(("]}" if count else '{"run":' + encode(run).decode() + ',"events":[]}') + "\n")
        out.flush()
        return
    last = stretch.flush()
    if last is not None:
        table.row(last)
    table.header()  # an empty timeline still gets its header
    click.echo(f"{count} events")


class _StreamedTable:
    """Rows printed one line each as they come, in columns of fixed width."""

    COLUMNS = (("position", 15), ("time (UTC)", 23), ("stream", 6), ("event", 36), ("inc", 3))

    def __init__(self) -> None:
        self.started = False

    def header(self) -> None:
        """Print the header line, once."""
        if not self.started:
            self.started = True
            self._line((*(name for name, _ in self.COLUMNS), "changed"))

    def row(self, cells: tuple[str, ...]) -> None:
        """Print one row (after the header)."""
        self.header()
        self._line(cells)

    def _line(self, cells: tuple[str, ...]) -> None:
        widths = [width for _, width in self.COLUMNS]
        text = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False))
        click.echo(f"{text}  {cells[-1]}".rstrip())


class _Stretch:
    """Folds consecutive ``StepLogged`` entries of one incarnation into one table row."""

    def __init__(self, *, collapse: bool) -> None:
        self.collapse = collapse
        self.first: Any = None
        self.last: Any = None
        self.count = 0
        self.changes: dict[str, list[Any]] = {}
        self.steps: list[int] = []  # the first and the last accepted step

    def add(self, entry: Any) -> tuple[str, ...] | None:
        """Take ``entry``; return the row it closed, if any."""
        joins = (
            self.collapse
            and self.last is not None
            and entry.type == "StepLogged"
            and self.last.type == "StepLogged"
            and entry.incarnation == self.last.incarnation
            and entry.position == self.last.position + 1
        )
        closed = None if joins or self.first is None else self.flush()
        if self.first is None:
            self.first = entry
        self.last = entry
        self.count += 1
        for name, (before, after) in entry.changes.items():
            self.changes[name] = [self.changes[name][0] if name in self.changes else before, after]
        step = (
            entry.changes.get("last_step", [None, None])[1] if entry.type == "StepLogged" else None
        )
        if step is not None:
            self.steps = [self.steps[0] if self.steps else step, step]
        return closed

    def flush(self) -> tuple[str, ...] | None:
        """The row of the entries taken so far (None if none), and start afresh."""
        first, last = self.first, self.last
        if first is None:
            return None
        if self.count == 1:
            label = first.type
            where = str(first.position)
        else:
            span = f"steps {self.steps[0]}..{self.steps[-1]}" if self.steps else "no step accepted"
            label = f"StepLogged x{self.count} ({span})"
            where = f"{first.position}..{last.position}"
        row = (
            where,
            _time(first.recorded_at_us),
            first.stream.partition(":")[0],
            label,
            "-" if first.incarnation is None else str(first.incarnation),
            _changes(self.changes),
        )
        self.first = self.last = None
        self.count = 0
        self.changes = {}
        self.steps = []
        return row


def _changes(changes: dict[str, list[Any]]) -> str:
    if not changes:
        return "(no change)"
    parts = []
    for name, (before, after) in changes.items():
        if name.endswith("_us") and all(isinstance(v, int | None) for v in (before, after)):
            # microsecond counters (created_us, last_heartbeat_us) read as times
            parts.append(f"{name[:-3]}: {_time(before)} -> {_time(after)}")
        else:
            parts.append(f"{name}: {_short(before)} -> {_short(after)}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


# --- sweeps ----------------------------------------------------------------------------


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
@_json_option
def sweep(
    target: tuple[str, ...],
    action: str | None,
    project: str | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Create a sweep, show one, or control one.

    \b
    runlog sweep create sweep.yaml     (or: runlog sweep sweep.yaml)
    runlog sweep show SWEEP_ID
    runlog sweep --pause|--resume|--stop|--cancel SWEEP_ID
    runlog sweep stop-run PROJECT/RUN_ID   (SIGTERM, then SIGKILL: the run ends killed)

    SWEEP_ID may be written ENTITY/PROJECT/ID or PROJECT/ID, as W&B prints it.
    """
    from .._sweeping._sweeps import (
        cancel_sweep,
        create_sweep,
        pause_sweep,
        resume_sweep,
        stop_sweep,
    )

    if action is None and target[0] == "show":
        if len(target) != 2:
            raise click.UsageError("give one sweep id: runlog sweep show SWEEP_ID")
        _show_sweep(target[1], store, as_json)
        return
    if action is None and target[0] == "stop-run":
        _stop_run(target[1:], store, as_json)
        return
    if action is None:
        files = target[1:] if target[0] == "create" else target
        if len(files) != 1:
            raise click.UsageError("give one sweep config file: runlog sweep create sweep.yaml")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SweepConfigWarning)
            sweep_id = _run(lambda: create_sweep(files[0], project=project, store=store))
        for warning in caught:  # as W&B's CLI does: the sweep is created, the key named
            click.echo(f"runlog: warning: {warning.message}", err=True)
        if as_json:
            _emit({"sweep_id": sweep_id})
        else:
            click.echo(
                f"created sweep {sweep_id}; run agents with: runlog agent {sweep_id} "
                f"(or: runlog agent {sweep_id} -- COMMAND)"
            )
        return
    if len(target) != 1:
        raise click.UsageError(f"--{action} takes one sweep id")
    command = {
        "pause": pause_sweep,
        "resume": resume_sweep,
        "stop": stop_sweep,
        "cancel": cancel_sweep,
    }
    state = _on_existing_store(
        store, lambda opened: _on_sweep(target[0], opened, command[action])
    )
    if as_json:
        _emit(state)
        return
    reason = f" ({state.finish_reason})" if state.finish_reason else ""
    click.echo(f"sweep {target[0]}: {state.status}{reason}")


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
    state = _on_existing_store(store, lambda opened: stop_run(project, run_id, store=opened))
    if as_json:
        _emit(state)
        return
    click.echo(
        f"run {project}/{run_id}: asked to stop; its agent sends SIGTERM, then SIGKILL "
        "after the kill delay"
    )


def _show_sweep(sweep_id: str, store: str | None, as_json: bool) -> None:
    from .._audit._queries import show_sweep

    state = _run(lambda: _on_sweep(sweep_id, store, show_sweep))
    if as_json:
        _emit(state)
        return
    from rich.table import Table

    console = _console()
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
            agent_id, alive, info.host, str(info.pid), _time(seen), ", ".join(info.run_ids) or "-"
        )
    console.print(agents)


@main.command()
@click.option("--project", default=None, help="Only this project's sweeps.")
@click.option("--status", default=None, help="Only sweeps in this status.")
@_store_option
@_json_option
def sweeps(project: str | None, status: str | None, store: str | None, as_json: bool) -> None:
    """List sweeps, oldest first."""
    from .._audit._queries import list_sweeps

    found = _run(lambda: list_sweeps(project=project, status=status, store=store))
    if as_json:
        _emit({"sweeps": found})
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
    console = _console()
    console.print(table)
    console.print(f"{len(found)} sweeps")


@main.command()
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
@_store_option
@_json_option
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

    done = _on_existing_store(
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
        _emit({"sweep_id": sweep_id, "runs": done})
    else:
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
@_json_option
def reap(timeout: float, store: str | None, as_json: bool) -> None:
    """Run the heartbeat watchdog once: expire silent runs, lapse stale claims."""
    from .._sweeping._sweeps import reap as reap_once

    decisions = _on_existing_store(
        store, lambda opened: reap_once(store=opened, timeout_s=timeout)
    )
    if as_json:
        _emit({"decisions": decisions})
        return
    for line in decisions:
        click.echo(line)
    click.echo(f"{len(decisions)} decisions")


@main.command()
@click.argument("run")
@_store_option
@_json_option
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

    lines = _on_existing_store(store, explained)
    if as_json:
        _emit({"run": run, "lines": lines})
        return
    for line in lines:
        click.echo(line)


# --- the log ---------------------------------------------------------------------------


@main.command()
@click.argument("target", required=False)
@click.option("--until", type=int, default=None, help="Replay up to this log position.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Replay up to this time: ISO 8601 (2026-11-22T12:00:00Z; no zone = local) or @EPOCH.",
)
@_store_option
@_json_option
def replay(
    target: str | None, until: int | None, as_of: str | None, store: str | None, as_json: bool
) -> None:
    """State as of a past point, folded from the log: of TARGET (a run or sweep), or of all."""
    from .._audit._queries import parse_time
    from .._audit._queries import replay as replay_log

    if until is not None and as_of is not None:
        raise click.UsageError("give --until or --as-of, not both")
    try:
        as_of_us = parse_time(as_of) if as_of is not None else None
    except RunLogError as exc:
        raise click.UsageError(str(exc)) from None
    with _progress("replaying", not as_json) as progress:
        result = _run(
            lambda: replay_log(
                store=store, until=until, as_of_us=as_of_us, target=target, progress=progress
            )
        )
    if as_json:
        _emit(result)
        return
    from rich.table import Table

    console = _console()
    when = f" ({as_of})" if as_of is not None else ""
    console.print(f"[bold]as of position {result.position}{when}[/bold]")
    if result.runs:
        table = Table("run", "status", "last step", "steps", "incarnation", box=None)
        for state in result.runs:
            table.add_row(
                f"{state.project}/{state.run_id}",
                str(state.status),
                "-" if state.last_step is None else str(state.last_step),
                str(state.steps),
                str(state.incarnation),
            )
        console.print(table)
    for sweep_state in result.sweeps:
        queue = ", ".join(sweep_state.queue) or "empty"
        console.print(f"sweep {sweep_state.sweep_id}: {sweep_state.status}, queue: {queue}")
    console.print(f"{len(result.runs)} runs, {len(result.sweeps)} sweeps")


@main.command()
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Processes checking the log besides this one (default: one per CPU; 0: none).",
)
@click.option(
    "--no-catch-up",
    is_flag=True,
    help="Write nothing: compare the read models where they stand, not caught up first.",
)
@click.option(
    "--parallel-from",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Use the worker processes only for logs of at least N events (default 100000).",
)
@_store_option
@_json_option
def verify(
    workers: int | None,
    no_catch_up: bool,
    parallel_from: int | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Check the hash chain, positions, versions, payloads, and the read models.

    Exits 0 when all is sound and 1 naming the first bad position when it is not.
    """
    from .._audit._verify import PARALLEL_FROM
    from .._audit._verify import verify as verify_store

    try:
        with _progress("verifying", not as_json) as progress:
            report = _run(
                lambda: verify_store(
                    store=store,
                    workers=workers,
                    progress=progress,
                    catch_up=not no_catch_up,
                    parallel_from=parallel_from or PARALLEL_FROM,
                )
            )
    except Exception as exc:
        if isinstance(exc, click.ClickException):
            raise
        # verify reads damaged files by design, and damage can reach code that expects
        # sound data; whatever escapes is still reported in one line, never a traceback.
        raise _StoreProblem(
            f"verify could not finish: {type(exc).__name__}: {exc}; the store is damaged in "
            "a way verify cannot locate: restore it from a backup",
            type(exc).__name__,
        ) from exc
    if as_json:
        _emit({**msgspec.to_builtins(report), "ok": report.ok})
    else:
        log = report.log
        click.echo(
            f"log: {log.events} events in {log.streams} streams, positions 1..{report.head}, "
            f"head hash {log.head_hash or '-'}"
        )
        if report.damaged:
            click.echo(f"  {report.damaged}")
        for fault in log.faults:
            click.echo(f"  position {fault.position}: {fault.kind}: {fault.detail}")
        if report.replay_error:
            click.echo(f"  the replay stopped: {report.replay_error}")
        if report.projection is not None:
            check = report.projection
            click.echo(
                f"read models at position {check.position}: {check.runs} runs, {check.sweeps} "
                f"sweeps, {check.history_rows} history rows: "
                + ("equal to the replay" if check.ok else "DIFFERENT from the replay")
            )
            for difference in check.differences[:20]:
                click.echo(f"  {difference}")
        elif report.read_model_position == 0:
            click.echo("read models: none stored yet (nothing to compare)")
        if report.read_model_error:
            click.echo(f"  {report.read_model_error}")
        if report.ok:
            click.echo("ok")
        else:
            bad = report.first_bad_position
            where = f" at position {bad}" if bad is not None else ""
            advice = f": {report.advice}" if report.advice else ""
            click.echo(f"FAILED{where}{advice}", err=True)
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


@main.command()
@click.option(
    "--stream",
    "streams",
    multiple=True,
    help="Export only this stream (repeatable; NAME* matches a prefix, e.g. 'run:demo/*').",
)
@click.option("--no-files", is_flag=True, help="Leave out the files runs saved.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here, not stdout."
)
@_store_option
def export(streams: tuple[str, ...], no_files: bool, output: str | None, store: str | None) -> None:
    """Write the log as JSON Lines (stdout): runlog export > log.jsonl"""
    from .._audit._transfer import export_log

    if output is None:
        out = sys.stdout.buffer
        summary = _run(
            lambda: export_log(out, store=store, streams=streams or None, files=not no_files)
        )
    else:
        with _progress("exporting", True) as progress, open(output, "wb") as file:
            summary = _run(
                lambda: export_log(
                    file,
                    store=store,
                    streams=streams or None,
                    files=not no_files,
                    progress=progress,
                )
            )
    click.echo(f"exported {summary.events} events and {summary.files} files", err=True)


@main.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False))
@_store_option
@_json_option
def import_(path: str, store: str | None, as_json: bool) -> None:
    """Add the events and files of an export file to the store (again: adds nothing)."""
    from .._audit._transfer import import_log

    with _progress("importing", not as_json) as progress:
        summary = _run(lambda: import_log(path, store=store, progress=progress))
    if as_json:
        _emit(summary)
        return
    click.echo(
        f"{summary.events} events in the file: {summary.added} added, {summary.skipped} "
        f"already present; {summary.files} files; head is now {summary.head}"
    )
    if summary.times_raised:
        click.echo(
            f"{summary.times_raised} events got a later recorded_at than in the file, to keep "
            "this log's times in order"
        )


# --- the server ------------------------------------------------------------------------


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
    from .._server import load_token
    from .._server import serve as run_server

    try:
        token = load_token(token_file)
    except RunLogError as exc:
        raise _failure(exc) from exc
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
