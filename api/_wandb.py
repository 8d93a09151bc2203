"""W&B's module-level API on the blocking facade: ``from api import sync as wandb``.

``init`` takes every keyword argument ``wandb.init`` takes. Those runlog honours are
passed on (``project``, ``id``, ``resume``, ``config``, ``notes``, ``name``, ``tags``,
``group``, ``job_type``, ``dir``, ``settings``, ``reinit``, ``allow_val_change``,
``config_include_keys``/``config_exclude_keys``, ``mode``, ``resume_from``,
``fork_from``); ``entity`` is kept on the run; the others (``save_code``,
``sync_tensorboard``, ``monitor_gym``, ``magic``, ...) are accepted with a warning that
says runlog does not do that. ``docs/wandb.md`` lists every name.

The module keeps the current run in ``api.sync.run``; ``log``, ``finish``,
``config``, ``summary``, ``define_metric``, ``save``, ``restore`` and
``mark_preempting`` act on it, as W&B's do on ``wandb.run``.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import yaml

from eventstore import InvalidArgument

from ._errors import IgnoredArgumentWarning, NoRunError
from ._library._config import config_dict
from ._library._ids import generate_id
from ._library._run import exit_code_for
from ._library._settings import Settings as RunlogSettings
from ._library._settings import env

if TYPE_CHECKING:
    from .sync import SyncRun

__all__ = [
    "IgnoredArgumentWarning",
    "NoRunError",
    "RestoredFile",
    "Settings",
    "agent",
    "define_metric",
    "finish",
    "init",
    "log",
    "login",
    "mark_preempting",
    "restore",
    "save",
    "sweep",
    "util",
    "watch",
]


# What runlog does instead, for W&B init arguments it accepts but does not honour.
_NOT_HONOURED = {
    "save_code": "runlog does not snapshot source code; keep it with run.save(path)",
    "anonymous": "runlog has no accounts; every run is local to its store",
    "magic": "runlog does not patch frameworks to log automatically",
    "monitor_gym": "runlog does not record gym videos",
    "sync_tensorboard": "runlog does not read TensorBoard event files; log the metrics",
    "tensorboard": "runlog does not read TensorBoard event files; log the metrics",
    "force": "runlog needs no login, so there is nothing to force",
    "id_prefix": "runlog does not prefix generated ids",
}
_MODES = ("online", "offline", "disabled", "shared")
# wandb.Settings names runlog has an equivalent for: W&B name -> runlog init argument.
_SETTINGS = {
    "run_id": "id",
    "project": "project",
    "resume": "resume",
    "root_dir": "dir",
    "mode": "mode",
    "reinit": "reinit",
    "entity": "entity",
    "run_name": "name",
    "run_notes": "notes",
    "run_tags": "tags",
    "run_group": "group",
    "run_job_type": "job_type",
    "resume_from": "resume_from",
    "fork_from": "fork_from",
    "allow_val_change": "allow_val_change",
}


class Settings(dict[str, Any]):
    """``wandb.Settings(...)``: any W&B setting is accepted; ``init`` uses those runlog
    has (``run_id``, ``project``, ``resume``, ``root_dir``, ``mode``, ``reinit``, ...)
    and warns about the others. runlog's own ``api.Settings`` is accepted too."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _State:
    """The module's current run (``api.sync.run``)."""

    run: SyncRun | None = None


_state = _State()


def _warn(message: str) -> None:
    warnings.warn(message, IgnoredArgumentWarning, stacklevel=4)


def _load_config(config: object) -> dict[str, Any]:
    """``config=``: a dict, an argparse Namespace, or a path to a YAML/JSON file."""
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidArgument(f"cannot read the config file {path}: {exc}") from exc
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise InvalidArgument(f"the config file {path} does not hold a mapping")
        # W&B's config-defaults.yaml form: {"lr": {"value": 0.1, "desc": ...}}
        return {
            k: v["value"]
            if isinstance(v, dict) and set(v) <= {"value", "desc"} and "value" in v
            else v
            for k, v in loaded.items()
        }
    return config_dict(config)


def _split_settings(
    settings: object, kwargs: dict[str, Any]
) -> RunlogSettings | dict[str, Any] | None:
    """Fold a ``wandb.Settings``/dict into ``kwargs`` (explicit arguments win) and return
    what runlog's own ``settings=`` takes."""
    if settings is None or isinstance(settings, RunlogSettings):
        return settings
    if not isinstance(settings, Mapping):
        items = {k: v for k, v in vars(settings).items() if not k.startswith("_")}
    else:
        items = dict(settings)
    own = set(RunlogSettings.__struct_fields__)
    runlog_settings: dict[str, Any] = {}
    for key, value in items.items():
        if value is None:
            continue
        if key in own and key not in ("id", "project", "resume", "dir"):
            runlog_settings[key] = value
        elif key in _SETTINGS or key in own:
            target = _SETTINGS.get(key, key)
            if kwargs.get(target) is None:
                kwargs[target] = value
        else:
            _warn(f"settings {key}={value!r} has no runlog equivalent and is ignored")
    return runlog_settings or None


