"""A projector of an ``http://`` store asks the server's read model, never replays."""

from __future__ import annotations

from pathlib import Path

import pytest

import api
from eventstore import HTTPStore, open_store
from projections import open_projector
from projections._remote import RemoteReadModel

from ._server import TOKEN


@pytest.fixture
def url(server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RUNLOG_TOKEN", TOKEN)  # claims write
    return server


async def test_remote_queries_equal_the_local_projector(
    url: str, populated: tuple[Path, dict[str, str]]
) -> None:
    path, names = populated
    async with (
        open_store(path) as local,
        open_projector(local) as here,
        open_store(url) as remote,
        open_projector(remote) as there,
    ):
        assert isinstance(remote, HTTPStore)
        assert await there.runs() == await here.runs()
        assert await there.runs("a", "finished") == await here.runs("a", "finished")
        assert await there.sweep(names["sweep"]) == await here.sweep(names["sweep"])
        assert await there.sweeps() == await here.sweeps()
        assert await there.run("a", "done") == await here.run("a", "done")
        assert await there.history("a", "done", points=10) == await here.history(
            "a", "done", points=10
        )
        assert (await there.check()).ok


async def test_a_remote_projector_reads_no_events(url: str) -> None:
    reads = 0
    async with open_store(url) as remote:
        assert isinstance(remote, HTTPStore)
        original = remote.read_all_pages

        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return original(*args, **kwargs)

        remote.read_all_pages = counting  # type: ignore[method-assign]
        async with open_projector(remote) as projector:
            assert await projector.runs()
            assert projector._read_model.__class__ is RemoteReadModel
    assert reads == 0


async def test_claims_through_the_server_see_appends_at_once(
    url: str, populated: tuple[Path, dict[str, str]]
) -> None:
    _, names = populated
    work = await api.claim(names["sweep"], "remote-agent", store=url)
    assert work is not None
    assert work.run_id == names["queued"]  # the queue first, as locally
    again = await api.claim(names["sweep"], "remote-agent", store=url)
    assert again is not None
    assert again.run_id != work.run_id  # the claim just made is already in the state


async def test_a_remote_projector_gets_lines_and_copies_from_the_server(
    url: str, populated: tuple[Path, dict[str, str]]
) -> None:
    path, _ = populated
    async with (
        open_store(path) as local,
        open_projector(local) as here,
        open_store(url) as remote,
        open_projector(remote) as there,
    ):
        line = await there.run_line("a", "done")
        assert line is not None
        assert line == await here.run_line("a", "done")
        assert [b.end for b in line.line.bands] == ["exit 0"]
        assert await there.run_line("a", "nope") is None
        head = await local.head()
        assert await there.run_copy("a", "done", head) == await here.run_copy("a", "done", head)
