"""Hyperband early termination (contract §9.6), decided from the log.

The rule is W&B's: a sweep's ``early_terminate: {type: hyperband, ...}`` gives
*bands*, iteration counts at which runs are compared, where an iteration is one
logged value of ``metric.name`` (not the step number). At each band the threshold is
taken over every run of the sweep with that many values: their value at the band
(negated when maximising), sorted, and the element at index ``int(count / eta)``. A
``running`` run is stopped when the value it has at the highest band it reached is
worse than that band's threshold: ``min`` of its history so far by default
(``strict: false``, the lenient rule), its value at the band with ``strict: true``.

The decision is the controller's: agents evaluate it as part of their watchdog duty
(``HyperbandController.step``) and record each stop as a ``RunStopRequested`` event on
the run's stream; the agent running that run delivers it (SIGTERM, then SIGKILL after
the kill delay). Several agents may evaluate at once: each stop is a conditional
append that checks the run is still running and not already asked to stop.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from eventstore import EventStore, RunStopRequested, WrongExpectedVersion, run_stream
from projections import Projector, RunStatus

from ._sweep_config import SweepConfigError

__all__ = [
    "Hyperband",
    "HyperbandController",
    "StopDecision",
    "decide_stops",
    "parse_early_terminate",
    "request_stop",
]

_KEYS = {"type", "min_iter", "max_iter", "s", "eta", "strict"}
_MIN_ITER_BANDS = 100  # W&B's controller considers this many min_iter bands


class Hyperband(msgspec.Struct, frozen=True):
    """A parsed ``early_terminate`` section: where the bands are and how strict the rule is."""

    eta: float = 3.0
    strict: bool = False
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None

    def bands(self, longest: int) -> list[int]:
        """The bands, ascending, up to ``longest`` values (no run reaches a later one)."""
        if self.max_iter is not None and self.s is not None:
            bands: list[int] = []
            band = float(self.max_iter)
            for _ in range(self.s):
                band /= self.eta
                if band < 1:
                    break
                bands.append(int(band))
            return sorted(b for b in bands if b <= longest)
        assert self.min_iter is not None
        bands, band_f = [], float(self.min_iter)
        for _ in range(_MIN_ITER_BANDS):
            if int(band_f) > longest:
                break
            bands.append(int(band_f))
            band_f *= self.eta
        return bands


def _positive_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepConfigError(f"early_terminate.{key}: must be an integer >= 1, got {value!r}")
    return value


def parse_early_terminate(spec: object, metric: object) -> Hyperband | None:
    """The Hyperband settings of a config's ``early_terminate`` (None when absent).

    Raises:
        SweepConfigError: not ``type: hyperband``, neither ``min_iter`` nor ``max_iter``
            with ``s``, ``eta`` not above 1, no band at all, or no ``metric.name``.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise SweepConfigError("early_terminate: must be a mapping such as {type: hyperband}")
    if spec.get("type") != "hyperband":
        raise SweepConfigError(
            f"early_terminate.type: must be 'hyperband' (the only kind), got {spec.get('type')!r}"
        )
    for key in sorted(set(spec) - _KEYS):
        # W&B's controller drops unknown keys here; say so instead of ignoring silently.
        warnings.warn(
            f"early_terminate.{key}: unknown key, ignored (known: {sorted(_KEYS)})", stacklevel=3
        )
    if not isinstance(metric, Mapping) or not isinstance(metric.get("name"), str):
        raise SweepConfigError(
            "early_terminate: Hyperband compares runs on a metric; add metric: {name: ...}"
        )
    eta = spec.get("eta", 3)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 1:
        raise SweepConfigError(f"early_terminate.eta: must be a number above 1, got {eta!r}")
    strict = spec.get("strict", False)
    if not isinstance(strict, bool):
        raise SweepConfigError(f"early_terminate.strict: must be true or false, got {strict!r}")
    min_iter = _positive_int(spec, "min_iter")
    max_iter = _positive_int(spec, "max_iter")
    s = _positive_int(spec, "s")
    if max_iter is not None:
        if s is None:
            raise SweepConfigError("early_terminate.s: max_iter needs s, the number of bands")
        parsed = Hyperband(float(eta), strict, max_iter=max_iter, s=s)
        if not parsed.bands(max_iter):
            raise SweepConfigError(
                f"early_terminate.max_iter: {max_iter} / eta {eta} is below 1, so there is no "
                "band; raise max_iter or lower eta"
            )
        return parsed
    if min_iter is None:
        raise SweepConfigError(
            "early_terminate.min_iter: give min_iter, or max_iter and s, to place the bands"
        )
    return Hyperband(float(eta), strict, min_iter=min_iter)


