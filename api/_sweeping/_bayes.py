"""Bayesian search for sweeps (contract §9.5): a Gaussian process over the runs so far.

Every searchable parameter is mapped to a unit interval (``Parameter.to_unit``: ranges
linearly, log-scale ones in their logarithm, normal ones through their quantiles) and a
categorical one to one dimension per value (one-hot). scikit-learn's Gaussian process
is fitted to the metric of the runs the log knows:

- finished runs give the last value they logged of ``metric.name``;
- failed, crashed and killed runs (and finished ones that never logged it) are imputed
  with ``metric.impute``: the worst value seen (default), the best, or their own latest;
- pending, running, preempting and preempted runs are in flight: they count at the value
  the model predicts for them (so the next suggestion looks elsewhere), unless
  ``metric.impute_while_running`` says to use a value for running runs.

The suggestion is the candidate with the highest expected improvement among random
points and points near the best runs, all drawn from a generator seeded with (sweep
seed, suggestion index). The same log therefore gives the same suggestion, and the
suggestion is recorded in ``RunScheduled`` anyway, so a replay never refits.

The cost is bounded: at most ``MAX_POINTS`` observed points (the best quarter and the
most recent rest) and ``MAX_IN_FLIGHT`` in-flight points are used.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from .._errors import SweepConfigError
from ._sweep_config import SweepConfig
from ._sweep_params import Parameter, value_key

__all__ = ["MAX_IN_FLIGHT", "MAX_POINTS", "Observation", "suggest"]

MAX_POINTS = 100
MAX_IN_FLIGHT = 32
_RANDOM_CANDIDATES = 1000
_LOCAL_CANDIDATES = 500
_FAILED = frozenset({"failed", "crashed", "killed"})
_IN_FLIGHT = frozenset({"pending", "running", "preempting", "preempted"})


@dataclass(frozen=True)
class Observation:
    """One run of the sweep as bayes search sees it: its parameters, its status (a
    ``RunStatus`` value) and the last value it logged of the metric, if any."""

    params: Mapping[str, Any]
    status: str
    value: float | None


def suggest(
    config: SweepConfig, seed: int, index: int, runs: Sequence[Observation]
) -> dict[str, Any]:
    """The ``index``-th suggestion of a bayes sweep seeded with ``seed``, given its runs
    in scheduling order. With fewer than two runs to learn from it is the random
    suggestion of the same index.

    Raises:
        SweepConfigError: scikit-learn is not installed.
    """
    space = _Space(config)
    if not space.dimensions:
        return config.suggestion(seed, index)
    observed, pending = _points(config, space, runs)
    if len(observed) < 2:
        return config.suggestion(seed, index)
    observed = _keep(observed)
    pending = pending[-MAX_IN_FLIGHT:]
    key = hashlib.sha256(msgspec.json.encode([seed, index, config.raw, observed, pending])).digest()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is None:
        cached = _fit_and_choose(space, seed, index, observed, pending)
        with _CACHE_LOCK:  # fits run in worker threads
            _CACHE[key] = cached
            while len(_CACHE) > 64:
                _CACHE.popitem(last=False)
    return config.params(space.decode(np.asarray(cached)))


# A claim that loses a race decides again on nearly the same log; the same inputs give
# the same answer, so it is kept rather than refitted.
_CACHE: OrderedDict[bytes, list[float]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


class _Space:
    """The unit cube the GP works in, and the maps to and from parameter values."""

    def __init__(self, config: SweepConfig) -> None:
        self.config = config
        # (position in config.parameters, parameter, first dimension, dimensions)
        self.slices: list[tuple[int, Parameter, int, int]] = []
        width = 0
        for position, p in enumerate(config.parameters):
            if p.distribution == "constant":
                continue
            size = len(p.values) if p.distribution.startswith("categorical") else 1
            self.slices.append((position, p, width, size))
            width += size
        self.dimensions = width

    def encode(self, params: Mapping[str, Any]) -> list[float] | None:
        """A run's parameters as a point, or None if a value lies outside the space
        (the config changed, or someone scheduled it by hand)."""
        point = [0.0] * self.dimensions
        for _, p, start, _size in self.slices:
            try:
                value = self.config.value_of(params, p)
            except KeyError:
                return None
            if p.distribution.startswith("categorical"):
                keys = [value_key(v) for v in p.values]
                wanted = value_key(value)
                if wanted not in keys:
                    return None
                point[start + keys.index(wanted)] = 1.0
            else:
                u = p.to_unit(value)
                if u is None:
                    return None
                point[start] = u
        return point

    def decode(self, point: NDArray[np.float64]) -> list[Any]:
        """One value per parameter (constants included) for a point."""
        values = [p.value for p in self.config.parameters]
        for position, p, start, size in self.slices:
            if p.distribution.startswith("categorical"):
                values[position] = p.values[int(np.argmax(point[start : start + size]))]
            else:
                values[position] = p.from_unit(float(point[start]))
        return values

    def snap(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Move each point to the nearest one a run could have (integers, multiples of
        q), so the model judges what would really be proposed. Categories are one-hot
        already and continuous dimensions need nothing."""
        snapped = points.copy()
        for _, p, start, _size in self.slices:
            if p.distribution == "int_uniform" or p.distribution.startswith("q_"):
                column = [p.to_unit(p.from_unit(float(u))) for u in points[:, start]]
                snapped[:, start] = [
                    u if v is None else v for u, v in zip(points[:, start], column, strict=True)
                ]
        return snapped

    def sample(self, rng: np.random.Generator, count: int) -> NDArray[np.float64]:
        points = np.zeros((count, self.dimensions))
        for _, p, start, size in self.slices:
            if p.distribution.startswith("categorical"):
                weights = np.asarray(p.probabilities) if p.probabilities else None
                picks = rng.choice(size, size=count, p=weights)
                points[np.arange(count), start + picks] = 1.0
            else:
                points[:, start] = rng.random(count)
        return points

    def perturb(
        self, rng: np.random.Generator, centres: NDArray[np.float64], count: int
    ) -> NDArray[np.float64]:
        """Points near ``centres``: numeric dimensions moved a little, categories
        changed now and then."""
        points = centres[rng.integers(0, len(centres), size=count)].copy()
        for _, p, start, size in self.slices:
            if p.distribution.startswith("categorical"):
                change = rng.random(count) < 0.2
                picks = rng.choice(size, size=int(change.sum()))
                rows = np.flatnonzero(change)
                points[rows, start : start + size] = 0.0
                points[rows, start + picks] = 1.0
            else:
                scale = rng.choice([0.02, 0.1], size=count)
                points[:, start] = np.clip(points[:, start] + rng.normal(0, scale), 0.0, 1.0)
        return points


