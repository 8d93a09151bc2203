"""Which history rows a run shows after rewinds and forks (contract §3.4).

A rewind (``resume_from="<id>?_step=n"``) hides the rows after step ``n`` that were
logged before it; the events stay in the log, so the history as the log stood at an
earlier position (``history_as_of``) still shows them. A fork (``fork_from``) starts
with its source's visible rows up to its step, as the source was when it was forked,
then its own rows. Everything here is computed from events: the read model keeps one
row per step, and the rules below decide which of them is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore import EventStore, RecordedEvent, StepLogged, run_stream

from ._fold import Fold
from ._readmodel import sample_steps
from ._state import HistoryPoint, RunState

__all__ = ["history_as_of", "visible_rows"]

_MAX_FORK_DEPTH = 64


def visible_rows(
    rows: Sequence[tuple[int, int]], rewinds: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The ``(step, position)`` rows no later rewind hid: a row is hidden by a rewind to
    step ``n`` at position ``p`` when its step is above ``n`` and it was logged before ``p``.
    """
    if not rewinds:
        return list(rows)
    return [
        (step, position)
        for step, position in rows
        if all(step <= cut or position > at for cut, at in rewinds)
    ]


async def _own_rows(
    store: EventStore, project: str, run_id: str, until: int | None
) -> tuple[RunState | None, dict[int, RecordedEvent]]:
    """The run's state as of ``until`` and its visible rows by step (its own stream only)."""
    model = Fold()
    records: dict[int, RecordedEvent] = {}
    async for record in store.read_stream(run_stream(project, run_id)):
        if until is not None and record.position > until:
            break
        model.apply(record)
        for _, _, _, position in model.history:
            records[position] = record
        model.history.clear()
    state = model.runs.get((project, run_id))
    if state is None:
        return None, {}
    by_step: dict[int, RecordedEvent] = {}
    for _position, record in sorted(records.items()):
        event = record.event
        assert isinstance(event, StepLogged)
        by_step[event.step] = record  # a later accepted row of the same step replaces it
    kept = {
        step
        for step, _ in visible_rows([(s, r.position) for s, r in by_step.items()], state.rewinds)
    }
    return state, {step: by_step[step] for step in sorted(kept)}


async def history_as_of(
    store: EventStore,
    project: str,
    run_id: str,
    position: int | None = None,
    *,
    keys: Sequence[str] | None = None,
    start: int | None = None,
    stop: int | None = None,
    points: int | None = None,
) -> list[HistoryPoint]:
    """A run's visible history as the log stood at ``position`` (None: now), read from
    the log: rows a later rewind hid are still there as of an earlier position, and a
    fork's history starts with its source's rows. ``keys``, ``start``, ``stop`` and
    ``points`` select as ``Projector.history`` does."""
    rows = await _rows_as_of(store, project, run_id, position, None, 0)
    rows = [r for r in rows if (start is None or r[0] >= start) and (stop is None or r[0] < stop)]
    if points is not None:
        rows = [rows[i] for i in sample_steps([step for step, _ in rows], points)]
    wanted = set(keys) if keys is not None else None
    out: list[HistoryPoint] = []
    for step, record in rows:
        event = record.event
        assert isinstance(event, StepLogged)
        metrics = event.metrics
        if wanted is not None:
            metrics = {k: v for k, v in metrics.items() if k in wanted}
            if not metrics:
                continue
        out.append(HistoryPoint(step, record.position, record.recorded_at_us, metrics))
    return out


async def rows_as_of(
    store: EventStore,
    project: str,
    run_id: str,
    position: int | None = None,
    up_to_step: int | None = None,
) -> list[tuple[int, RecordedEvent]]:
    """A run's visible history rows, ``(step, its StepLogged record)``, as the log stood
    at ``position`` (None: now), up to ``up_to_step`` if given."""
    return await _rows_as_of(store, project, run_id, position, up_to_step, 0)


async def _rows_as_of(
    store: EventStore,
    project: str,
    run_id: str,
    position: int | None,
    up_to_step: int | None,
    depth: int,
) -> list[tuple[int, RecordedEvent]]:
    state, own = await _own_rows(store, project, run_id, position)
    rows: list[tuple[int, RecordedEvent]] = []
    if state is not None and state.forked_from is not None and depth < _MAX_FORK_DEPTH:
        source_project, source_id, step, source_position = state.forked_from
        rows = await _rows_as_of(store, source_project, source_id, source_position, step, depth + 1)
        # The source's rows come before every rewind of the fork: a rewind into them
        # hides those after its step.
        for cut, _ in state.rewinds:
            rows = [(s, record) for s, record in rows if s <= cut]
    rows.extend(own.items())
    if up_to_step is not None:
        rows = [(step, record) for step, record in rows if step <= up_to_step]
    return rows
