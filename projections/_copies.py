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

__all__ = ["COPY_EVERY", "RunCopy", "copy_digest", "decode_copy", "fold_chunk"]

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


def fold_chunk(
    model: Fold, records: Sequence[RecordedEvent]
) -> tuple[list[CopyRow], dict[int, str]]:
    """``model.apply_all(records)``, taking a copy of a run at each of its copy points.

    Also returns, for each sweep event that names a run, the sweep's project as the
    event found it (by position; none when the sweep did not exist yet): a sweep event
    names its run by id only, and whether the sweep existed then must not depend on
    where the chunk ends.
    """
    rows: list[CopyRow] = []
    owners: dict[int, str] = {}
    start = 0
    for index, record in enumerate(records):
        stream = record.stream
        if stream.startswith("sweep:"):
            if getattr(record.event, "run_id", None) is None:
                continue
            model.apply_all(records[start:index])
            start = index
            sweep = model.sweep(stream[6:])
            if sweep is not None:
                owners[record.position] = sweep.project
            continue
        if (record.version + 1) % COPY_EVERY or not stream.startswith("run:"):
            continue
        model.apply_all(records[start : index + 1])
        start = index + 1
        project, _, run_id = stream[4:].rpartition("/")
        state = model.run((project, run_id))
        if state is None:
            continue  # not started: nothing to copy
        sweep = model.sweep(state.sweep_id) if state.sweep_id is not None else None
        copy = RunCopy(record.position, record.version + 1, state, sweep)
        rows.append((project, run_id, record.position, _encode(copy)))
    model.apply_all(records[start:] if start else records)
    return rows, owners
