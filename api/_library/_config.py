"""``run.config``: the run's hyperparameters, a dict with attribute access whose changes
are recorded as ``ConfigUpdated`` events (contract §4.1).

Keys passed to ``init(config=...)`` replace the old values wholesale on a resume. After
``init``, changing an existing key to a different value needs ``allow_val_change=True``
(W&B's client-side rule, so a resumed script cannot silently train with other
hyperparameters than the run it continues). Inside a sweep run the sweep's parameters
are locked: the script's own updates of them are ignored with a warning, as in W&B.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from eventstore import ConfigUpdated, InvalidArgument, default_codec

from .._errors import ConfigChangeError

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["Config", "ConfigChangeError", "config_dict"]


def config_dict(values: object) -> dict[str, Any]:
    """A config as a plain dict: a mapping, or an object with attributes (an
    ``argparse.Namespace``, absl flags)."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        mapping: Mapping[Any, Any] = values
    elif hasattr(values, "__dict__"):
        mapping = {k: v for k, v in vars(values).items() if not k.startswith("_")}
    else:
        raise InvalidArgument(
            f"a config is a dict or an object with attributes, not {type(values).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if type(key) is not str:
            raise InvalidArgument(f"config keys are strings; got {key!r}")
        out[key] = value
    return out


def _same(old: Any, new: Any) -> bool:
    try:
        return old is new or bool(old == new)
    except Exception:  # an array-like whose == is not a truth value
        return old is new


class Config(dict[str, Any]):
    """The run's config: ``config["lr"]``, ``config.lr``, ``config.update(...)``.

    A plain ``dict`` for everything that reads it (``dict(config)``, ``json.dumps``);
    every change is recorded with the run's next write.
    """

    __slots__ = ("_allow_val_change", "_locked", "_run")

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        run: Run | None = None,
        *,
        allow_val_change: bool = False,
        locked: Iterable[str] = (),
    ) -> None:
        super().__init__(values or {})
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_allow_val_change", allow_val_change)
        object.__setattr__(self, "_locked", frozenset(locked))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"the config has no key {name!r} (keys: {', '.join(sorted(self)) or 'none'})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Config.__slots__:
            object.__setattr__(self, name, value)
        else:
            self.update({name: value})

    def __delattr__(self, name: str) -> None:
        self.__delitem__(name)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise InvalidArgument(
            f"config key {key!r} cannot be removed: the config is recorded in the run's "
            "log; set it to None instead"
        )

    def pop(self, key: str, *default: Any) -> Any:
        """Refused, like ``del config[key]``."""
        self.__delitem__(key)

    def popitem(self) -> tuple[str, Any]:
        """Refused, like ``del config[key]``."""
        raise InvalidArgument("config keys cannot be removed: the config is recorded in the log")

    def clear(self) -> None:
        """Refused, like ``del config[key]``."""
        raise InvalidArgument("config keys cannot be removed: the config is recorded in the log")

    def update(  # type: ignore[override]
        self,
        d: object = None,
        allow_val_change: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Set several keys; ``allow_val_change=True`` lets existing keys change value.

        Raises:
            ConfigChangeError: a key already holds a different value.
            InvalidArgument: a key is not a string or a value cannot be stored.
        """
        given = {**config_dict(d), **kwargs}
        allowed = self._allow_val_change if allow_val_change is None else allow_val_change
        changed: dict[str, Any] = {}
        for key, value in given.items():
            if key in self and _same(self[key], value):
                continue
            if key in self._locked:
                warnings.warn(
                    f"Config item {key!r} was locked by the sweep (ignored update to {value!r})",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            if key in self and not allowed:
                raise ConfigChangeError(
                    f"Attempted to change config key {key!r} from {self[key]!r} to {value!r}; "
                    "pass allow_val_change=True to config.update() if you mean it"
                )
            changed[key] = value
        if not changed:
            return
        try:
            default_codec._encoder.encode(changed)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgument(f"config values must be storable: {exc}") from exc
        if self._run is not None:
            run = self._run
            # Not through Run._enqueue: that commits a pending step row first, and a
            # config change must not move the step a later log(step=s) merges into.
            with run._lock:
                run._check_open()
                run._buffer.append(ConfigUpdated(values=changed, incarnation=run.incarnation))
        dict.update(self, changed)

    def setdefaults(self, d: Mapping[str, Any]) -> None:
        """Set the keys of ``d`` that the config does not have yet (W&B's name)."""
        self.update({k: v for k, v in config_dict(d).items() if k not in self})

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, setting it to ``default`` first if it is missing."""
        if key not in self:
            self.update({key: default})
        return self[key]

    def as_dict(self) -> dict[str, Any]:
        """A plain copy."""
        return dict(self)

    def __repr__(self) -> str:
        return f"Config({dict.__repr__(self)})"
