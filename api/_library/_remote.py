"""Where ``init`` reads a run's state from, so that no decision waits for a replay.

``init`` decides create-or-resume from the run's state. A local store keeps each run's
head current in the append's own transaction (``projections.run_heads``), so the state
is one indexed row however far the shared read model lags behind the log. For a store
opened from ``http://...`` the server answers instead (``GET /api/store/run``), with
the position it reflects, which keeps init's "was anything appended after the state I
read?" check exact. A store that can keep no heads falls back to a projector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import msgspec

from eventstore import ConnectionRunner, EventStore, HTTPStore, StreamInfo, run_stream, wire
from projections import Projector, RunHeads, RunState, open_projector

from .._wire import RunStateOut
from ._stores import keep_heads

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


class _HeadRunStates:
    """The run's head, read with its stream's info in one snapshot: always current."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def current(
        self, project: str, run_id: str
    ) -> tuple[RunState | None, StreamInfo | None, int]:
        head = await self._store.stream_head(run_stream(project, run_id))  # type: ignore[attr-defined]
        if head is None:
            return None, None, 0
        return RunHeads.decode(head.state), head.info, head.info.last_position

    async def run(self, project: str, run_id: str) -> RunState | None:
        return (await self.current(project, run_id))[0]


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
    """The server's read model for an HTTP store, else the store's run heads (else, for
    a store that keeps none, a projector of ``store``)."""
    server = store.host_read_model(_Server())
    if server is not None:
        yield _ServerRunStates(server)
    elif await keep_heads(store):
        yield _HeadRunStates(store)
    else:
        async with open_projector(store) as projector:
            yield _ProjectorRunStates(store, projector)
