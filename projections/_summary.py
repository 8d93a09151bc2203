"""How a run's summary follows its history (contract §4.1, W&B's ``define_metric``).

By default the summary holds the last logged value of every metric. ``define_metric``
can ask for aggregates instead: ``summary="min"`` keeps ``<name>.min``, ``"max"``
``<name>.max``, ``"last"`` ``<name>.last``, ``"first"`` ``<name>.first``, ``"best"``
``<name>.best`` (min or max by ``goal``), ``"copy"`` the plain last value, ``"none"``
nothing; several are written comma-separated. The training library and the fold call
the same functions, so ``run.summary`` in the script equals the folded summary.

Metric names are flat: a nested dict logged as ``{"train": {"loss": 1}}`` is the
metric ``train.loss`` (``flatten_metrics``), the name W&B charts it under.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from eventstore import InvalidArgument

__all__ = [
    "SUMMARY_OPS",
    "check_summary_ops",
    "flatten_metrics",
    "metric_names",
    "rule_for",
    "summarize",
]

SUMMARY_OPS = ("min", "max", "last", "first", "best", "copy", "none")
_SEP = "."


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"loss": 1}}`` -> ``{"train.loss": 1}``; other values unchanged.

    A flattened key that is also given literally keeps the value that comes later in
    the mapping's order. An empty nested dict logs nothing.

    Raises:
        InvalidArgument: a nested key is not a string.
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}" if prefix else key
        if isinstance(value, Mapping):
            for inner in value:
                if type(inner) is not str:
                    raise InvalidArgument(f"metric names are strings; got {inner!r} in {name!r}")
            out.update(flatten_metrics(value, name + _SEP))
        else:
            out[name] = value
    return out


def check_summary_ops(summary: str | None) -> tuple[str, ...]:
    """The aggregates a ``define_metric(summary=...)`` string names; ``ValueError`` if unknown."""
    if summary is None:
        return ()
    ops = tuple(part.strip() for part in summary.split(",") if part.strip())
    unknown = [op for op in ops if op not in SUMMARY_OPS]
    if unknown or not ops:
        raise ValueError(
            f"summary={summary!r}: use a comma-separated list of {', '.join(SUMMARY_OPS)}"
        )
    return ops


def rule_for(definitions: Mapping[str, Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The definition that applies to metric ``key``: its own, else the longest ``prefix*``."""
    own = definitions.get(key)
    if own is not None:
        return own
    best: Mapping[str, Any] | None = None
    best_length = -1
    for name, definition in definitions.items():
        if name.endswith("*") and key.startswith(name[:-1]) and len(name) > best_length:
            best, best_length = definition, len(name)
    return best


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if isinstance(value, float) and math.isnan(value) else value


def summarize(
    summary: dict[str, Any],
    definitions: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, Any],
) -> None:
    """Fold one history row into ``summary`` (in place)."""
    if not definitions:
        summary.update(metrics)
        return
    for key, value in metrics.items():
        rule = rule_for(definitions, key)
        ops = rule.get("ops") if rule is not None else None
        if not ops:
            summary[key] = value
            continue
        number = _number(value)
        for op in ops:
            if op == "copy":
                summary[key] = value
            elif op == "last":
                summary[f"{key}.last"] = value
            elif op == "first":
                summary.setdefault(f"{key}.first", value)
            elif number is not None and op in ("min", "max", "best"):
                if op == "best":
                    op = "max" if rule is not None and rule.get("goal") == "maximize" else "min"
                    name = f"{key}.best"
                else:
                    name = f"{key}.{op}"
                old = _number(summary.get(name))
                if old is None or (number < old if op == "min" else number > old):
                    summary[name] = value


def metric_names(
    summary: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The names of the metrics behind a summary: an aggregate ``name.min`` counts as
    ``name`` when ``define_metric`` asked for it; other keys count as themselves."""
    if not definitions:
        return sorted(summary)
    names = set()
    for key in summary:
        base, _, op = key.rpartition(".")
        rule = rule_for(definitions, base) if base else None
        names.add(base if rule is not None and op in rule.get("ops", ()) else key)
    return sorted(names)
