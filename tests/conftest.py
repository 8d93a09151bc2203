"""Shared fixtures: every store behaviour runs against every backend (see ``_backends``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventstore import EventStore

from ._backends import BACKENDS, STORE_BACKENDS, Backend, StoreFactory
from ._http import stop_servers
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


@pytest.fixture(params=[b for b in STORE_BACKENDS if b.own_clock], ids=lambda b: b.name)
def clocked_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Stores of the backends that stamp times with the clock they are opened with."""
    return StoreFactory(request.param, tmp_path)


@pytest.fixture
def persistent_factory(persistent_backend: Backend, tmp_path: Path) -> StoreFactory:
    return StoreFactory(persistent_backend, tmp_path)


@pytest.fixture(autouse=True)
def _http_servers() -> Iterator[None]:
    """Stop the test servers a test started (the HTTP backend's) when it ends."""
    yield
    stop_servers()


@pytest.fixture(scope="session", autouse=True)
def _postgres_server() -> Iterator[None]:
    """Stop the throwaway PostgreSQL server (if a test started one) when the session ends."""
    yield
    stop_server()
