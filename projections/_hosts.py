"""The read model for each kind of store, chosen by the store (``host_read_model``)."""

from __future__ import annotations

from pathlib import Path

from eventstore import ConnectionRunner, HTTPStore

from ._readmodel import MemoryReadModel, ReadModel
from ._remote import RemoteReadModel
from ._sqlite import SQLiteReadModel

__all__ = ["READ_MODELS", "ReadModels"]


class ReadModels:
    """A ``ReadModelFactory`` of opened read models (each method returns a coroutine)."""

    async def in_memory(self) -> ReadModel:
        """For an in-memory store."""
        return MemoryReadModel()

    async def sqlite_file(self, path: Path, lock_timeout: float) -> ReadModel:
        """Tables in the store's SQLite file."""
        return await SQLiteReadModel.open_at(path, lock_timeout)

    async def postgres(self, runner: ConnectionRunner) -> ReadModel:
        """Tables in the store's PostgreSQL database."""
        from ._postgres import PostgresReadModel  # asyncpg's world: loaded only when used

        return await PostgresReadModel.open_on(runner)

    async def remote(self, store: HTTPStore) -> ReadModel:
        """The read model of a ``runlog serve`` server."""
        return RemoteReadModel(store)


READ_MODELS = ReadModels()
