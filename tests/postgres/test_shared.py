"""Several processes' store objects sharing one database: files and the read model."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import asyncpg

from eventstore import open_store
from projections import RunStatus, open_projector

from ..projection_rules._log import init
from ..projection_rules.test_projector import start_run


async def test_the_same_file_saved_at_once_by_two_stores_is_stored_once(
    url: str, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(2 * (1 << 20) + 5))
    results: list[tuple[str, int]] = []
    async with open_store(url) as first, open_store(url) as second:

        async def save(store: object) -> None:
            results.append(await store.put_file(source))  # type: ignore[attr-defined]

        async with anyio.create_task_group() as tg:
            tg.start_soon(save, first)
            tg.start_soon(save, second)
        assert results[0] == results[1]
        assert await second.get_file(results[0][0], tmp_path / "out.bin") == results[0][1]
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM blobs") == 1
        assert await conn.fetchval("SELECT count(*) FROM blob_chunks") == 3
    finally:
        await conn.close()


async def test_projectors_of_several_stores_share_one_read_model(url: str) -> None:
    async with open_store(url) as writer:
        for i in range(20):
            await start_run(writer, f"r{i}", steps=30)
        stores = [await open_store(url) for _ in range(4)]
        try:
            projectors = [await open_projector(store, chunk=50) for store in stores]
            # Four catch-ups race over the same rm_* tables and checkpoint.
            async with anyio.create_task_group() as tg:
                for projector in projectors:
                    tg.start_soon(projector.catch_up)
            head = await writer.head()
            assert [p.position for p in projectors] == [head] * 4
            await writer.append("run:p/late", [init("late")], "no_stream")
            state = await projectors[2].run("p", "late")
            assert state is not None
            assert state.status is RunStatus.RUNNING
            check = await projectors[0].check()
            assert check.ok, check.differences
            assert check.runs == 21
            for projector in projectors:
                await projector.aclose()
        finally:
            for store in stores:
                await store.aclose()
