"""runlog's library for training code: start or resume runs, log, survive preemption.

``await api.init(...)`` (or ``async with api.init(...) as run``) starts or continues a
run; ``run.log``, ``run.mark_preempting``, ``run.save``/``run.restore``,
``run.finish``; ``api.handle_preemption`` installs the recommended signal handling;
``api.sync`` is the same library for plain synchronous training loops.
"""

from eventstore import FencedWriter as FencedWriter

from . import sync as sync
from ._errors import ActiveRunError as ActiveRunError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import InvalidRunId as InvalidRunId
from ._errors import ResumeError as ResumeError
from ._errors import RunAlreadyExists as RunAlreadyExists
from ._errors import RunFinishedError as RunFinishedError
from ._errors import RunNotFound as RunNotFound
from ._errors import StepDroppedWarning as StepDroppedWarning
from ._ids import generate_id as generate_id
from ._init import init as init
from ._preemption import handle_preemption as handle_preemption
from ._run import Run as Run
from ._settings import Settings as Settings

__all__ = [
    "ActiveRunError",
    "ConfigurationError",
    "FencedWriter",
    "InvalidRunId",
    "ResumeError",
    "Run",
    "RunAlreadyExists",
    "RunFinishedError",
    "RunNotFound",
    "Settings",
    "StepDroppedWarning",
    "generate_id",
    "handle_preemption",
    "init",
    "sync",
]
