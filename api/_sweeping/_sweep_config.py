"""Sweep configs (contract §9.5): parsed from a dict or a YAML file, validated, searched.

A config is validated once, with errors that name the offending key
(``parameters.lr.max: ...``). What W&B's own tooling accepts with a warning (unknown
top-level keys, misspelt parameter keys, the old exponent-bound distribution names) is
accepted here too, with a ``SweepConfigWarning`` that names the key.

Parameters are taken in sorted name order at every nesting level, as W&B's reference
does, so grid cells come in the same order and ``run_cap`` cuts the same ones. Grid
search proposes combinations in that order; random search draws each suggestion from a
generator seeded with (sweep seed, suggestion index), so the n-th suggestion of a sweep
is the same on every replay. A nested parameter (``{parameters: {...}}``) produces a
dict that replaces that key of the run's config wholesale.
"""

from __future__ import annotations

import math
import os
import random
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from .._errors import SweepConfigError, SweepConfigWarning
from ._sweep_params import (
    GRID_DISTRIBUTIONS,
    GRID_VALUES_LIMIT,
    Parameter,
    did_you_mean,
    is_number,
    parse_parameter,
    value_key,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_TOP_LEVEL = {
    "method", "parameters", "metric", "run_cap", "early_terminate", "program", "command",
    "name", "description", "project", "entity", "controller", "apiVersion", "kind", "job",
    "image_uri", "metrics", "scheduler",
}  # fmt: skip

__all__ = [
    "Parameter",
    "SweepConfig",
    "SweepConfigError",
    "SweepConfigWarning",
    "load_sweep_config",
    "parse_sweep_config",
    "sweep_id_of",
]


class SweepConfig(msgspec.Struct, frozen=True):
    """A validated sweep config; ``raw`` is what was given (stored in ``SweepCreated``).

    ``parameters`` are in W&B's order (sorted by name at each nesting level);
    ``warnings`` holds what ``load_sweep_config`` reported as ``SweepConfigWarning``.
    """

    method: Literal["grid", "random", "bayes"]
    parameters: tuple[Parameter, ...]
    metric_name: str | None
    metric_goal: Literal["minimize", "maximize"]
    metric_target: float | None
    run_cap: int | None
    raw: dict[str, Any]
    warnings: tuple[str, ...] = ()
    impute: Literal["worst", "best", "latest"] = "worst"
    impute_while_running: Literal["worst", "best", "latest"] | None = None

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every combination, in order (the first parameter varies slowest)."""
        for index in range(self.grid_size()):
            yield self.grid_cell(index)

    def grid_cell(self, index: int) -> dict[str, Any]:
        """The ``index``-th combination of ``grid()``, computed directly."""
        chosen: list[Any] = []
        for parameter in reversed(self.parameters):
            index, digit = divmod(index, parameter.grid_count())
            chosen.append(parameter.grid_value(digit))
        return self.params(chosen[::-1])

    def grid_size(self) -> int:
        """How many combinations the grid has."""
        return math.prod(p.grid_count() for p in self.parameters)

    def suggestion(self, seed: int, index: int) -> dict[str, Any]:
        """The ``index``-th random suggestion of a sweep seeded with ``seed``."""
        rng = random.Random(f"runlog-sweep:{seed}:{index}")
        return self.params([p.sample(rng) for p in self.parameters])

    def params(self, values: Sequence[Any]) -> dict[str, Any]:
        """A run's parameters from one value per parameter (in ``parameters`` order):
        nested parameters become dicts under their top-level key."""
        out: dict[str, Any] = {}
        for parameter, value in zip(self.parameters, values, strict=True):
            *parents, leaf = parameter.keys
            node = out
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return out

    def value_of(self, params: Mapping[str, Any], parameter: Parameter) -> Any:
        """The value ``parameter`` has in a run's parameters (``KeyError`` if absent)."""
        node: Any = params
        for key in parameter.keys:
            if not isinstance(node, Mapping):
                raise KeyError(parameter.name)
            node = node[key]
        return node


def combination_key(params: Mapping[str, Any]) -> bytes:
    """A comparable form of a parameter combination: integral floats count as ints and
    dict keys are sorted at every level (as W&B's grid compares them)."""
    return value_key(dict(params))


def sweep_id_of(text: str) -> str:
    """The sweep id in ``text``: a bare id, or W&B's ``entity/project/ID`` or
    ``project/ID`` form (the sweep id is the last part).

    Raises:
        SweepConfigError: an empty part, as in ``entity//ID`` or ``ID/``.
    """
    parts = text.split("/")
    if len(parts) > 3 or not all(parts):
        raise SweepConfigError(
            f"{text!r} is not a sweep id: give ID, project/ID or entity/project/ID"
        )
    return parts[-1]


def load_sweep_config(source: Mapping[str, Any] | str | os.PathLike[str]) -> SweepConfig:
    """Validate a sweep config given as a dict or as the path of a YAML (or JSON) file.

    What W&B accepts with a warning is accepted with a ``SweepConfigWarning`` per
    problem (also kept in ``SweepConfig.warnings``).

    Raises:
        SweepConfigError: naming the offending key.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise SweepConfigError(f"cannot read the sweep config {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise SweepConfigError(f"{path} is not valid YAML: {exc}") from exc
    else:
        raw = source
    parsed = parse_sweep_config(raw)
    for message in parsed.warnings:
        warnings.warn(message, SweepConfigWarning, stacklevel=2)
    return parsed


def parse_sweep_config(raw: object) -> SweepConfig:
    """Validate a config without emitting warnings (they are in ``.warnings``); for code
    that re-reads a stored config on every decision.

    Raises:
        SweepConfigError: naming the offending key.
    """
    if not isinstance(raw, Mapping):
        raise SweepConfigError("a sweep config is a mapping with 'method' and 'parameters'")
    raw = dict(raw)
    notes: list[str] = []
    for key in sorted(set(raw) - _TOP_LEVEL, key=str):
        notes.append(f"{key}: unknown top-level key, ignored{did_you_mean(key, _TOP_LEVEL)}")
    method = raw.get("method")
    if method == "custom":
        raise SweepConfigError(
            "method: 'custom' (an external scheduler) is not supported; use grid, random or bayes"
        )
    if method not in ("grid", "random", "bayes"):
        raise SweepConfigError(f"method: must be 'grid', 'random' or 'bayes', got {method!r}")
    _controller(raw.get("controller"))
    parameters = raw.get("parameters")
    if not isinstance(parameters, Mapping) or not parameters:
        raise SweepConfigError("parameters: at least one parameter is required")
    parsed = tuple(_parameters(parameters, (), notes))
    if method == "grid":
        for p in parsed:
            if p.distribution not in GRID_DISTRIBUTIONS:
                hint = (
                    "; grid search tries each value once, so drop probabilities"
                    if p.distribution == "categorical_w_probabilities"
                    else ""
                )
                raise SweepConfigError(
                    f"parameters.{p.name}: grid search cannot enumerate a {p.distribution} "
                    f"distribution; use values, value, int_uniform or q_uniform{hint}"
                )
            count = p.grid_count()
            if count == 0:
                raise SweepConfigError(f"parameters.{p.name}: the grid has no value for it")
            if count > GRID_VALUES_LIMIT:
                raise SweepConfigError(
                    f"parameters.{p.name}: the grid would try {count} values for it (at most "
                    f"{GRID_VALUES_LIMIT}); narrow min/max, raise q, or use method: random"
                )
    metric_name, goal, target, impute, while_running = _metric(raw.get("metric"))
    if method == "bayes" and metric_name is None:
        raise SweepConfigError(
            "metric: bayes search needs the metric it optimises, e.g. "
            "metric: {name: val_loss, goal: minimize}"
        )
    run_cap = raw.get("run_cap")
    if run_cap is not None and (
        isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1
    ):
        raise SweepConfigError(f"run_cap: must be an integer > 0, got {run_cap!r}")
    from ._command import check_command  # imported here: both import this module
    from ._hyperband import parse_early_terminate

    check_command(raw)
    parse_early_terminate(raw.get("early_terminate"), raw.get("metric"))
    return SweepConfig(
        method,
        parsed,
        metric_name,
        goal,
        target,
        run_cap,
        raw,
        warnings=tuple(notes),
        impute=impute,
        impute_while_running=while_running,
    )


def _controller(spec: object) -> None:
    if spec is None:
        return
    if not isinstance(spec, Mapping) or spec.get("type") not in ("local", "cloud"):
        raise SweepConfigError("controller: must be {type: local} or {type: cloud}")


def _metric(
    spec: object,
) -> tuple[
    str | None,
    Literal["minimize", "maximize"],
    float | None,
    Literal["worst", "best", "latest"],
    Literal["worst", "best", "latest"] | None,
]:
    if spec is None:
        return None, "minimize", None, "worst", None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise SweepConfigError("metric: must be a mapping with a 'name'")
    goal = spec.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        raise SweepConfigError(f"metric.goal: must be 'minimize' or 'maximize', got {goal!r}")
    target = spec.get("target")
    if target is not None and not is_number(target):
        raise SweepConfigError(f"metric.target: must be a number, got {target!r}")
    impute = spec.get("impute", "worst")
    if impute not in ("worst", "best", "latest"):
        raise SweepConfigError(f"metric.impute: must be worst, best or latest, got {impute!r}")
    while_running = spec.get("impute_while_running", "false")
    if while_running not in ("worst", "best", "latest", "false", False):
        raise SweepConfigError(
            "metric.impute_while_running: must be worst, best, latest or false, "
            f"got {while_running!r}"
        )
    known = {"name", "goal", "target", "impute", "impute_while_running"}
    unknown = sorted(set(spec) - known, key=str)
    if unknown:
        raise SweepConfigError(
            f"metric.{unknown[0]}: unknown key{did_you_mean(str(unknown[0]), known)}"
        )
    return (
        spec["name"],
        goal,
        float(target) if target is not None else None,
        impute,
        None if while_running in ("false", False) else while_running,
    )


def _parameters(
    spec: Mapping[Any, Any], parents: tuple[str, ...], notes: list[str]
) -> Iterator[Parameter]:
    # Sorted, as W&B's reference orders its search space: grid cells (and so run_cap's
    # cut) come out in the same order as W&B's.
    for name in sorted(spec, key=str):
        path = (*parents, str(name))
        where = "parameters." + ".".join(path)
        if not _NAME.match(str(name)):
            raise SweepConfigError(f"{where}: parameter names match {_NAME.pattern}")
        body = spec[name]
        if isinstance(body, Mapping) and "parameters" in body:
            extra = sorted(set(body) - {"parameters"}, key=str)
            if extra:
                raise SweepConfigError(
                    f"{where}: a nested parameter has only 'parameters' (got also {extra[0]})"
                )
            nested = body["parameters"]
            if not isinstance(nested, Mapping) or not nested:
                raise SweepConfigError(
                    f"{where}.parameters: at least one nested parameter is required"
                )
            yield from _parameters(nested, path, notes)
        else:
            yield parse_parameter(path, body, notes)
