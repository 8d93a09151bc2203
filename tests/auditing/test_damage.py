"""Damage is reported, never a traceback: undecodable payloads, damaged read-model
pages and truncated files, with the log checked here and in worker processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from api._audit._verify import verify
from eventstore import DecodeError, Heartbeat, StepLogged, open_store

from .._backends import BACKENDS, Backend
from .conftest import Story, runlog
from .test_verify import forge, long_log, raw, step_position

NOT_UTF8 = b"lo\xffs"  # an invalid UTF-8 start byte inside a metric name


def not_utf8_payload(data: bytes) -> bytes:
    """``data`` (a ``StepLogged`` with a metric ``loss``) with the name made invalid UTF-8."""
    assert data.count(b"loss") == 1
    return data.replace(b"loss", NOT_UTF8)


async def tamper_payload(target: str, position: int, data: bytes) -> None:
    """Overwrite the stored payload at ``position``, bypassing runlog (and its triggers)."""
    if target.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(target)
        try:
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            await conn.execute("UPDATE events SET data = $1 WHERE position = $2", data, position)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
        finally:
            await conn.close()
    else:
        with raw(Path(target)) as db:
            db.execute("UPDATE events SET data = ? WHERE position = ?", (data, position))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.persistent], ids=lambda b: b.name)
async def test_a_payload_that_is_not_utf8_is_a_decode_error_naming_its_position_in_every_reader(
    backend: Backend, tmp_path: Path
) -> None:
    target = backend.target(tmp_path)
    async with open_store(target) as store:
        await store.append("run:p/a", [Heartbeat(incarnation=1)])
        await store.append("run:p/a", [StepLogged(incarnation=1, step=0, metrics={"loss": 0.5})])
        await store.append("run:p/a", [Heartbeat(incarnation=1)])
        [stored] = [s async for s in store.read_stored(2, to_position=2)]
    await tamper_payload(target, 2, not_utf8_payload(stored.data))
    async with open_store(target, create=False) as store:

        async def read_all() -> object:
            return [r async for r in store.read_all()]

        async def read_all_pages() -> object:
            return [p async for p in store.read_all_pages(1)]

        async def read_stream() -> object:
            return [r async for r in store.read_stream("run:p/a")]

        async def read_positions() -> object:
            return await store.read_positions([2])

        for read in (read_all, read_all_pages, read_stream, read_positions):
            with pytest.raises(DecodeError) as caught:
                await read()
            assert caught.value.position == 2, read.__name__
            assert "position 2" in str(caught.value), read.__name__
            assert "UTF-8" in str(caught.value), read.__name__


def test_verify_names_a_payload_that_is_not_utf8_in_worker_processes(story: Story) -> None:
    position, data = step_position(story.path, 4)
    forge(story.path, position, not_utf8_payload(data))
    report = anyio.run(lambda: verify(store=story.path, workers=2, parallel_from=1))
    fault = report.log.first_fault
    assert fault is not None
    assert (fault.position, fault.kind) == (position, "decode")
    assert "UTF-8" in fault.detail


def test_the_verify_command_reports_a_payload_that_is_not_utf8(story: Story) -> None:
    position, data = step_position(story.path, 4)
    forge(story.path, position, not_utf8_payload(data))
    for workers in ("0", "2"):
        result = runlog(
            "verify", "--store", story.path, "--workers", workers, "--parallel-from", "1"
        )
        assert "Traceback" not in result.stderr
        assert result.returncode == 1, result.stderr
        assert f"position {position}: decode:" in result.stdout
        assert f"FAILED at position {position}" in result.stderr


def damage_page_of(path: Path, table: str) -> None:
    """Zero the page-type byte of ``table``'s first page: SQLite calls it malformed."""
    with sqlite3.connect(path) as db:
        (page,) = db.execute("SELECT pageno FROM dbstat WHERE name = ?", (table,)).fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with path.open("r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\x00")


def test_verify_reports_a_damaged_read_model_page_with_worker_processes(story: Story) -> None:
    damage_page_of(story.path, "rm_runs")
    report = anyio.run(lambda: verify(store=story.path, workers=2, parallel_from=1))
    assert not report.ok
    assert report.log.ok, report.log.faults  # the log itself is intact
    assert report.first_bad_position is None
    assert report.advice is not None
    assert "read models" in report.advice
    assert "runlog export" in report.advice
    assert "runlog import" in report.advice


def test_the_verify_command_says_how_to_rebuild_a_damaged_read_model(story: Story) -> None:
    damage_page_of(story.path, "rm_runs")
    result = runlog("verify", "--store", story.path, "--workers", "2", "--parallel-from", "1")
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    [failed] = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert f"runlog export --store {story.path} -o log.jsonl" in failed
    assert "runlog import log.jsonl --store NEW.db" in failed


def test_verify_reports_a_truncated_file_with_worker_processes(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    anyio.run(long_log, path, 3000)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2 // 4096 * 4096)
    result = runlog("verify", "--store", path, "--workers", "2", "--parallel-from", "1")
    assert "Traceback" not in result.stderr
    assert result.returncode == 1, result.stderr
    [failed] = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert "FAILED at position" in failed
    assert "restore" in failed


def test_a_row_whose_payload_column_is_not_a_blob_is_a_fault_not_a_crash(story: Story) -> None:
    position, _ = step_position(story.path, 2)
    with raw(story.path) as db:  # an integer where the payload's bytes belong
        db.execute("UPDATE events SET data = 7 WHERE position = ?", (position,))
    for workers in (0, 2):
        report = anyio.run(lambda w=workers: verify(store=story.path, workers=w, parallel_from=1))
        fault = report.log.first_fault
        assert fault is not None
        assert fault.position == position


def test_reading_commands_report_an_undecodable_event_in_one_line_naming_it(story: Story) -> None:
    position, data = step_position(story.path, 4)
    forge(story.path, position, not_utf8_payload(data))
    # (`show` reads no step event: it answers from the read model's rows.)
    for args in (["history", "p/alpha"], ["replay"]):
        result = runlog(*args, "--store", story.path)
        assert result.returncode == 4, (args, result.stderr)  # the store is damaged
        [line] = result.stderr.splitlines()
        assert line.startswith("runlog: event at position ")
        assert f"position {position}" in line


async def test_verify_reports_a_changed_payload_on_postgresql(tmp_path: Path) -> None:
    [postgres] = [b for b in BACKENDS if b.name == "postgres"]
    target = postgres.target(tmp_path)
    async with open_store(target) as store:
        for step in range(5):
            await store.append(
                "run:p/a", [StepLogged(incarnation=1, step=step, metrics={"loss": 0.5})]
            )
        [stored] = [s async for s in store.read_stored(3, to_position=3)]
    await tamper_payload(target, 3, not_utf8_payload(stored.data))
    for workers in (0, 2):
        report = await verify(store=target, workers=workers, parallel_from=1)
        fault = report.log.first_fault
        assert fault is not None
        assert fault.position == 3
        assert report.advice is not None
