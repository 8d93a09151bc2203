"""Copies of a run's state at fixed points of its stream, so that its state at a past
position (time travel) is folded from the nearest copy, never from the run's start.

A copy is taken right after every ``COPY_EVERY``-th event of a run's stream (stream
versions ``COPY_EVERY - 1``, ``2 * COPY_EVERY - 1``, ...): the points depend on the log
only, not on how it was cut into chunks, so the read model folded chunk by chunk, a
rebuild and a replay hold the same copies. A copy holds the run's state, its sweep's
state (a sweep's events change its runs) and where the run's stream goes on; the
sweep's stream is read from the copy's position on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from eventstore import RecordedEvent

from ._fold import Fold
from ._state import RunState, SweepState

__all__ = ["COPY_EVERY", "RunCopy", "apply_with_copies", "copy_digest", "decode_copy"]

COPY_EVERY = 20_000
"""Events of a run's stream between two copies: the most time travel folds."""


class RunCopy(msgspec.Struct, frozen=True):
    """A run's state right after the event at ``position`` of its stream."""

    position: int
    version: int
    """The version of the run stream's next event."""
    run: RunState
    sweep: SweepState | None = None
    """Its sweep's state then (None when the run is in no sweep)."""


_encode = msgspec.msgpack.Encoder().encode
decode_copy = msgspec.msgpack.Decoder(RunCopy).decode

CopyRow = tuple[str, str, int, bytes]
"""(project, run id, position, the encoded ``RunCopy``)."""


def copy_digest(state: bytes) -> bytes:
    """A digest of an encoded copy, for comparing a read model with a replay."""
    return hashlib.blake2b(state, digest_size=16).digest()


def apply_with_copies(model: Fold, records: Sequence[RecordedEvent]) -> list[CopyRow]:
    """``model.apply_all(records)``, taking a copy of a run at each of its copy points."""
    rows: list[CopyRow] = []
    start = 0
    for index, record in enumerate(records):
        if (record.version + 1) % COPY_EVERY or not record.stream.startswith("run:"):
            continue
        model.apply_all(records[start : index + 1])
        start = index + 1
        project, _, run_id = record.stream[4:].rpartition("/")
        state = model.run((project, run_id))
        if state is None:
            continue  # not started: nothing to copy
        sweep = model.sweep(state.sweep_id) if state.sweep_id is not None else None
        copy = RunCopy(record.position, record.version + 1, state, sweep)
        rows.append((project, run_id, record.position, _encode(copy)))
    model.apply_all(records[start:] if start else records)
    return rows
