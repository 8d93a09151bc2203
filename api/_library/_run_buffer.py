"""The state every ``Run`` holds, its step rules and its buffer.

``log`` only buffers (a lock-guarded list, so the blocking facade can log from the
training thread for the cost of a lock). The step rules (contract §4.1) decide where a
row goes: the current step, a later one, or nowhere (a step below the current one is
dropped and counted). Whatever a run records becomes durable in the order it was called:
queueing any other event first commits the step row still pending.

``Run`` (``api/_library/_run.py``) is built in layers: this buffer, the writer that commits it
(``api/_library/_run_writer.py``), the end of a run (``api/_library/_run_end.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from eventstore import (
    Event,
    EventStore,
    EventTooLarge,
    InvalidArgument,
    NewEvent,
    StepLogged,
)
from projections import flatten_metrics, summarize

from .._errors import RunFinishedError, StepDroppedWarning, ValueNotStored
from . import _exit

__all__ = ["Checkpoint", "Preemption", "RunBuffer", "handling_preemption"]


handling_preemption: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "runlog_handling_preemption", default=False
)
"""True while the preemption path checkpoints and finishes (and in tasks it starts)."""

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_SCALAR_BYTES = 9  # the most a msgpack number, bool or nil takes
_ROW_OVERHEAD = 64  # the StepLogged envelope around the metrics
_value_encoder = msgspec.msgpack.Encoder()
_PLAIN_SCALARS = frozenset({float, bool, type(None)})


class Preemption:
    """A preemption signal that arrived: the run leaves at its next step boundary."""

    def __init__(
        self, signum: int, checkpoint: Callable[[], object] | None, deadline: float
    ) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.deadline = deadline  # time.monotonic() after which the helper stops waiting
        self.leaving = False

    @property
    def exit_code(self) -> int:
        """``128 + signum``, the conventional code of a handled signal."""
        return 128 + self.signum


class RunBuffer:
    """What a run holds, and the step rules over its buffer (the first layer of ``Run``)."""

    _store: EventStore
    _owns_store: bool
    _project: str
    _id: str
    _stream: str
    _incarnation: int
    _resumed: bool
    _starting_step: int
    _version: int
    _notes: str | None
    _files: dict[str, str]
    _root: Path
    _auto_resume: bool
    _heartbeat_interval: float
    _flush_interval: float
    _batch_size: int
    _max_buffer: int
    _max_row_bytes: int
    _lock: threading.RLock
    _buffer: list[Event | NewEvent]
    _step: int
    _pending: dict[str, Any] | None
    _pending_bytes: int
    _known_names: list[Any]
    _dropped: int
    _warned_drop: bool
    _marked: bool
    _preempt: Preemption | None
    _parked: bool
    _finished: bool
    _closing: bool
    _error: BaseException | None
    _unstored: list[str]
    _write_lock: asyncio.Lock
    _wake: asyncio.Event
    _last_write: float
    _loop: asyncio.AbstractEventLoop
    _background: asyncio.Task[None] | None
    _summary_values: dict[str, Any]
    _metric_defs: dict[str, dict[str, Any]]

    def _log_now(self, metrics: Mapping[str, Any], step: int | None, commit: bool | None) -> int:
        row, row_bytes = _checked_metrics(metrics, self._known_names)
        if _exit._status is not None:
            _exit.forget_exit()  # a sys.exit was caught: the program goes on
        dropped = None
        with self._lock:
            if self._error is not None or self._finished or self._closing:
                self._check_open()  # raises
            current = self._step
            if step is None and commit is None and self._pending is None:
                # The training loop's usual call (one log per step): what _merge and
                # _commit_pending would do, without their calls, as this runs per step.
                if row_bytes > self._max_row_bytes:
                    self._merge_check(row_bytes, current, fresh=True)
                self._buffer.append(
                    StepLogged(incarnation=self._incarnation, step=current, metrics=row)
                )
                if self._metric_defs:
                    summarize(self._summary_values, self._metric_defs, row)
                else:
                    self._summary_values.update(row)
                self._step = current + 1
            elif step is None:
                self._merge(row, row_bytes, current)
                if commit is not False:
                    self._commit_pending()
            elif isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise InvalidArgument(f"step must be a non-negative integer, got {step!r}")
            elif step < current:
                self._dropped += 1
                dropped = current
            else:
                if step > current:
                    self._merge_check(row_bytes, step, fresh=True)
                    self._commit_pending()
                    self._step = step
                self._merge(row, row_bytes, step)
                if commit:
                    self._commit_pending()
            size = len(self._buffer)
        if dropped is not None and not self._warned_drop:
            self._warned_drop = True
            warnings.warn(
                f"Tried to log to step {step} that is less than the current step {dropped}; "
                f"the data was dropped. Run {self._project}/{self._id} warns once; "
                "run.dropped_steps counts every dropped row. To log those steps again, "
                f'rewind with init(resume_from="{self._id}?_step=N"); to record values out '
                "of order, log a separate x-axis metric instead of step=.",
                StepDroppedWarning,
                stacklevel=3,
            )
        return size

    def _merge_check(self, row_bytes: int, step: int, *, fresh: bool) -> None:
        total = row_bytes if fresh else self._pending_bytes + row_bytes
        if total > self._max_row_bytes:
            raise EventTooLarge(
                f"the metrics logged at step {step} would take about {total} bytes, over the "
                f"store's limit of {self._max_row_bytes} for one row; nothing was logged by "
                "this call. Save large data as a file with run.save(), or open the store "
                "with a larger max_event_bytes"
            )

    def _merge(self, row: dict[str, Any], row_bytes: int, step: int) -> None:
        if self._pending is None:
            if row_bytes > self._max_row_bytes:
                self._merge_check(row_bytes, step, fresh=True)
            self._pending = row
            self._pending_bytes = row_bytes
            return
        if self._pending_bytes + row_bytes > self._max_row_bytes:
            # The estimate counts keys logged twice twice: measure before refusing.
            merged = {**self._pending, **row}
            self._merge_check(_row_bytes(merged), step, fresh=True)
            self._pending = merged
            self._pending_bytes = _row_bytes(merged)
            return
        self._pending.update(row)
        self._pending_bytes += row_bytes

    def _commit_pending(self) -> None:
        """Queue the pending row and move past its step (callers hold the lock)."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._pending_bytes = 0
            self._buffer.append(
                StepLogged(incarnation=self._incarnation, step=self._step, metrics=pending)
            )
            if self._metric_defs:
                summarize(self._summary_values, self._metric_defs, pending)
            else:
                self._summary_values.update(pending)
            self._step += 1

    @contextlib.contextmanager
    def _guard(self, interrupted: bool) -> Iterator[None]:
        """The buffer lock, unless ``interrupted``: a signal handler on the thread that
        holds it (inside ``log``) is running, and that thread waits for this call, so
        the buffer is ours and taking the lock would deadlock."""
        if interrupted:
            yield
        else:
            with self._lock:
                yield

    def _owned(self) -> bool:
        """True on the thread holding the buffer lock (a signal handler interrupted it)."""
        return bool(self._lock._is_owned())  # type: ignore[attr-defined]

    def _enqueue(self, event: Event, *, interrupted: bool = False) -> None:
        with self._guard(interrupted):
            self._check_open()
            if not interrupted:
                self._commit_pending()  # durable in call order (contract §7)
            self._buffer.append(event)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished or self._closing:
            raise RunFinishedError(
                f"run {self._project}/{self._id} is finished; start a new one with api.init(..., "
                'resume="allow") to continue it'
            )

    def _raise_unstored(self) -> None:
        if self._unstored:
            reasons, self._unstored = self._unstored, []
            raise ValueNotStored(
                f"run {self._project}/{self._id}: the store refused {len(reasons)} event(s), "
                f"which were left out; everything else was written: {'; '.join(reasons)}"
            )

    def _park(self) -> None:
        """From now on ``log``/``flush`` wait for the process to exit, instead of failing
        on a run the preemption path is finishing, except in that path's own context
        (its checkpoint may save files)."""
        self._parked = True


