"""The worst moment to lose a connection: the server committed, the client never heard.

A TCP proxy between the store and a real server forwards everything, and when armed,
swallows the server's ``COMMIT`` acknowledgement and cuts both connections. The
append is stored, but the store sees a broken connection; it must retry with the same
event ids and get the positions stored the first time, never a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from eventstore import open_store

from ..conformance._events import steps

COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete "COMMIT"


class CommitCutter:
    """Forwards connections to the server; when armed, cuts the first one at its COMMIT."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.armed = False
        self.cuts = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, back: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if back and self.armed and COMMIT_COMPLETE in data:
                        self.armed = False
                        self.cuts += 1
                        break  # the server has committed; the client never learns it
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for w in (writer, upstream_writer):
                    with contextlib.suppress(Exception):
                        w.close()

        await asyncio.gather(
            pump(reader, upstream_writer, False), pump(upstream_reader, writer, True)
        )


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[str, CommitCutter]]:
    parts = urlsplit(url)
    cutter = CommitCutter(parts.hostname or "127.0.0.1", parts.port or 5432)
    server = await asyncio.start_server(cutter.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    try:
        yield parts._replace(netloc=netloc).geturl(), cutter
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("expected", ["exact", "any"])
async def test_an_append_whose_commit_acknowledgement_is_lost_is_stored_once(
    url: str, expected: str
) -> None:
    async with open_store(url) as direct:  # creates the database and schema
        await direct.append("run:p/a", steps(0, 2))
    async with proxied(url) as (through, cutter), open_store(through) as store:
        cutter.armed = True
        result = await store.append("run:p/a", steps(2, 3), 1 if expected == "exact" else "any")
        assert cutter.cuts == 1  # the connection really was cut after the commit
        assert result.positions == (3, 4, 5)
        assert result.deduplicated  # found, not written again
        assert result.version == 4
    async with open_store(url) as direct:
        stored = [s async for s in direct.read_stored()]
    assert [s.position for s in stored] == [1, 2, 3, 4, 5]
    assert len({s.event_id for s in stored}) == 5
