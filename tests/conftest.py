"""Shared fixtures: every store behaviour runs against every backend (see ``_backends``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventstore import EventStore

from ._backends import BACKENDS, Backend, StoreFactory
from ._postgres import stop_server


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def factory(backend: Backend, tmp_path: Path) -> StoreFactory:
    return StoreFactory(backend, tmp_path)


@pytest.fixture
async def store(factory: StoreFactory) -> AsyncIterator[EventStore]:
    async with factory.open() as opened:
        yield opened


@pytest.fixture(params=[b for b in BACKENDS if b.persistent], ids=lambda b: b.name)
def persistent_backend(request: pytest.FixtureRequest) -> Backend:
    """The backends whose log outlives the store object."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def persistent_factory(persistent_backend: Backend, tmp_path: Path) -> StoreFactory:
    return StoreFactory(persistent_backend, tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _postgres_server() -> Iterator[None]:
    """Stop the throwaway PostgreSQL server (if a test started one) when the session ends."""
    yield
    stop_server()
