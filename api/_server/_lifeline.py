"""A run's life for the dashboard's timeline: its incarnations as bands over wall time and
steps, and the marks that explain them, each with the log position it comes from.

The read model keeps each run's line current as it folds the log
(``projections._lifeline``), so the timeline of a run with millions of steps is one
indexed row, however long the run; nothing here reads the run's stream.
"""

from __future__ import annotations

from projections import Band, Lifeline, Mark, Projector

__all__ = ["Band", "Lifeline", "Mark", "lifeline_of"]


async def lifeline_of(projector: Projector, project: str, run_id: str) -> Lifeline:
    """The run's timeline with every event folded so far."""
    found = await projector.run_line(project, run_id)
    return found.line if found is not None else Lifeline(project=project, run_id=run_id)
