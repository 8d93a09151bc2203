"""Resolving init's settings: arguments, ``settings=``, environment, defaults (contract §2, §3.1, §5)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from .._errors import ConfigurationError
from ._ids import check_run_id

__all__ = [
    "ResumeMode",
    "Settings",
    "auto_resume_path",
    "env",
    "normalize_resume",
    "read_auto_resume",
    "remove_auto_resume",
    "write_auto_resume",
]

log = logging.getLogger("runlog")

ResumeMode = Literal["allow", "must", "never", "auto"]
_MODES = ("allow", "must", "never", "auto")


class Settings(msgspec.Struct, kw_only=True):
    """Settings for ``init`` below its explicit arguments and above the environment."""

    id: str | None = None
    project: str | None = None
    resume: bool | str | None = None
    dir: str | None = None
    store: str | None = None
    heartbeat_interval: float | None = None


def env(name: str) -> str | None:
    """``RUNLOG_<name>``, else ``WANDB_<name>``; an empty value counts as unset."""
    for prefix in ("RUNLOG_", "WANDB_"):
        value = os.environ.get(prefix + name)
        if value:
            return value
    return None


def env_variable(name: str) -> str | None:
    """The variable ``env(name)`` reads: ``RUNLOG_<name>`` if set, else ``WANDB_<name>``."""
    for prefix in ("RUNLOG_", "WANDB_"):
        if os.environ.get(prefix + name):
            return prefix + name
    return None


def normalize_resume(value: object, *, source: str = "resume") -> ResumeMode | None:
    """Contract §3.1: True -> "auto"; False/None -> unset; the four modes; else an error.

    A ``source`` of ``RUNLOG_<NAME>`` stands for the environment: the error names the
    variable actually set (``WANDB_RESUME`` when only that one is).
    """
    if source.startswith("RUNLOG_"):
        source = env_variable(source.removeprefix("RUNLOG_")) or source
    if value is None or value is False:
        return None
    if value is True:
        return "auto"
    if isinstance(value, str) and value in _MODES:
        return value  # type: ignore[return-value]
    if isinstance(value, str) and source == "resume":
        try:
            check_run_id(value)
        except ValueError:
            pass
        else:
            raise ConfigurationError(
                f"resume={value!r} is not a resume mode; to continue run {value!r} write "
                f'id={value!r}, resume="allow"'
            )
    raise ConfigurationError(
        f"{source}={value!r} is not a resume mode; use 'allow', 'must', 'never' or 'auto'"
        + (" (or True / False / None)" if source == "resume" else "")
    )


def merge(
    explicit: Mapping[str, Any], settings: Settings | Mapping[str, Any] | None
) -> dict[str, Any]:
    """Explicit arguments (those not None) over ``settings``."""
    if settings is None:
        base: dict[str, Any] = {}
    elif isinstance(settings, Settings):
        base = {f: getattr(settings, f) for f in settings.__struct_fields__}
    else:
        unknown = set(settings) - set(Settings.__struct_fields__)
        if unknown:
            raise ConfigurationError(
                f"unknown settings {sorted(unknown)}; known: {list(Settings.__struct_fields__)}"
            )
        base = dict(settings)
    out = {k: v for k, v in base.items() if v is not None}
    out.update({k: v for k, v in explicit.items() if v is not None})
    return out


def root_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``RUNLOG_DIR``/``WANDB_DIR``, else the current directory."""
    return Path(explicit or env("DIR") or ".").expanduser().absolute()


def store_target(explicit: str | os.PathLike[str] | None, root: Path) -> str | os.PathLike[str]:
    """Where a store is: ``explicit``, else ``RUNLOG_STORE``, else ``<root>/runlog/runlog.db``."""
    return explicit or os.environ.get("RUNLOG_STORE") or root / "runlog" / "runlog.db"


def settings_path(root: Path) -> Path:
    """``<root>/runlog/settings.toml``: the settings file, below the environment."""
    return root / "runlog" / "settings.toml"


def read_settings_file(root: Path) -> dict[str, Any]:
    """The settings file's values (empty if there is none).

    Raises:
        ConfigurationError: the file is not valid TOML or names an unknown setting.
    """
    path = settings_path(root)
    try:
        with path.open("rb") as file:
            values = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the settings file {path}: {exc}") from exc
    known = [f for f in Settings.__struct_fields__ if f != "dir"]  # the file lives in dir
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigurationError(
            f"the settings file {path} has unknown settings {sorted(unknown)}; known: {known}"
        )
    return values


def auto_resume_path(root: Path) -> Path:
    """``<root>/runlog/resume.json``."""
    return root / "runlog" / "resume.json"


def read_auto_resume(root: Path) -> str | None:
    """The run id in the auto-resume file, or None (a bad file is ignored with a warning)."""
    path = auto_resume_path(root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable auto-resume file %s: %s", path, exc)
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    if not isinstance(run_id, str):
        log.warning("ignoring the auto-resume file %s: it holds no run_id", path)
        return None
    try:
        return check_run_id(run_id)
    except ValueError as exc:
        log.warning("ignoring the auto-resume file %s: %s", path, exc)
        return None


def write_auto_resume(root: Path, run_id: str) -> None:
    """(Re)write the auto-resume file with ``run_id``, through a temporary file and a rename."""
    path = auto_resume_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".resume.json.{os.getpid()}")
    partial.write_text(json.dumps({"run_id": run_id}))
    os.replace(partial, path)


def remove_auto_resume(root: Path) -> None:
    """Delete the auto-resume file if it exists."""
    with contextlib.suppress(FileNotFoundError):
        auto_resume_path(root).unlink()
