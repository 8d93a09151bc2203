"""runlog's library for training code: start or resume runs, log, survive preemption.

``await api.init(...)`` (or ``async with api.init(...) as run``) starts or continues a
run; ``run.log``, ``run.mark_preempting``, ``run.save``/``run.restore``,
``run.finish``; ``api.handle_preemption`` installs the recommended signal handling;
``api.sync`` is the same library for plain synchronous training loops.
"""

from eventstore import FencedWriter as FencedWriter
from eventstore import RunLogError as RunLogError

from . import sync as sync
from ._audit._explain import explain as explain
from ._audit._transfer import export_log as export_log
from ._audit._transfer import import_log as import_log
from ._audit._verify import VerifyReport as VerifyReport
from ._audit._verify import verify as verify
from ._errors import ActiveRunError as ActiveRunError
from ._errors import ConfigChangeError as ConfigChangeError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ExportFileError as ExportFileError
from ._errors import IgnoredArgumentWarning as IgnoredArgumentWarning
from ._errors import InvalidRunId as InvalidRunId
from ._errors import NoRunError as NoRunError
from ._errors import ResumeError as ResumeError
from ._errors import RunAlreadyExists as RunAlreadyExists
from ._errors import RunFinishedError as RunFinishedError
from ._errors import RunNotFound as RunNotFound
from ._errors import StepDroppedWarning as StepDroppedWarning
from ._errors import SweepConfigError as SweepConfigError
from ._errors import SweepConfigWarning as SweepConfigWarning
from ._errors import SweepError as SweepError
from ._errors import SweepNotFound as SweepNotFound
from ._errors import ValueNotStored as ValueNotStored
from ._library._config import Config as Config
from ._library._ids import generate_id as generate_id
from ._library._init import init as init
from ._library._preemption import handle_preemption as handle_preemption
from ._library._run import Run as Run
from ._library._settings import Settings as Settings
from ._library._summary import Summary as Summary
from ._sweeping._agent import agent as agent
from ._sweeping._stop import stop_run as stop_run
from ._sweeping._sweep_config import SweepConfig as SweepConfig
from ._sweeping._sweep_config import load_sweep_config as load_sweep_config
from ._sweeping._sweeps import Work as Work
from ._sweeping._sweeps import cancel_sweep as cancel_sweep
from ._sweeping._sweeps import claim as claim
from ._sweeping._sweeps import create_sweep as create_sweep
from ._sweeping._sweeps import pause_sweep as pause_sweep
from ._sweeping._sweeps import reap as reap
from ._sweeping._sweeps import register_agent as register_agent
from ._sweeping._sweeps import resume_sweep as resume_sweep
from ._sweeping._sweeps import stop_sweep as stop_sweep

__all__ = [
    "ActiveRunError",
    "Config",
    "ConfigChangeError",
    "ConfigurationError",
    "ExportFileError",
    "FencedWriter",
    "IgnoredArgumentWarning",
    "InvalidRunId",
    "NoRunError",
    "ResumeError",
    "Run",
    "RunAlreadyExists",
    "RunFinishedError",
    "RunLogError",
    "RunNotFound",
    "Settings",
    "StepDroppedWarning",
    "Summary",
    "SweepConfig",
    "SweepConfigError",
    "SweepConfigWarning",
    "SweepError",
    "SweepNotFound",
    "ValueNotStored",
    "VerifyReport",
    "Work",
    "agent",
    "cancel_sweep",
    "claim",
    "create_sweep",
    "explain",
    "export_log",
    "generate_id",
    "handle_preemption",
    "import_log",
    "init",
    "load_sweep_config",
    "pause_sweep",
    "reap",
    "register_agent",
    "resume_sweep",
    "stop_run",
    "stop_sweep",
    "sync",
    "verify",
]
