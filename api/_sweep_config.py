"""Sweep configs (contract §9.5): parsed from a dict or a YAML file, validated, searched.

A config is validated once, with errors that name the offending key
(``parameters.lr.max: ...``). Grid search proposes combinations in order; random search
draws each suggestion from a generator seeded with (sweep seed, suggestion index), so
the n-th suggestion of a sweep is the same on every replay.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from eventstore import InvalidArgument

__all__ = ["Parameter", "SweepConfig", "SweepConfigError", "load_sweep_config"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_DISTRIBUTIONS = (
    "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform",
    "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values",
    "inv_log_uniform", "inv_log_uniform_values", "normal", "q_normal", "log_normal",
    "q_log_normal", "beta", "q_beta",
)  # fmt: skip
_GRID_DISTRIBUTIONS = (
    "constant",
    "categorical",
    "categorical_w_probabilities",
    "int_uniform",
    "q_uniform",
)
_TOP_LEVEL = {
    "method", "parameters", "metric", "run_cap", "early_terminate", "program", "command",
    "name", "description", "project", "entity",
}  # fmt: skip


class SweepConfigError(InvalidArgument):
    """A sweep config is invalid; the message names the key and what is wrong."""


class Parameter(msgspec.Struct, frozen=True):
    """One parameter of a sweep: its distribution and the numbers that define it."""

    name: str
    distribution: str
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] = ()
    min: float = 0.0
    max: float = 0.0
    q: float = 1.0
    mu: float = 0.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = 1.0

    def grid_values(self) -> list[Any]:
        """The values a grid search tries, in order."""
        if self.distribution == "constant":
            return [self.value]
        if self.distribution in ("categorical", "categorical_w_probabilities"):
            return list(self.values)
        if self.distribution == "int_uniform":
            return list(range(int(self.min), int(self.max) + 1))
        # q_uniform: min, min + q, ... below max
        count = math.ceil((self.max - self.min) / self.q - 1e-9)
        return [_tidy(self.min + i * self.q) for i in range(max(count, 0))]

    def sample(self, rng: random.Random) -> Any:
        """One random value."""
        d = self.distribution
        if d == "constant":
            return self.value
        if d == "categorical":
            return rng.choice(self.values)
        if d == "categorical_w_probabilities":
            return rng.choices(self.values, weights=self.probabilities)[0]
        if d == "int_uniform":
            return rng.randint(int(self.min), int(self.max))
        if d == "uniform":
            return rng.uniform(self.min, self.max)
        if d == "q_uniform":
            return _quantize(rng.uniform(self.min, self.max), self.q)
        if d in ("log_uniform", "q_log_uniform"):
            x = math.exp(rng.uniform(self.min, self.max))
            return x if d == "log_uniform" else _quantize(x, self.q)
        if d in ("log_uniform_values", "q_log_uniform_values"):
            x = math.exp(rng.uniform(math.log(self.min), math.log(self.max)))
            return x if d == "log_uniform_values" else _quantize(x, self.q)
        if d == "inv_log_uniform":
            return math.exp(-rng.uniform(self.min, self.max))
        if d == "inv_log_uniform_values":
            return 1 / math.exp(rng.uniform(math.log(1 / self.max), math.log(1 / self.min)))
        if d in ("normal", "q_normal"):
            x = rng.gauss(self.mu, self.sigma)
            return x if d == "normal" else _quantize(x, self.q)
        if d in ("log_normal", "q_log_normal"):
            x = math.exp(rng.gauss(self.mu, self.sigma))
            return x if d == "log_normal" else _quantize(x, self.q)
        x = rng.betavariate(self.a, self.b)  # beta, q_beta
        return x if d == "beta" else _quantize(x, self.q)


class SweepConfig(msgspec.Struct, frozen=True):
    """A validated sweep config; ``raw`` is what was given (stored in ``SweepCreated``)."""

    method: Literal["grid", "random"]
    parameters: tuple[Parameter, ...]
    metric_name: str | None
    metric_goal: Literal["minimize", "maximize"]
    metric_target: float | None
    run_cap: int | None
    raw: dict[str, Any]

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every combination, in order (the first parameter varies slowest)."""
        names = [p.name for p in self.parameters]
        for combination in itertools.product(*(p.grid_values() for p in self.parameters)):
            yield dict(zip(names, combination, strict=True))

    def grid_cell(self, index: int) -> dict[str, Any]:
        """The ``index``-th combination of ``grid()``, computed directly."""
        values = [p.grid_values() for p in self.parameters]
        cell: dict[str, Any] = {}
        for parameter, options in zip(reversed(self.parameters), reversed(values), strict=True):
            index, digit = divmod(index, len(options))
            cell[parameter.name] = options[digit]
        return {p.name: cell[p.name] for p in self.parameters}

    def grid_size(self) -> int:
        """How many combinations the grid has."""
        return math.prod(len(p.grid_values()) for p in self.parameters)

    def suggestion(self, seed: int, index: int) -> dict[str, Any]:
        """The ``index``-th random suggestion of a sweep seeded with ``seed``."""
        rng = random.Random(f"runlog-sweep:{seed}:{index}")
        return {p.name: p.sample(rng) for p in self.parameters}


