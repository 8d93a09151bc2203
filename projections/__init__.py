"""Projections: run and sweep state folded from the runlog event log.

``Fold`` is the fold (pure: events in, states out; ``Model`` is its deprecated old name). ``open_projector(store)`` keeps a
read model of it current with the log and answers queries: runs, sweeps with their
queues, metric histories, state as of a past position or time, and a check that the
read model equals a replay from position 0.
"""

from ._copies import RunCopy as RunCopy
from ._fold import Fold as Fold
from ._fold import RunKey as RunKey
from ._heads import HeadsCheck as HeadsCheck
from ._heads import RunHeads as RunHeads
from ._heads import check_heads as check_heads
from ._heads import run_heads as run_heads
from ._lifeline import Band as Band
from ._lifeline import Lifeline as Lifeline
from ._lifeline import Mark as Mark
from ._lifeline import RunLine as RunLine
from ._projector import ProjectionCheck as ProjectionCheck
from ._projector import Projector as Projector
from ._projector import compare_snapshots as compare_snapshots
from ._projector import open_projector as open_projector
from ._readmodel import Snapshot as Snapshot
from ._rewind import history_as_of as history_as_of
from ._rewind import rows_as_of as rows_as_of
from ._rewind import visible_rows as visible_rows
from ._state import AgentInfo as AgentInfo
from ._state import FileRef as FileRef
from ._state import HistoryPoint as HistoryPoint
from ._state import RunState as RunState
from ._state import RunStatus as RunStatus
from ._state import SweepState as SweepState
from ._state import SweepStatus as SweepStatus
from ._summary import check_summary_ops as check_summary_ops
from ._summary import flatten_metrics as flatten_metrics
from ._summary import metric_names as metric_names
from ._summary import summarize as summarize

__all__ = [
    "AgentInfo",
    "Band",
    "FileRef",
    "Fold",
    "HeadsCheck",
    "HistoryPoint",
    "Lifeline",
    "Mark",
    "ProjectionCheck",
    "Projector",
    "RunCopy",
    "RunHeads",
    "RunKey",
    "RunLine",
    "RunState",
    "RunStatus",
    "Snapshot",
    "SweepState",
    "SweepStatus",
    "check_heads",
    "check_summary_ops",
    "compare_snapshots",
    "flatten_metrics",
    "history_as_of",
    "metric_names",
    "open_projector",
    "rows_as_of",
    "run_heads",
    "summarize",
    "visible_rows",
]


def __getattr__(name: str) -> object:
    """``Model``, the fold's old name: still works, with a ``DeprecationWarning``."""
    if name == "Model":
        import warnings

        warnings.warn(
            "projections.Model is deprecated: the fold is projections.Fold",
            DeprecationWarning,
            stacklevel=2,
        )
        return Fold
    raise AttributeError(f"module 'projections' has no attribute {name!r}")