def _points(
    config: SweepConfig, space: _Space, runs: Sequence[Observation]
) -> tuple[list[tuple[list[float], float]], list[list[float]]]:
    """(point, value to minimise) for runs that count as observed, and the in-flight
    points, both in scheduling order."""
    sign = 1.0 if config.metric_goal == "minimize" else -1.0
    seen = [sign * r.value for r in runs if r.value is not None and math.isfinite(r.value)]
    worst = max(seen) if seen else None
    best = min(seen) if seen else None
    observed: list[tuple[list[float], float]] = []
    pending: list[list[float]] = []
    for run in runs:
        point = space.encode(run.params)
        if point is None:
            continue
        own = sign * run.value if run.value is not None and math.isfinite(run.value) else None
        if run.status == "finished" and own is not None:
            observed.append((point, own))
            continue
        if run.status == "running" and config.impute_while_running is not None:
            strategy: str | None = config.impute_while_running
        elif run.status in _IN_FLIGHT:
            pending.append(point)
            continue
        else:  # failed, crashed, killed, or finished without the metric
            strategy = config.impute
        value = {"worst": worst, "best": best, "latest": own if own is not None else worst}[
            strategy or "worst"
        ]
        if value is not None:
            observed.append((point, value))
    return observed, pending


def _keep(observed: list[tuple[list[float], float]]) -> list[tuple[list[float], float]]:
    """At most ``MAX_POINTS``: the best quarter, then the most recent, in their order."""
    if len(observed) <= MAX_POINTS:
        return observed
    best = set(sorted(range(len(observed)), key=lambda i: observed[i][1])[: MAX_POINTS // 4])
    recent = [i for i in range(len(observed)) if i not in best][-(MAX_POINTS - len(best)) :]
    return [observed[i] for i in sorted(best | set(recent))]


def _fit_and_choose(
    space: _Space,
    seed: int,
    index: int,
    observed: list[tuple[list[float], float]],
    pending: list[list[float]],
) -> list[float]:
    try:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern
        from threadpoolctl import threadpool_limits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a default dependency
        raise SweepConfigError(
            "method: bayes needs scikit-learn; install it with: pip install 'scikit-learn>=1.3'"
        ) from exc
    rng = np.random.default_rng([seed & 0xFFFFFFFF, index])
    x = np.asarray([p for p, _ in observed], dtype=float)
    y = np.asarray([v for _, v in observed], dtype=float)
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
        length_scale=np.full(space.dimensions, 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5
    )
    # One BLAS thread: the matrices are small, and on a busy machine threads that spin
    # waiting for each other made a fit several times slower.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # A poor fit on few points is expected early in a sweep, not worth a warning.
        warnings.simplefilter("ignore")
        gp = GaussianProcessRegressor(
            kernel=kernel,
            alpha=1e-6,
            normalize_y=True,
            n_restarts_optimizer=0,
            random_state=int(rng.integers(0, 2**31)),
        ).fit(x, y)
        if pending:
            # In-flight runs are assumed to land where the model expects them, which
            # flattens the improvement around them so parallel agents spread out.
            believed = gp.predict(np.asarray(pending, dtype=float))
            gp = GaussianProcessRegressor(
                kernel=gp.kernel_, alpha=1e-6, normalize_y=True, optimizer=None
            ).fit(np.vstack([x, pending]), np.concatenate([y, believed]))
        order = np.argsort(y)
        centres = x[order[: max(1, min(5, len(order)))]]
        candidates = np.vstack(
            [
                space.sample(rng, _RANDOM_CANDIDATES),
                space.perturb(rng, centres, _LOCAL_CANDIDATES),
            ]
        )
        candidates = space.snap(candidates)
        mean, std = gp.predict(candidates, return_std=True)
    best = float(y.min())
    std = np.maximum(std, 1e-12)
    margin = 0.01 * float(np.std(y)) if len(y) > 1 else 0.0
    gain = best - mean - margin
    z = gain / std
    cdf = np.asarray([0.5 * math.erfc(-v / math.sqrt(2)) for v in z])
    improvement = gain * cdf + std * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return [float(v) for v in candidates[int(np.argmax(improvement))]]
