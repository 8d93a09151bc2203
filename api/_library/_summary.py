"""``run.summary`` and ``define_metric`` (contract §4.1).

The summary is the last logged value of each metric, unless the script says otherwise:
``run.summary["best_loss"] = x`` (or ``summary.update({...})``) records a
``SummaryUpdated`` that overrides it until the key is logged again, and
``define_metric(name, summary="min")`` keeps an aggregate instead (``name.min``). It is
folded by the projections from the same events and with the same function
(``projections.summarize``), so the script, ``runlog show`` and the server agree, and a
resumed run starts from the summary the run had.

Keys are flat, as in history: a nested value ``{"train": {"loss": 1}}`` is stored as
``train.loss``. Reading ``summary["train"]`` gives the nested view ``{"loss": 1}``,
the way W&B's summary reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from eventstore import InvalidArgument, MetricDefined, SummaryUpdated, default_codec
from projections import check_summary_ops, flatten_metrics

if TYPE_CHECKING:
    from projections import RunState

    from ._run import Run

__all__ = ["Summary", "carry_over", "define_metric"]

_GOALS = ("minimize", "maximize")


def _nested(flat: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split(".")
        target = out
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[parts[-1]] = value
    return out


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    try:
        default_codec._encoder.encode(values)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgument(f"summary values must be storable: {exc}") from exc
    return values


class Summary(MutableMapping[str, Any]):
    """The run's summary: a mapping of metric name to its final (or chosen) value."""

    def __init__(self, run: Run, values: dict[str, Any]) -> None:
        self._run = run
        self._values = values  # the same dict the run's log path folds rows into

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            group = _nested(self._values, key + ".")
            if group:
                return group
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._values or any(k.startswith(key + ".") for k in self._values)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        removed = [k for k in self._values if k == key or k.startswith(key + ".")]
        if not removed:
            raise KeyError(key)
        self._record({}, removed)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set several summary values in one event; nested dicts are flattened.

        Raises:
            InvalidArgument: a key is not a string or a value cannot be stored.
        """
        given = dict(other, **kwargs)
        for key in given:
            if type(key) is not str:
                raise InvalidArgument(f"summary keys are strings; got {key!r}")
        flat = _storable(flatten_metrics(given))
        # A nested value replaces the whole group it names, as assigning a dict does.
        replaced = [
            k
            for k in self._values
            if k not in flat
            and any(k.startswith(g + ".") for g, v in given.items() if isinstance(v, Mapping))
        ]
        self._record(flat, replaced)

    def _record(self, values: dict[str, Any], removed: list[str]) -> None:
        run = self._run
        event = SummaryUpdated(values=values, incarnation=run.incarnation, removed=removed)
        # Not through Run._enqueue, which commits a pending step row first: a summary
        # assignment must not move the step a later log(step=s) merges into (as in W&B).
        with run._lock:  # one critical section: the buffer and the values agree on the order
            run._check_open()
            run._buffer.append(event)
            self._values.update(values)
            for name in removed:
                self._values.pop(name, None)

    def as_dict(self) -> dict[str, Any]:
        """A plain copy of the flat summary."""
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Summary({self._values!r})"


def define_metric(
    run: Run,
    name: str,
    step_metric: str | None = None,
    *,
    step_sync: bool | None = None,
    hidden: bool | None = None,
    summary: str | None = None,
    goal: str | None = None,
    overwrite: bool | None = None,
) -> dict[str, Any]:
    """Record how metric ``name`` (or every metric matching ``prefix*``) is summarised
    and which metric it is charted against; return the definition.

    Raises:
        InvalidArgument: an unknown summary aggregate or goal, or an empty name.
    """
    if not isinstance(name, str) or not name or (name.endswith("*") and "*" in name[:-1]):
        raise InvalidArgument(
            f"define_metric needs a metric name or a 'prefix*' glob, not {name!r}"
        )
    if "*" in name[:-1]:
        raise InvalidArgument(f"only a trailing '*' glob is supported, not {name!r}")
    try:
        ops = list(check_summary_ops(summary))
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if goal is not None and goal not in _GOALS:
        raise InvalidArgument(f"goal={goal!r}: use 'minimize' or 'maximize'")
    if step_metric is not None and not isinstance(step_metric, str):
        raise InvalidArgument(f"step_metric is a metric name, not {step_metric!r}")
    event = MetricDefined(
        name=name,
        incarnation=run.incarnation,
        step_metric=step_metric,
        summary=summary,
        goal=goal,
        hidden=bool(hidden),
    )
    definition = {"ops": ops, "goal": goal, "step_metric": step_metric, "hidden": bool(hidden)}
    with run._lock:
        run._check_open()
        run._buffer.append(event)
        run._metric_defs[name] = definition
    return definition


def carry_over(run: Run, state: RunState, locked: Iterable[str] = ()) -> None:
    """Give a just-started incarnation the summary and metric definitions the run had,
    and lock the sweep's parameters in its config."""
    run._summary_values.update(state.summary)
    run._metric_defs.update({name: dict(d) for name, d in state.metrics.items()})
    object.__setattr__(run.config, "_locked", frozenset(locked))
    run.name = state.name
