"""Reading runs: ``runs``, ``show``, ``history`` (a run's timeline) and ``replay``
(state as of a past position or time)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import msgspec

from eventstore import RunLogError

from ._common import (
    emit,
    json_option,
    progress_bar,
    rich_console,
    run_coroutine,
    store_option,
    time_text,
)

_T = TypeVar("_T")

__all__ = ["history", "replay", "runs", "show"]


@click.command()
@click.option("--project", default=None, help="Only this project's runs.")
@click.option(
    "--status",
    default=None,
    help="Only runs in this status (running, preempting, preempted, finished, failed, crashed, killed).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="At most this many runs (the oldest first), read from an index.",
)
@store_option
@json_option
def runs(
    project: str | None, status: str | None, limit: int | None, store: str | None, as_json: bool
) -> None:
    """List runs, oldest first."""
    from .._audit._queries import list_runs

    found = run_coroutine(
        lambda: list_runs(project=project, status=status, limit=limit, store=store)
    )
    if as_json:
        emit({"runs": found})
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
            time_text(state.updated_us),
        )
    console = rich_console()
    console.print(table)
    console.print(f"{len(found)} runs")


@click.command()
@click.argument("run")
@store_option
@json_option
def show(run: str, store: str | None, as_json: bool) -> None:
    """Show RUN (PROJECT/RUN_ID, or a RUN_ID used in one project only)."""
    from .._audit._queries import show_run

    report = run_coroutine(lambda: show_run(run, store=store))
    if as_json:
        emit(report)
        return
    from rich.table import Table

    state = report.state
    console = rich_console()
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
        ("created", time_text(state.created_us)),
        ("updated", time_text(state.updated_us)),
        ("last heartbeat", time_text(state.last_heartbeat_us)),
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
            time_text(life.started_us),
            str(life.position),
            "resumed" if life.resumed else "started",
            str(life.starting_step),
            life.host or "-",
            str(life.pid),
            life.ended or "-",
        )
    console.print(lives)


@click.command()
@click.argument("run")
@click.option("--since", type=int, default=0, help="Only events at this position or later.")
@click.option("--limit", type=int, default=None, help="At most this many events.")
@click.option(
    "--all-steps",
    is_flag=True,
    help="List every StepLogged (by default a stretch of them is one line).",
)
@store_option
@json_option
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

    with progress_bar("reading the run's events", not as_json) as progress:
        count = run_coroutine(lambda: produce(progress))
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
            time_text(first.recorded_at_us),
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
            parts.append(f"{name[:-3]}: {time_text(before)} -> {time_text(after)}")
        else:
            parts.append(f"{name}: {_short(before)} -> {_short(after)}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


@click.command()
@click.argument("target", required=False)
@click.option("--until", type=int, default=None, help="Replay up to this log position.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Replay up to this time: ISO 8601 (2026-11-22T12:00:00Z; no zone = local) or @EPOCH.",
)
@store_option
@json_option
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
    with progress_bar("replaying", not as_json) as progress:
        result = run_coroutine(
            lambda: replay_log(
                store=store, until=until, as_of_us=as_of_us, target=target, progress=progress
            )
        )
    if as_json:
        emit(result)
        return
    from rich.table import Table

    console = rich_console()
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
