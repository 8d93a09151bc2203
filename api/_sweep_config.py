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

import difflib
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

from ._errors import SweepConfigError, SweepConfigWarning

__all__ = [
    "Parameter",
    "SweepConfig",
    "SweepConfigError",
    "SweepConfigWarning",
    "load_sweep_config",
    "parse_sweep_config",
    "sweep_id_of",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_DISTRIBUTIONS = (
    "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform",
    "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values",
    "inv_log_uniform", "inv_log_uniform_values", "normal", "q_normal", "log_normal",
    "q_log_normal", "beta", "q_beta",
)  # fmt: skip
_GRID_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")
# Every top-level key of W&B's sweep schema, plus nothing of runlog's own: a config that
# W&B's schema knows is accepted silently, anything else gets a warning.
_TOP_LEVEL = {
    "method", "parameters", "metric", "run_cap", "early_terminate", "program", "command",
    "name", "description", "project", "entity", "controller", "apiVersion", "kind", "job",
    "image_uri", "metrics", "scheduler",
}  # fmt: skip
_PARAMETER_KEYS = (
    "value", "values", "probabilities", "distribution", "min", "max", "q", "mu", "sigma",
    "a", "b", "parameters",
)  # fmt: skip
# The numeric keys each distribution reads; any other numeric key is reported unused.
_USES: dict[str, tuple[str, ...]] = {
    "int_uniform": ("min", "max"),
    "uniform": ("min", "max"),
    "q_uniform": ("min", "max", "q"),
    "log_uniform": ("min", "max"),
    "log_uniform_values": ("min", "max"),
    "q_log_uniform": ("min", "max", "q"),
    "q_log_uniform_values": ("min", "max", "q"),
    "inv_log_uniform": ("min", "max"),
    "inv_log_uniform_values": ("min", "max"),
    "normal": ("mu", "sigma"),
    "q_normal": ("mu", "sigma", "q"),
    "log_normal": ("mu", "sigma"),
    "q_log_normal": ("mu", "sigma", "q"),
    "beta": ("a", "b"),
    "q_beta": ("a", "b", "q"),
}
_NUMERIC_KEYS = ("min", "max", "q", "mu", "sigma", "a", "b")
# W&B deprecated these: their min and max are exponents of e, a frequent surprise.
_EXPONENT_FORMS = {
    "log_uniform": "log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
}
# A grid enumerates values one by one; past this a parameter belongs in random or bayes.
GRID_VALUES_LIMIT = 1_000_000
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class Parameter(msgspec.Struct, frozen=True):
    """One parameter of a sweep: its distribution and the numbers that define it.

    ``name`` is the dotted path shown in messages (``optimizer.lr``); ``path`` holds the
    keys themselves, since names may contain dots.
    """

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
    path: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys leading to this parameter in a run's config."""
        return self.path or (self.name,)

    def grid_count(self) -> int:
        """How many values a grid search tries, computed without listing them."""
        if self.distribution == "constant":
            return 1
        if self.distribution in ("categorical", "categorical_w_probabilities"):
            return len(self.values)
        if self.distribution == "int_uniform":
            return int(self.max) - int(self.min) + 1
        # q_uniform: min, min + q, ... below max
        return max(math.ceil((self.max - self.min) / self.q - 1e-9), 0)

    def grid_value(self, index: int) -> Any:
        """The ``index``-th value of ``grid_values()``."""
        if self.distribution == "constant":
            return self.value
        if self.distribution in ("categorical", "categorical_w_probabilities"):
            return self.values[index]
        if self.distribution == "int_uniform":
            return int(self.min) + index
        x = self.min + index * self.q
        if _integral(self.q) and _integral(self.min):
            return round(x)  # an integer q on an integer start: integers, as in W&B
        return _tidy(x)

    def grid_values(self) -> list[Any]:
        """The values a grid search tries, in order."""
        return [self.grid_value(i) for i in range(self.grid_count())]

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

    def from_unit(self, u: float) -> Any:
        """The value at position ``u`` (0..1) of a numeric parameter's search space,
        quantised by ``q`` where the distribution says so: the map bayes search works
        through. Ranges are linear in the value (log-scale ones in its logarithm); normal
        and log-normal ones are mapped through their quantiles; beta is already 0..1."""
        d = self.distribution
        u = min(max(u, 0.0), 1.0)
        if d == "int_uniform":
            span = int(self.max) - int(self.min) + 1
            return int(self.min) + min(int(u * span), span - 1)
        if d in ("uniform", "q_uniform"):
            x = self.min + u * (self.max - self.min)
        elif d in ("log_uniform", "q_log_uniform"):
            x = math.exp(self.min + u * (self.max - self.min))
        elif d in ("log_uniform_values", "q_log_uniform_values"):
            lo, hi = math.log(self.min), math.log(self.max)
            x = math.exp(lo + u * (hi - lo))
        elif d == "inv_log_uniform":
            x = math.exp(-(self.min + u * (self.max - self.min)))
        elif d == "inv_log_uniform_values":
            lo, hi = math.log(1 / self.max), math.log(1 / self.min)
            x = 1 / math.exp(lo + u * (hi - lo))
        elif d in ("normal", "q_normal"):
            x = self.mu + self.sigma * _probit(u)
        elif d in ("log_normal", "q_log_normal"):
            x = math.exp(self.mu + self.sigma * _probit(u))
        elif d in ("beta", "q_beta"):
            x = u
        else:
            raise ValueError(f"{self.name}: {d} has no numeric quantiles")
        return _quantize(x, self.q) if d.startswith("q_") else x

    def to_unit(self, value: Any) -> float | None:
        """Where ``value`` lies in 0..1 for this numeric distribution (the inverse of
        ``from_unit``); None when it is not a number this distribution could give."""
        if not _is_number(value):
            return None
        x = float(value)
        d = self.distribution
        try:
            if d == "int_uniform":
                span = int(self.max) - int(self.min) + 1
                u = (x - int(self.min) + 0.5) / span
            elif d in ("uniform", "q_uniform"):
                u = (x - self.min) / (self.max - self.min)
            elif d in ("log_uniform", "q_log_uniform"):
                u = (math.log(x) - self.min) / (self.max - self.min)
            elif d in ("log_uniform_values", "q_log_uniform_values"):
                lo, hi = math.log(self.min), math.log(self.max)
                u = (math.log(x) - lo) / (hi - lo)
            elif d == "inv_log_uniform":
                u = (-math.log(x) - self.min) / (self.max - self.min)
            elif d == "inv_log_uniform_values":
                lo, hi = math.log(1 / self.max), math.log(1 / self.min)
                u = (-math.log(x) - lo) / (hi - lo)
            elif d.endswith("normal") and self.sigma == 0:
                u = 0.5  # a point mass at mu (or e^mu)
            elif d in ("normal", "q_normal"):
                u = _normal_cdf((x - self.mu) / self.sigma)
            elif d in ("log_normal", "q_log_normal"):
                u = _normal_cdf((math.log(x) - self.mu) / self.sigma)
            elif d in ("beta", "q_beta"):
                u = x
            else:
                return None
        except (ValueError, ZeroDivisionError):  # log of a non-positive value
            return None
        return min(max(u, 0.0), 1.0)


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
    return _value_key(dict(params))


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
        notes.append(f"{key}: unknown top-level key, ignored{_did_you_mean(key, _TOP_LEVEL)}")
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
            if p.distribution not in _GRID_DISTRIBUTIONS:
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
    if target is not None and not _is_number(target):
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
            f"metric.{unknown[0]}: unknown key{_did_you_mean(str(unknown[0]), known)}"
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
            yield _parameter(path, body, notes)


def _parameter(path: tuple[str, ...], spec: object, notes: list[str]) -> Parameter:
    name = ".".join(path)
    where = f"parameters.{name}"
    if not isinstance(spec, Mapping):
        raise SweepConfigError(f"{where}: must be a mapping such as {{values: [...]}}")
    spec = dict(spec)
    for key in sorted(set(spec) - set(_PARAMETER_KEYS), key=str):
        # W&B's CLI creates the sweep with a warning here; ignoring the key silently
        # would hide a typo such as 'distribtion' behind a different search.
        notes.append(
            f"{where}.{key}: unknown key, ignored{_did_you_mean(str(key), _PARAMETER_KEYS)}"
        )
        del spec[key]
    if "distribution" not in spec:  # with a distribution, value/values/min/max are its arguments
        forms = [k for k in ("value", "values") if k in spec]
        if "min" in spec or "max" in spec:
            forms.append("min/max")
        if len(forms) != 1:
            raise SweepConfigError(
                f"{where}: give exactly one of value, values, min/max, distribution or "
                "parameters" + (f" (got {' and '.join(forms)})" if forms else "")
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
            both_int = (
                isinstance(lo, int)
                and isinstance(hi, int)
                and not isinstance(lo, bool)
                and not isinstance(hi, bool)
            )
            distribution = "int_uniform" if both_int else "uniform"
    if distribution not in _DISTRIBUTIONS:
        raise SweepConfigError(
            f"{where}.distribution: unknown distribution {distribution!r}"
            f"{_did_you_mean(str(distribution), _DISTRIBUTIONS)}"
        )
    if distribution in _EXPONENT_FORMS:
        notes.append(
            f"{where} uses {distribution}, where min and max are exponents of e, not the "
            f"values themselves; use {_EXPONENT_FORMS[distribution]} to give the values"
        )
    used = set(_USES.get(distribution, ()))
    arguments = {
        "constant": {"value"},
        "categorical": {"values"},
        "categorical_w_probabilities": {"values", "probabilities"},
    }.get(distribution, used)
    for key in (*_NUMERIC_KEYS, "value", "values", "probabilities"):
        if key in spec and key not in arguments:
            notes.append(f"{where}.{key}: not used by a {distribution} distribution, ignored")
    fields: dict[str, Any] = {"name": name, "distribution": distribution, "path": path}
    if distribution == "constant":
        if "value" not in spec:
            raise SweepConfigError(f"{where}.value: a constant needs a value")
        fields["value"] = spec["value"]
        _note_number_text(f"{where}.value", [spec["value"]], notes)
    elif distribution.startswith("categorical"):
        values = spec.get("values")
        if not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise SweepConfigError(f"{where}.values: must be a non-empty list")
        _note_number_text(f"{where}.values", values, notes)
        probabilities = spec.get("probabilities")
        if distribution == "categorical_w_probabilities" and (
            not isinstance(probabilities, Sequence)
            or isinstance(probabilities, str)
            or len(probabilities) != len(values)
            or not all(_is_number(p) and p >= 0 for p in probabilities)
            or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6)
        ):
            raise SweepConfigError(
                f"{where}.probabilities: one non-negative number per value, summing to 1"
            )
        distinct, weights = _distinct(values, probabilities)
        fields["values"] = tuple(distinct)
        if distribution == "categorical_w_probabilities":
            fields["probabilities"] = tuple(weights)
    else:
        for key in _NUMERIC_KEYS:
            if key in spec and key in used:
                fields[key] = _number(f"{where}.{key}", spec[key])
        needs_range = "min" in used
        if needs_range:
            if "min" not in spec or "max" not in spec:
                raise SweepConfigError(f"{where}: {distribution} needs min and max")
            if not fields["min"] < fields["max"]:
                raise SweepConfigError(f"{where}.max: must be greater than min")
            if distribution.endswith("_values") and fields["min"] <= 0:
                raise SweepConfigError(f"{where}.min: {distribution} needs min > 0")
            if distribution == "int_uniform" and not all(
                _integral(fields[k]) for k in ("min", "max")
            ):
                raise SweepConfigError(f"{where}: int_uniform needs integer min and max")
        if fields.get("q", 1.0) <= 0:
            raise SweepConfigError(f"{where}.q: must be positive")
        if fields.get("sigma", 1.0) < 0:  # 0 is allowed, as in W&B: always mu
            raise SweepConfigError(f"{where}.sigma: must not be negative")
        if distribution in ("beta", "q_beta") and not (
            fields.get("a", 1.0) > 0 and fields.get("b", 1.0) > 0
        ):
            raise SweepConfigError(f"{where}: beta needs a > 0 and b > 0")
    return Parameter(**fields)


def _number(where: str, value: object) -> float:
    if _is_number(value):
        assert isinstance(value, (int, float))
        return value
    if isinstance(value, str) and _as_float(value) is not None:
        raise SweepConfigError(
            f"{where}: {value!r} is a string, not a number: YAML reads a number in "
            f"exponent form without a decimal point as text; write {_yaml_float(value)}"
        )
    raise SweepConfigError(f"{where}: must be a number, got {value!r}")


def _note_number_text(where: str, values: Sequence[Any], notes: list[str]) -> None:
    texts = [v for v in values if isinstance(v, str) and _FLOAT_TEXT.match(v.strip())]
    if texts:
        notes.append(
            f"{where}: {texts[0]!r} is a string: YAML reads a number in exponent form "
            f"without a decimal point as text; write {_yaml_float(texts[0])} if you meant "
            "a number"
        )


def _yaml_float(text: str) -> str:
    mantissa, _, exponent = text.strip().lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    elif mantissa.endswith("."):
        mantissa += "0"
    return f"{mantissa}e{exponent}"


def _as_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _distinct(
    values: Sequence[Any], probabilities: Sequence[float] | None
) -> tuple[list[Any], list[float]]:
    """Each distinct value once (first occurrence kept, its probabilities summed):
    ``[1, 1.0, 2]`` is two values, as W&B's grid proposes them."""
    seen: dict[bytes, int] = {}
    distinct: list[Any] = []
    weights: list[float] = []
    for i, value in enumerate(values):
        key = _value_key(value)
        weight = float(probabilities[i]) if probabilities is not None else 0.0
        if key in seen:
            weights[seen[key]] += weight
            continue
        seen[key] = len(distinct)
        distinct.append(value)
        weights.append(weight)
    return distinct, weights


def _did_you_mean(key: str, known: Sequence[str] | set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integral(value: float) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _quantize(value: float, q: float) -> float:
    if _integral(q):
        return round(value / q) * int(q)  # an integer q gives integers, as in W&B
    return _tidy(round(value / q) * q)


def _tidy(value: float) -> float:
    """Remove float noise such as 0.30000000000000004."""
    return float(f"{value:.12g}")


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _probit(u: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12))


def _value_key(value: Any) -> bytes:
    try:
        return msgspec.json.encode(_normal(value), order="sorted")
    except (TypeError, msgspec.EncodeError):
        return repr(value).encode()


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float) and math.isnan(value):
        return "runlog:nan"  # JSON has no NaN; keep it apart from None
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value