def combination_key(params: Mapping[str, Any]) -> bytes:
    """A comparable form of a parameter combination: integral floats count as ints."""
    return msgspec.json.encode({k: _normal(v) for k, v in sorted(params.items())})


def load_sweep_config(source: Mapping[str, Any] | str | os.PathLike[str]) -> SweepConfig:
    """Validate a sweep config given as a dict or as the path of a YAML (or JSON) file.

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
    if not isinstance(raw, Mapping):
        raise SweepConfigError("a sweep config is a mapping with 'method' and 'parameters'")
    raw = dict(raw)
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise SweepConfigError(f"{unknown[0]}: unknown key; known keys: {sorted(_TOP_LEVEL)}")
    method = raw.get("method")
    if method == "bayes":
        raise SweepConfigError("method: 'bayes' is not supported yet; use 'grid' or 'random'")
    if method not in ("grid", "random"):
        raise SweepConfigError(f"method: must be 'grid' or 'random', got {method!r}")
    parameters = raw.get("parameters")
    if not isinstance(parameters, Mapping) or not parameters:
        raise SweepConfigError("parameters: at least one parameter is required")
    parsed = tuple(_parameter(str(name), spec) for name, spec in parameters.items())
    if method == "grid":
        for p in parsed:
            if p.distribution not in _GRID_DISTRIBUTIONS:
                raise SweepConfigError(
                    f"parameters.{p.name}: grid search cannot enumerate a {p.distribution} "
                    "distribution; use values, value, int_uniform or q_uniform"
                )
            if not p.grid_values():
                raise SweepConfigError(f"parameters.{p.name}: the grid has no value for it")
    metric_name, goal, target = _metric(raw.get("metric"))
    run_cap = raw.get("run_cap")
    if run_cap is not None and (
        isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1
    ):
        raise SweepConfigError(f"run_cap: must be an integer > 0, got {run_cap!r}")
    from ._command import check_command  # imported here: both import this module
    from ._hyperband import parse_early_terminate

    check_command(raw)
    parse_early_terminate(raw.get("early_terminate"), raw.get("metric"))
    return SweepConfig(method, parsed, metric_name, goal, target, run_cap, raw)


def _metric(spec: object) -> tuple[str | None, Literal["minimize", "maximize"], float | None]:
    if spec is None:
        return None, "minimize", None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise SweepConfigError("metric: must be a mapping with a 'name'")
    goal = spec.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        raise SweepConfigError(f"metric.goal: must be 'minimize' or 'maximize', got {goal!r}")
    target = spec.get("target")
    if target is not None and not _is_number(target):
        raise SweepConfigError(f"metric.target: must be a number, got {target!r}")
    unknown = sorted(set(spec) - {"name", "goal", "target", "impute"})
    if unknown:
        raise SweepConfigError(f"metric.{unknown[0]}: unknown key")
    return spec["name"], goal, float(target) if target is not None else None


def _parameter(name: str, spec: object) -> Parameter:
    where = f"parameters.{name}"
    if not _NAME.match(name):
        raise SweepConfigError(f"{where}: parameter names match {_NAME.pattern}")
    if not isinstance(spec, Mapping):
        raise SweepConfigError(f"{where}: must be a mapping such as {{values: [...]}}")
    if "parameters" in spec:
        raise SweepConfigError(f"{where}.parameters: nested parameters are not supported yet")
    if "distribution" not in spec:  # with a distribution, value/values/min/max are its arguments
        forms = [k for k in ("value", "values") if k in spec]
        if "min" in spec or "max" in spec:
            forms.append("min/max")
        if len(forms) != 1:
            raise SweepConfigError(
                f"{where}: give exactly one of value, values, min/max or distribution"
                + (f" (got {' and '.join(forms)})" if forms else "")
            )
    distribution = spec.get("distribution")
    if distribution is None:
        if "value" in spec:
            distribution = "constant"
        elif "values" in spec:
            distribution = (
                "categorical_w_probabilities" if "probabilities" in spec else "categorical"
            )
        else:
            lo, hi = spec.get("min"), spec.get("max")
            both_int = isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool)
            distribution = "int_uniform" if both_int else "uniform"
    if distribution not in _DISTRIBUTIONS:
        raise SweepConfigError(f"{where}.distribution: unknown distribution {distribution!r}")
    fields: dict[str, Any] = {"name": name, "distribution": distribution}
    if distribution == "constant":
        if "value" not in spec:
            raise SweepConfigError(f"{where}.value: a constant needs a value")
        fields["value"] = spec["value"]
    elif distribution.startswith("categorical"):
        values = spec.get("values")
        if not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise SweepConfigError(f"{where}.values: must be a non-empty list")
        fields["values"] = tuple(values)
        if distribution == "categorical_w_probabilities":
            probabilities = spec.get("probabilities")
            if (
                not isinstance(probabilities, Sequence)
                or len(probabilities) != len(values)
                or not all(_is_number(p) and p >= 0 for p in probabilities)
                or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6)
            ):
                raise SweepConfigError(
                    f"{where}.probabilities: one non-negative number per value, summing to 1"
                )
            fields["probabilities"] = tuple(float(p) for p in probabilities)
    else:
        for key in ("min", "max", "q", "mu", "sigma", "a", "b"):
            if key in spec:
                if not _is_number(spec[key]):
                    raise SweepConfigError(f"{where}.{key}: must be a number, got {spec[key]!r}")
                fields[key] = spec[key]
        needs_range = distribution not in (
            "normal",
            "q_normal",
            "log_normal",
            "q_log_normal",
            "beta",
            "q_beta",
        )
        if needs_range:
            if "min" not in spec or "max" not in spec:
                raise SweepConfigError(f"{where}: {distribution} needs min and max")
            if not fields["min"] < fields["max"]:
                raise SweepConfigError(f"{where}.max: must be greater than min")
            if distribution.endswith("_values") and fields["min"] <= 0:
                raise SweepConfigError(f"{where}.min: {distribution} needs min > 0")
            if distribution == "int_uniform" and not all(
                isinstance(fields[k], int) for k in ("min", "max")
            ):
                raise SweepConfigError(f"{where}: int_uniform needs integer min and max")
        if fields.get("q", 1.0) <= 0:
            raise SweepConfigError(f"{where}.q: must be positive")
        if fields.get("sigma", 1.0) <= 0:
            raise SweepConfigError(f"{where}.sigma: must be positive")
    return Parameter(**fields)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _quantize(value: float, q: float) -> float:
    return _tidy(round(value / q) * q)


def _tidy(value: float) -> float:
    """Remove float noise such as 0.30000000000000004."""
    return float(f"{value:.12g}")


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value
