"""Store backends the conformance suite runs against, and a factory to open them.

A backend plugs in by adding one entry to ``BACKENDS`` (``STORE_BACKENDS`` adds the
ones only the store conformance suite runs): a function from a pytest
``tmp_path`` to the target that ``open_store`` takes. ``persistent`` backends also run
the tests that close and reopen a store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventstore import EventStore, open_store

from ._http import served_sqlite
from ._postgres import database_url


@dataclass(frozen=True)
class Backend:
    name: str
    target: Callable[[Path], str]
    persistent: bool
    own_clock: bool = True
    """The store stamps ``recorded_at`` with the ``clock`` it is opened with (a served
    store stamps with its server's)."""


BACKENDS = [
    Backend("sqlite-file", lambda tmp: str(tmp / "store.db"), persistent=True),
    Backend("sqlite-memory", lambda tmp: ":memory:", persistent=False),
    # A fresh database per target on the test server (see _postgres); skips without one.
    Backend("postgres", database_url, persistent=True),
]

STORE_BACKENDS = [
    *BACKENDS,
    # runlog serve over a SQLite file (in-process, a server per target; see _http): the
    # store protocol over HTTP is held to the same specification. Projector tests keep
    # to the local backends (a served store's read model is the server's, rebuilt there).
    Backend("http", served_sqlite, persistent=True, own_clock=False),
]


class StoreFactory:
    """Opens stores of one backend at one place; ``open()`` again reaches the same log."""

    def __init__(self, backend: Backend, tmp_path: Path) -> None:
        self.backend = backend
        self.target = backend.target(tmp_path)

    @asynccontextmanager
    async def open(self, **options: Any) -> AsyncIterator[EventStore]:
        async with open_store(self.target, **options) as store:
            yield store