class StopDecision(msgspec.Struct, frozen=True):
    """One run Hyperband stops: its band, its value there and the band's threshold
    (both as logged, not negated)."""

    run_id: str
    band: int
    value: float
    threshold: float

    @property
    def reason(self) -> str:
        """What ``runlog explain`` says about the stop."""
        return (
            f"hyperband: at band {self.band} its {_fmt(self.value)} is worse than the "
            f"threshold {_fmt(self.threshold)}"
        )


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _usable(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def decide_stops(
    rule: Hyperband,
    goal: Literal["minimize", "maximize"],
    histories: Mapping[str, list[float]],
    running: Iterable[str],
) -> list[StopDecision]:
    """The runs of ``running`` the rule stops, given every run's metric values in order.

    ``histories`` holds every run of the sweep, in any state (finished runs set the
    thresholds too); a pure function of its arguments, so a replayed history gives the
    same decisions.
    """
    sign = -1.0 if goal == "maximize" else 1.0
    signed = {
        run_id: [sign * v for v in values if _usable(v)] for run_id, values in histories.items()
    }
    longest = max((len(v) for v in signed.values()), default=0)
    bands = rule.bands(longest)
    thresholds: list[float] = []
    for band in bands:
        at_band = sorted(v[band - 1] for v in signed.values() if len(v) >= band)
        thresholds.append(at_band[int((1.0 / rule.eta) * len(at_band))])
    decisions: list[StopDecision] = []
    for run_id in running:
        values = signed.get(run_id, [])
        reached = [(b, t) for b, t in zip(bands, thresholds, strict=True) if b <= len(values)]
        if not reached:
            continue  # no band applies yet
        band, threshold = reached[-1]
        value = values[band - 1] if rule.strict else min(values)
        if value > threshold:
            decisions.append(StopDecision(run_id, band, sign * value, sign * threshold))
    return decisions


class HyperbandController:
    """Evaluates one sweep's rule from the log and records the stops; keeps each run's
    metric values between calls, so a call reads only the rows logged since the last."""

    def __init__(self, store: EventStore, sweep_id: str) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self._values: dict[str, list[float]] = {}
        self._next_step: dict[str, int] = {}

    async def step(self, projector: Projector) -> list[StopDecision]:
        """Decide once and append a ``RunStopRequested`` for each run stopped now."""
        sweep = await projector.sweep(self.sweep_id)
        if sweep is None:
            return []
        rule = parse_early_terminate(
            sweep.config.get("early_terminate"), sweep.config.get("metric")
        )
        if rule is None:
            return []
        metric = sweep.config["metric"]
        name: str = metric["name"]
        goal: Literal["minimize", "maximize"] = (
            "maximize" if metric.get("goal") == "maximize" else "minimize"
        )
        runs = await projector.runs_of_sweep(self.sweep_id)
        running: list[str] = []
        for run in runs:
            if not run.started:
                continue
            start = self._next_step.get(run.run_id, 0)
            if run.last_step is not None and run.last_step >= start:
                points = await projector.history(run.project, run.run_id, keys=[name], start=start)
                values = self._values.setdefault(run.run_id, [])
                values += [p.metrics[name] for p in points]
                # Rows logged after ``runs`` was read may be among the points already.
                last = max(run.last_step, points[-1].step if points else run.last_step)
                self._next_step[run.run_id] = last + 1
            if run.status is RunStatus.RUNNING and not run.stop_requested:
                running.append(run.run_id)
        decisions = decide_stops(rule, goal, self._values, running)
        recorded = []
        for decision in decisions:
            stopped = await request_stop(
                self.store,
                projector,
                sweep.project,
                decision.run_id,
                reason=decision.reason,
                rule="hyperband",
                band=decision.band,
                value=decision.value,
                threshold=decision.threshold,
            )
            if stopped:
                recorded.append(decision)
        return recorded


async def request_stop(
    store: EventStore,
    projector: Projector,
    project: str,
    run_id: str,
    *,
    reason: str,
    rule: str = "user",
    band: int | None = None,
    value: float | None = None,
    threshold: float | None = None,
) -> bool:
    """Append a ``RunStopRequested`` if the run is live and not already asked to stop;
    True if this call recorded it. The append expects the stream's version, so it
    never lands on a run that changed incarnation or ended meanwhile."""
    stream = run_stream(project, run_id)
    for _ in range(20):  # a busy writer may win a few times; its flushes are batched
        info = await store.stream_info(stream)
        run = await projector.run(project, run_id)
        if info is None or run is None or not run.started:
            return False
        if run.status not in (RunStatus.RUNNING, RunStatus.PREEMPTING) or run.stop_requested:
            return False
        if info.last_position > projector.position:
            continue  # the projector has not folded the newest event yet
        event = RunStopRequested(
            incarnation=run.incarnation,
            reason=reason,
            rule=rule,
            sweep_id=run.sweep_id,
            band=band,
            value=value,
            threshold=threshold,
        )
        try:
            await store.append(stream, [event], info.version)
        except WrongExpectedVersion:
            continue
        return True
    return False