def init(*args: Any, **kwargs: Any) -> SyncRun:
    """``wandb.init``: start or continue a run and make it ``api.sync.run``.

    Positional arguments are runlog's (``project``, ``id``). ``reinit`` decides what
    happens when a run is already active: ``None``/``False``/``"default"``/
    ``"return_previous"`` return it, ``True``/``"finish_previous"`` finish it first,
    ``"create_new"`` starts another without changing ``api.sync.run``.

    Raises:
        RunAlreadyExists, RunNotFound, ...: the resume rules, as ``api.init``.
        InvalidArgument: a value runlog cannot use (an unknown ``mode``, a bad config).
    """
    from . import sync

    kwargs = dict(kwargs)
    settings = _split_settings(kwargs.pop("settings", None), kwargs)
    entity = kwargs.pop("entity", None)
    for name, reason in _NOT_HONOURED.items():
        value = kwargs.pop(name, None)
        if value is not None and value is not False and value != "never":
            _warn(f"init({name}={value!r}) is accepted and ignored: {reason}")
    mode = kwargs.pop("mode", None) or env("MODE")
    if mode is not None and mode not in _MODES:
        raise InvalidArgument(f"mode={mode!r}: use one of {', '.join(_MODES)}")
    if mode == "online":
        _warn(
            'mode="online": runlog has no cloud service; the run is recorded in the store '
            "(RUNLOG_STORE, a server URL, or the local file), as offline"
        )
    elif mode == "shared":
        _warn('mode="shared": runlog has one writer per run (fencing); recorded as offline')
    elif mode == "disabled":
        kwargs["store"] = ":memory:"  # a real run whose log vanishes with the process
    allow_val_change = bool(kwargs.pop("allow_val_change", None))
    include = kwargs.pop("config_include_keys", None)
    exclude = kwargs.pop("config_exclude_keys", None)
    if include and exclude:
        raise InvalidArgument("pass config_include_keys or config_exclude_keys, not both")
    config = kwargs.pop("config", None)
    if config is not None:
        config = _load_config(config)
        if include:
            config = {k: v for k, v in config.items() if k in include}
        if exclude:
            config = {k: v for k, v in config.items() if k not in exclude}
        kwargs["config"] = config
    tags = kwargs.get("tags")
    if tags is not None and not isinstance(tags, list):
        kwargs["tags"] = list(tags)
    reinit = kwargs.pop("reinit", None)
    current = _state.run
    if current is not None and current.finished:
        current = _state.run = None
    if current is not None and reinit in (None, False, "default", "return_previous"):
        _warn(
            f"init() while run {current.id!r} is active returns that run "
            '(pass reinit="finish_previous" to start another)'
        )
        return current
    if current is not None and reinit in (True, "finish_previous"):
        current.finish()
    runlog_reinit = "create_new" if reinit == "create_new" else None
    run = sync._start(*args, settings=settings, reinit=runlog_reinit, **kwargs)
    run._run.entity = entity
    object.__setattr__(run._run.config, "_allow_val_change", allow_val_change)
    if reinit != "create_new" or _state.run is None:
        _state.run = run
    return run


