"""The read model of a ``runlog serve`` server, for projectors of ``http://`` stores.

A local read model of a remote store would replay the whole log over the network on
every open. The server keeps one current already; this one asks it (``/api/store/rm/*``)
and folds nothing itself. ``apply`` and ``catch_up`` ask the server to fold what its
log holds, which keeps read-your-writes: an append that returned is in the server's
log, so the server's next fold sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from eventstore import EventStore, HTTPStore, InvalidArgument, RecordedEvent, wire

from ._copies import RunCopy
from ._fold import RunKey
from ._lifeline import RunLine
from ._readmodel import Snapshot
from ._state import RunState, RunStatus, SweepState, SweepStatus

__all__ = ["RemoteReadModel"]

_int = msgspec.msgpack.Decoder(int)
_run = msgspec.msgpack.Decoder(RunState | None)
_runs = msgspec.msgpack.Decoder(list[RunState])
_sweep = msgspec.msgpack.Decoder(SweepState | None)
_sweeps = msgspec.msgpack.Decoder(list[SweepState])
_rows = msgspec.msgpack.Decoder(list[tuple[int, int]])
_snapshot = msgspec.msgpack.Decoder(Snapshot)
_line = msgspec.msgpack.Decoder(RunLine | None)
_copy = msgspec.msgpack.Decoder(RunCopy | None)


class RemoteReadModel:
    """Run and sweep state as the server's read model holds it."""

    def __init__(self, store: HTTPStore) -> None:
        self._store = store

    async def _get(self, path: str, decoder: msgspec.msgpack.Decoder[Any], **params: Any) -> Any:
        query = {name: value for name, value in params.items() if value is not None}
        return decoder.decode(
            await self._store.request("GET", f"{wire.READ_MODEL}/{path}", params=query)
        )

    async def checkpoint(self) -> int:
        return int(await self._get("position", _int))

    async def follow(self) -> int:
        """Have the server fold everything its log holds; the position it reached."""
        return _int.decode(await self._store.request("POST", f"{wire.READ_MODEL}/catch_up"))

    async def apply(self, records: Sequence[RecordedEvent]) -> int:
        return await self.follow()  # the server folds from its own log

    async def catch_up(self, store: EventStore, chunk: int) -> int:
        return await self.follow()  # the server folds from its own log, not over the network

    async def reset(self) -> None:
        raise InvalidArgument(
            "the read model of a runlog server is rebuilt on the server (stop it and rebuild "
            "with the store's own path or URL), not through http"
        )

    async def run(self, key: RunKey) -> RunState | None:
        state: RunState | None = await self._get("run", _run, project=key[0], run_id=key[1])
        return state

    async def run_line(self, key: RunKey) -> RunLine | None:
        """The run's line as the server's read model keeps it."""
        line: RunLine | None = await self._get("line", _line, project=key[0], run_id=key[1])
        return line

    async def run_copy(self, key: RunKey, position: int) -> RunCopy | None:
        """The server's last copy of the run's state at or before ``position``."""
        copy: RunCopy | None = await self._get(
            "copy", _copy, project=key[0], run_id=key[1], position=position
        )
        return copy

    async def runs(
        self, project: str | None, status: RunStatus | None, limit: int | None = None
    ) -> list[RunState]:
        found: list[RunState] = await self._get(
            "runs",
            _runs,
            project=project,
            status=None if status is None else status.value,
            limit=limit,
        )
        return found

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]:
        found: list[RunState] = await self._get("runs", _runs, sweep_id=sweep_id)
        return found

    async def sweep(self, sweep_id: str) -> SweepState | None:
        state: SweepState | None = await self._get("sweep", _sweep, sweep_id=sweep_id)
        return state

    async def sweeps(self, project: str | None, status: SweepStatus | None) -> list[SweepState]:
        found: list[SweepState] = await self._get(
            "sweeps", _sweeps, project=project, status=None if status is None else status.value
        )
        return found

    async def history(
        self, key: RunKey, start: int | None, stop: int | None, points: int | None
    ) -> list[tuple[int, int]]:
        rows: list[tuple[int, int]] = await self._get(
            "history", _rows, project=key[0], run_id=key[1], start=start, stop=stop, points=points
        )
        return rows

    async def snapshot(self) -> Snapshot:
        found: Snapshot = await self._get("snapshot", _snapshot)
        return found

    async def aclose(self) -> None:
        return None
