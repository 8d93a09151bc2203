"""The log itself: ``verify`` (the chain and the read models), ``export`` and
``import`` (JSON Lines)."""

from __future__ import annotations

import contextlib
import sys
from typing import TypeVar

import click
import msgspec

from ._common import (
    EXIT_PROBLEM,
    StoreProblem,
    emit,
    json_option,
    progress_bar,
    run_coroutine,
    store_option,
)

_T = TypeVar("_T")

__all__ = ["export", "import_", "rebuild_heads", "verify"]


@click.command()
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
@store_option
@json_option
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
        with progress_bar("verifying", not as_json) as progress:
            report = run_coroutine(
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
        raise StoreProblem(
            f"verify could not finish: {type(exc).__name__}: {exc}; the store is damaged in "
            "a way verify cannot locate: restore it from a backup",
            type(exc).__name__,
        ) from exc
    if as_json:
        emit({**msgspec.to_builtins(report), "ok": report.ok})
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
        if report.heads is not None:
            heads = report.heads
            behind = (
                f" ({heads.behind} behind their streams, caught up when read)"
                if heads.behind
                else ""
            )
            click.echo(
                f"run heads: {heads.heads}{behind}: "
                + ("each the fold of its run's events" if heads.ok else "DIFFERENT from the fold")
            )
            for difference in heads.differences[:20]:
                click.echo(f"  {difference}")
        if report.heads_error:
            click.echo(f"  {report.heads_error}")
        if report.ok:
            click.echo("ok")
        else:
            bad = report.first_bad_position
            where = f" at position {bad}" if bad is not None else ""
            advice = f": {report.advice}" if report.advice else ""
            click.echo(f"FAILED{where}{advice}", err=True)
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


@click.command()
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
@store_option
def export(streams: tuple[str, ...], no_files: bool, output: str | None, store: str | None) -> None:
    """Write the log as JSON Lines (stdout): runlog export > log.jsonl"""
    from .._audit._transfer import export_log

    # `runlog export > log.jsonl`: the bar goes to stderr when that is a terminal and
    # the events are not being printed on it.
    shown = output is not None or not sys.stdout.isatty()
    with contextlib.ExitStack() as stack:
        progress = stack.enter_context(progress_bar("exporting", shown))
        out = stack.enter_context(open(output, "wb")) if output is not None else sys.stdout.buffer
        summary = run_coroutine(
            lambda: export_log(
                out,
                store=store,
                streams=streams or None,
                files=not no_files,
                progress=progress,
            )
        )
    click.echo(f"exported {summary.events} events and {summary.files} files", err=True)


@click.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False))
@store_option
@json_option
def import_(path: str, store: str | None, as_json: bool) -> None:
    """Add the events and files of an export file to the store (again: adds nothing)."""
    from .._audit._transfer import import_log

    with progress_bar("importing", not as_json) as progress:
        summary = run_coroutine(lambda: import_log(path, store=store, progress=progress))
    if as_json:
        emit(summary)
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


@click.command(name="rebuild-heads")
@store_option
@json_option
def rebuild_heads(store: str | None, as_json: bool) -> None:
    """Recompute the run heads (each run's state, kept inline) from the log."""
    from .._audit._heads import rebuild_heads as rebuild

    count = run_coroutine(lambda: rebuild(store=store))
    if as_json:
        emit({"heads": count})
        return
    click.echo(f"{count} run heads recomputed from the log")
