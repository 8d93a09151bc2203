"""Every error and warning of ``api``, in one tree under ``eventstore.RunLogError``.

::

    RunLogError                         (re-exported as api.RunLogError)
    ├── InvalidArgument (ValueError)
    │   ├── InvalidRunId
    │   ├── ConfigurationError          a RUNLOG_/WANDB_ variable has a bad value
    │   ├── ConfigChangeError           a config key changed without allow_val_change
    │   ├── SweepConfigError            a sweep config is invalid (the key is named)
    │   └── ValueNotStored              the store refused an event log() had accepted
    ├── ResumeError
    │   ├── RunNotFound                 resume="must" and the run never started
    │   ├── RunAlreadyExists            the run exists and resume does not allow continuing it
    │   └── ActiveRunError              resume="must" while another run is active here
    ├── RunFinishedError                the run was finished; it takes no more writes
    │   └── NoRunError                  a module-level function with no active run
    ├── SweepError                      a sweep command its state does not allow
    │   └── SweepNotFound               no sweep with that id
    ├── ExportFileError                 an export file is not one, damaged or cut short
    └── StoreError > ConcurrencyError > FencedWriter   a newer incarnation took over

    UserWarning
    ├── StepDroppedWarning              log(step=s) below the current step
    ├── SweepConfigWarning              part of a sweep config is ignored
    └── IgnoredArgumentWarning          a W&B argument runlog cannot honour

The CLI turns each of them into a one-line message and exit status 1
(``api._cli._common.Failure``); the server into an HTTP problem (``api._server._errors``).
"""

from __future__ import annotations

from eventstore import InvalidArgument, RunLogError

__all__ = [
    "ActiveRunError",
    "ConfigChangeError",
    "ConfigurationError",
    "ExportFileError",
    "IgnoredArgumentWarning",
    "InvalidRunId",
    "NoRunError",
    "ResumeError",
    "RunAlreadyExists",
    "RunFinishedError",
    "RunLogError",
    "RunNotFound",
    "StepDroppedWarning",
    "SweepConfigError",
    "SweepConfigWarning",
    "SweepError",
    "SweepNotFound",
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


class ConfigChangeError(InvalidArgument):
    """A config key that already has a value was given a different one without
    ``allow_val_change=True``."""


class SweepConfigError(InvalidArgument):
    """A sweep config is invalid; the message names the key and what is wrong."""


class SweepConfigWarning(UserWarning):
    """A sweep config is accepted, but part of it is ignored or probably not what was
    meant; the message names the key."""


class SweepError(RunLogError):
    """A sweep command its state does not allow; nothing was written."""


class SweepNotFound(SweepError):
    """No sweep with that id exists in the store."""


class NoRunError(RunFinishedError):
    """A module-level function (``log``, ``config``, ...) was called with no active run:
    call ``init()`` first."""


class IgnoredArgumentWarning(UserWarning):
    """A W&B argument runlog accepts but cannot honour (the message says what it would
    have done)."""


class ExportFileError(RunLogError):
    """An export file is not one, is damaged, or was cut short; nothing was imported."""