def _current(name: str) -> SyncRun:
    run = _state.run
    if run is None or run.finished:
        raise NoRunError(f"You must call init() before {name}()")
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``wandb.log``: log to ``api.sync.run`` (see ``Run.log``)."""
    run = _state.run
    if run is None:
        raise NoRunError("You must call init() before log()")
    run.log(data, step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """``wandb.finish``: finish ``api.sync.run`` (no-op without one)."""

    run = _state.run
    if run is None:
        return
    run.finish(0 if exit_code is None else exit_code)
    _state.run = None


def mark_preempting() -> None:
    """``wandb.mark_preempting``: see ``Run.mark_preempting``."""
    _current("mark_preempting").mark_preempting()


def define_metric(name: str, step_metric: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """``wandb.define_metric``: see ``Run.define_metric``."""
    return _current("define_metric")._run.define_metric(name, step_metric, **kwargs)


def save(
    glob_str: str | os.PathLike[str],
    base_path: str | os.PathLike[str] | None = None,
    policy: str = "live",
) -> list[str]:
    """``wandb.save``: keep a copy of every file matching ``glob_str`` with the run, now.

    Names are relative to ``base_path`` (default: the file's directory). W&B's
    ``policy`` ("live", "now", "end") is accepted; runlog always saves at once.
    """
    run = _current("save")
    if policy not in ("live", "now", "end"):
        raise InvalidArgument(f'policy={policy!r}: use "live", "now" or "end"')
    pattern = os.fspath(glob_str)
    paths = [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]
    if not paths:
        raise InvalidArgument(f"no file matches {pattern!r}")
    names = []
    for path in paths:
        name = (
            path.absolute().relative_to(Path(base_path).absolute()).as_posix()
            if base_path is not None
            else path.name
        )
        names.append(run.save(path, name))
    return names


class RestoredFile:
    """What ``wandb.restore`` returns: ``.name`` is the local path of the restored file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    def __fspath__(self) -> str:
        return self.name

    def read(self) -> str:
        """The file's text."""
        return self.path.read_text()

    def __repr__(self) -> str:
        return f"RestoredFile({self.name!r})"


def restore(
    name: str,
    run_path: str | None = None,
    replace: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> RestoredFile:
    """``wandb.restore``: write the current run's saved file ``name`` to ``root`` (default:
    the run's directory) and return it; ``.name`` is the local path.

    Raises:
        InvalidArgument: the run saved no such file, or ``run_path`` names another run.
    """
    run = _current("restore")
    if run_path is not None and run_path.rsplit("/", 1)[-1] != run.id:
        raise InvalidArgument(
            f"restore(run_path={run_path!r}): runlog restores files of the current run only; "
            "resume that run to get its files"
        )
    target = Path(root) / name if root is not None else None
    if target is not None and target.exists() and not replace:
        return RestoredFile(target)
    return RestoredFile(run.restore(name, target))


def sweep(
    sweep: Mapping[str, Any] | str | os.PathLike[str],
    entity: str | None = None,
    project: str | None = None,
    prior_runs: Sequence[str] | None = None,
) -> str:
    """``wandb.sweep``: create a sweep from its config and return its id."""
    from . import sync
    from ._sweeping._sweeps import create_sweep

    if entity is not None:
        _warn("sweep(entity=...) is accepted and ignored: the project is runlog's namespace")
    if prior_runs:
        _warn("sweep(prior_runs=...) is accepted and ignored: runlog does not import runs")
    return sync._thread.call(create_sweep(sweep, project=project))


def agent(
    sweep_id: str,
    function: Callable[[], object] | None = None,
    entity: str | None = None,
    project: str | None = None,
    count: int | None = None,
) -> int:
    """``wandb.agent``: run ``function`` for runs of the sweep in this process, at most
    ``count`` times; return how many ran. ``function`` calls ``init()`` (which picks up
    the run id and parameters) and ``log``, as in W&B."""
    import asyncio

    from ._sweeping._agent import agent as run_agent

    if function is None:
        raise InvalidArgument("agent() needs function=; runlog agent runs commands from the CLI")
    if entity is not None or project is not None:
        _warn("agent(entity=, project=) are accepted and ignored: the sweep id names the sweep")

    def call() -> None:
        try:
            function()
        except BaseException as exc:
            run = _state.run
            if run is not None and not run.finished:
                run.finish(exit_code_for(exc)[0])
            raise
        finish()  # as W&B does after each call, so the next run starts fresh

    # The agent's loop runs here; init() inside function uses the facade's own thread.
    return asyncio.run(run_agent(sweep_id, call, count=count))


def login(*args: Any, **kwargs: Any) -> bool:
    """``wandb.login``: runlog has no accounts; always True."""
    return True


def watch(*args: Any, **kwargs: Any) -> None:
    """``wandb.watch``: accepted and ignored with a warning (no gradient histograms)."""
    _warn("watch() is accepted and ignored: runlog does not record gradients or parameters")


def _generate_id(length: int = 8) -> str:
    return generate_id(length)


util = SimpleNamespace(generate_id=_generate_id)
"""``wandb.util``: ``util.generate_id()`` is runlog's id generator (8 characters of a-z0-9)."""


class _ModuleView(MutableMapping[str, Any]):
    """``api.sync.config`` / ``api.sync.summary``: the current run's, whichever it is."""

    def __init__(self, attribute: str) -> None:
        object.__setattr__(self, "_attribute", attribute)

    def _target(self) -> Any:
        run = _state.run
        if run is None:
            raise NoRunError(f"You must call init() before using {self._attribute}")
        return getattr(run._run, self._attribute)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def __getitem__(self, key: str) -> Any:
        return self._target()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._target()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._target()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._target())

    def __len__(self) -> int:
        return len(self._target())

    def __contains__(self, key: object) -> bool:
        return key in self._target()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """The current run's ``update`` (``config.update(d, allow_val_change=)``)."""
        self._target().update(*args, **kwargs)

    def __repr__(self) -> str:
        run = _state.run
        return repr(self._target()) if run is not None else f"<{self._attribute}: no run>"


config = _ModuleView("config")
summary = _ModuleView("summary")
