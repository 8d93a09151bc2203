"""The names of runlog's streams: one per run, one per sweep.

Every event of a run goes to ``run:{project}/{run_id}``, every decision of a sweep
(its queue, its state) to ``sweep:{sweep_id}``. These helpers are the one place the
names are spelt; other streams are allowed and folds ignore them.
"""

from __future__ import annotations

__all__ = ["parse_stream", "run_stream", "sweep_stream"]


def run_stream(project: str, run_id: str) -> str:
    """The stream of the run ``run_id`` in ``project``: ``run:{project}/{run_id}``."""
    return f"run:{project}/{run_id}"


def sweep_stream(sweep_id: str) -> str:
    """The stream of the sweep ``sweep_id``: ``sweep:{sweep_id}``."""
    return f"sweep:{sweep_id}"


def parse_stream(stream: str) -> tuple[str, str] | None:
    """``("run", "project/run_id")`` or ``("sweep", sweep_id)``, None for other streams."""
    kind, _, rest = stream.partition(":")
    if kind in ("run", "sweep") and rest:
        return kind, rest
    return None
