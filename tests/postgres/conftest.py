"""Fixtures for the PostgreSQL-only tests: a fresh database and raw connections to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from .._postgres import database_url, require_server


@pytest.fixture
def url() -> str:
    """The URL of a fresh database (created by the first ``open_store``)."""
    return database_url()


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's maintenance database, to look at and kill sessions."""
    conn = await asyncpg.connect(require_server().url)
    try:
        yield conn
    finally:
        await conn.close()
