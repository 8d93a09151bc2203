"""Errors of the training library, under ``eventstore.RunLogError``.

::

    RunLogError
    ├── InvalidArgument (ValueError)
    │   ├── InvalidRunId
    │   └── ConfigurationError          a RUNLOG_/WANDB_ variable has a bad value
    ├── ResumeError
    │   ├── RunNotFound                 resume="must" and the run never started
    │   ├── RunAlreadyExists            the run exists and resume does not allow continuing it
    │   └── ActiveRunError              resume="must" while another run is active here
    ├── RunFinishedError                the run was finished; it takes no more writes
    ├── InvalidArgument > ValueNotStored  the store refused an event log() had accepted
    └── StoreError > ConcurrencyError > FencedWriter   a newer incarnation took over
"""

from __future__ import annotations

from eventstore import InvalidArgument, RunLogError

__all__ = [
    "ActiveRunError",
    "ConfigurationError",
    "InvalidRunId",
    "ResumeError",
    "RunAlreadyExists",
    "RunFinishedError",
    "RunNotFound",
    "StepDroppedWarning",
    "ValueNotStored",
]


class InvalidRunId(InvalidArgument):
    """A run id breaks the id rules (contract §1); it is never rewritten, only refused."""


class ConfigurationError(InvalidArgument):
    """An environment variable such as ``RUNLOG_RESUME`` holds a value runlog cannot use."""


class ResumeError(RunLogError):
    """``init`` cannot create or continue the run the way ``resume`` asks."""


class RunNotFound(ResumeError):
    """The run does not exist: ``resume="must"`` names a run never started, or a query
    names a run the log never mentions."""


class RunAlreadyExists(ResumeError):
    """The run exists and ``resume`` is unset or ``"never"``; nothing is overwritten."""


class ActiveRunError(ResumeError):
    """``resume="must"`` while another run of this process is still active."""


class RunFinishedError(RunLogError):
    """The run was finished (or fenced); it takes no more writes."""


class ValueNotStored(InvalidArgument):
    """The store refused an event that ``log`` had accepted (a row merged past the size
    limit, say); it was left out and every other event was written. Raised once, by the
    next ``flush``/``save``/``mark_preempting``."""


class StepDroppedWarning(UserWarning):
    """``log(step=s)`` with ``s`` below the current step: the row is not written.

    Emitted once per run (every dropped row is counted in ``run.dropped_steps``). Turn
    it into an error with ``warnings.simplefilter("error", StepDroppedWarning)``.
    """
