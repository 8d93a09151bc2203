"""The one wire struct of the store protocol that carries projected state, shared by
the client (``_remote``) and the server (``_server``)."""

from __future__ import annotations

import msgspec

from eventstore import StreamInfo
from projections import RunState

__all__ = ["RunStateOut"]


class RunStateOut(msgspec.Struct, frozen=True):
    """A run's state (None if the log never mentions it), the position it reflects and
    its stream's info, read together (``eventstore.wire.RUN``)."""

    state: RunState | None
    position: int
    info: StreamInfo | None = None
