"""How a store says which read model it can keep beside its log.

The projections package knows read models; this package knows stores. A store does not
import read models (that would turn the dependency around), and the projector does not
ask which class a store is: it hands the store a ``ReadModelFactory`` and the store
calls the one method that fits it (``host_read_model``), passing what that read model
needs: the database file, a runner of its connections, or the server client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ._http import HTTPStore

__all__ = ["ConnectionRunner", "ReadModelFactory"]

_T = TypeVar("_T")
_M = TypeVar("_M", covariant=True)


class ConnectionRunner(Protocol):
    """Runs functions on a store's database connections, with the store's error handling."""

    @property
    def where(self) -> str:
        """The database as error messages name it."""
        ...

    async def run(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """``await fn(connection, *args)`` on a pooled connection; a lost connection is
        replaced and ``fn`` run again, so ``fn`` must be one transaction."""
        ...


class ReadModelFactory(Protocol[_M]):
    """Makes the read model that fits a store; the store picks the method."""

    def in_memory(self) -> _M:
        """For a store that lives in memory: the read model lives in memory too."""
        ...

    def sqlite_file(self, path: Path, lock_timeout: float) -> _M:
        """For a SQLite file: tables in the same file, on a connection of its own."""
        ...

    def postgres(self, runner: ConnectionRunner) -> _M:
        """For a PostgreSQL database: tables in the same database, on the store's pool."""
        ...

    def remote(self, store: HTTPStore) -> _M:
        """For a ``runlog serve`` server: the server's own read model, asked over HTTP."""
        ...