async def _forever() -> None:
    await asyncio.Event().wait()


def _checked_metrics(metrics: Mapping[str, Any], known: list[Any]) -> tuple[dict[str, Any], int]:
    """A copy of ``metrics`` known to encode, and its approximate encoded size: a value
    the store cannot hold fails here, naming its key, not in a later batch. ``known``
    holds the last set of names found good and their size, ``[frozenset, int]``."""
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise InvalidArgument(
            f"log() takes a mapping of metric names to values, not {type(metrics).__name__}"
        )
    row = dict(metrics)
    keys = row.keys()
    if keys == known[0]:  # a loop logs the same names step after step: checked once
        size = known[1]
    else:
        try:
            names = "".join(row)  # in C: every name is a str, and their total length
        except TypeError:
            bad = next(key for key in row if type(key) is not str)
            raise InvalidArgument(f"metric names are strings; got {bad!r}") from None
        if not names.isascii():
            for key in row:
                _check_text(key, f"metric name {key!r}")
        size = len(names) + (2 + _SCALAR_BYTES) * len(row)
        known[:] = [frozenset(keys), size]
    if _PLAIN_SCALARS.issuperset(map(type, row.values())):
        return row, size  # floats, bools, None: nothing to check, in one C-level pass
    for key, value in row.items():
        kind = type(value)
        if kind is float or kind is bool or value is None:
            continue
        if kind is int:
            if _INT_MIN <= value <= _INT_MAX:
                continue
            raise InvalidArgument(
                f"metric {key!r}: the integer {value} does not fit in 64 bits (the store "
                "keeps -2**63 .. 2**64-1); log it as a float or a string. Nothing was logged "
                "by this call"
            )
        if isinstance(value, Mapping):  # a metric group: W&B charts it as "group.key"
            return _checked_metrics(flatten_metrics(row), known)
        try:
            size += len(_value_encoder.encode(value))
        except UnicodeEncodeError as exc:
            raise InvalidArgument(
                f"metric {key!r}: the text holds a character UTF-8 cannot encode ({exc.reason}, "
                f"at index {exc.start}); clean it, e.g. with .encode('utf-8', 'replace')"
                ".decode(). Nothing was logged by this call"
            ) from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgument(
                f"metric {key!r}: {exc}. Metrics hold str, int (64-bit), float, bool, None, "
                "and lists and str-keyed dicts of those. Nothing was logged by this call"
            ) from exc
    return row, size


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} holds a character UTF-8 cannot encode ({exc.reason}, at index {exc.start}); "
            "nothing was logged by this call"
        ) from exc


def _row_bytes(row: Mapping[str, Any]) -> int:
    return len(_value_encoder.encode(row))


Checkpoint = Callable[[], Awaitable[None] | None]
