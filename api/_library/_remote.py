"""Run state from a ``runlog serve`` server, so ``init`` over HTTP needs no replay.

``init`` decides create-or-resume from the run's projected state. Locally that is the
projector's read model; for a store opened from ``http://...`` a local projector would
have to replay the whole log over the network, so the server's own read model answers
instead (``GET /api/store/run``), with the position it reflects, which keeps init's
"was anything appended after the state I read?" check exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import msgspec

from eventstore import ConnectionRunner, EventStore, HTTPStore, StreamInfo, run_stream, wire
from projections import Projector, RunState, open_projector

from .._wire import RunStateOut

__all__ = ["RunStates", "run_states"]


class RunStates(Protocol):
    """What ``init`` asks of a projector."""

    async def current(
        self, project: str, run_id: str
    ) -> tuple[RunState | None, StreamInfo | None, int]:
        """The run's state, its stream's info, and the log position the state reflects.

        The state is current for the stream when ``info.last_position <= position``.
        """
        ...

    async def run(self, project: str, run_id: str) -> RunState | None:
        """The run's current state, None if the log never mentions it."""
        ...


_decoder = msgspec.msgpack.Decoder(RunStateOut)


class _ProjectorRunStates:
    def __init__(self, store: EventStore, projector: Projector) -> None:
        self._store = store
        self._projector = projector

    async def current(
        self, project: str, run_id: str
    ) -> tuple[RunState | None, StreamInfo | None, int]:
        state = await self._projector.run(project, run_id)
        info = await self._store.stream_info(run_stream(project, run_id))
        return state, info, self._projector.position

    async def run(self, project: str, run_id: str) -> RunState | None:
        return await self._projector.run(project, run_id)


class _ServerRunStates:
    """One round trip gives the state and the stream's info read together on the
    server, so a run that is being written to does not keep init deciding again."""

    def __init__(self, store: HTTPStore) -> None:
        self._store = store

    async def current(
        self, project: str, run_id: str
    ) -> tuple[RunState | None, StreamInfo | None, int]:
        raw = await self._store.request(
            "GET", wire.RUN, params={"project": project, "run_id": run_id}
        )
        answer = _decoder.decode(raw)
        return answer.state, answer.info, answer.position

    async def run(self, project: str, run_id: str) -> RunState | None:
        return (await self.current(project, run_id))[0]


class _Server:
    """A ``ReadModelFactory`` that says whether a store's read model is a server's."""

    def in_memory(self) -> HTTPStore | None:
        return None

    def sqlite_file(self, path: Path, lock_timeout: float) -> HTTPStore | None:
        return None

    def postgres(self, runner: ConnectionRunner) -> HTTPStore | None:
        return None

    def remote(self, store: HTTPStore) -> HTTPStore | None:
        return store


@asynccontextmanager
async def run_states(store: EventStore) -> AsyncIterator[RunStates]:
    """The server's read model for an HTTP store, else a projector of ``store``."""
    server = store.host_read_model(_Server())
    if server is not None:
        yield _ServerRunStates(server)
    else:
        async with open_projector(store) as projector:
            yield _ProjectorRunStates(store, projector)
