"""One parameter of a sweep config: its distribution, checked and normalised.

``parse_parameter`` validates one entry of ``parameters`` (naming the key in every
error, ``parameters.lr.max: ...``) and returns a ``Parameter``, which knows how to list
its grid values and draw or place a value (``api/_sweeping/_sweep_config.py`` holds the config
around it; ``api/_sweeping/_bayes.py`` maps values to and from the unit interval).
"""

from __future__ import annotations

import difflib
import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .._errors import SweepConfigError

__all__ = [
    "GRID_DISTRIBUTIONS",
    "GRID_VALUES_LIMIT",
    "Parameter",
    "did_you_mean",
    "is_number",
    "parse_parameter",
    "value_key",
]

_DISTRIBUTIONS = (
    "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform",
    "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values",
    "inv_log_uniform", "inv_log_uniform_values", "normal", "q_normal", "log_normal",
    "q_log_normal", "beta", "q_beta",
)  # fmt: skip
GRID_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")
# Every top-level key of W&B's sweep schema, plus nothing of runlog's own: a config that
# W&B's schema knows is accepted silently, anything else gets a warning.
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
        if not is_number(value):
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


def parse_parameter(path: tuple[str, ...], spec: object, notes: list[str]) -> Parameter:
    """The parameter at ``parameters.<path>``, checked; warnings go to ``notes``."""
    name = ".".join(path)
    where = f"parameters.{name}"
    if not isinstance(spec, Mapping):
        raise SweepConfigError(f"{where}: must be a mapping such as {{values: [...]}}")
    spec = dict(spec)
    for key in sorted(set(spec) - set(_PARAMETER_KEYS), key=str):
        # W&B's CLI creates the sweep with a warning here; ignoring the key silently
        # would hide a typo such as 'distribtion' behind a different search.
        notes.append(
            f"{where}.{key}: unknown key, ignored{did_you_mean(str(key), _PARAMETER_KEYS)}"
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
            f"{did_you_mean(str(distribution), _DISTRIBUTIONS)}"
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
            or not all(is_number(p) and p >= 0 for p in probabilities)
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
    if is_number(value):
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
        key = value_key(value)
        weight = float(probabilities[i]) if probabilities is not None else 0.0
        if key in seen:
            weights[seen[key]] += weight
            continue
        seen[key] = len(distinct)
        distinct.append(value)
        weights.append(weight)
    return distinct, weights


def did_you_mean(key: str, known: Sequence[str] | set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_number(value: object) -> bool:
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


def value_key(value: Any) -> bytes:
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
