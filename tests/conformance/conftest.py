"""The conformance suite runs over every store backend, the HTTP store included."""

from __future__ import annotations

import pytest

from .._backends import STORE_BACKENDS, Backend


@pytest.fixture(params=STORE_BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=[b for b in STORE_BACKENDS if b.persistent], ids=lambda b: b.name)
def persistent_backend(request: pytest.FixtureRequest) -> Backend:
    """The backends whose log outlives the store object."""
    return request.param  # type: ignore[no-any-return]
