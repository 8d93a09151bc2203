"""Opening files safely: foreign, newer, damaged or locked databases; locations; errors."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import anyio
import pytest

from eventstore import (
    CorruptStore,
    IncompatibleSchema,
    InvalidArgument,
    NotARunlogDatabase,
    StepLogged,
    StoreBusy,
    StoreError,
    StoreUnavailable,
    UnsupportedStore,
    open_store,
)
from eventstore._location import parse_location
from eventstore._sqlite_errors import translate_sqlite_error


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's content hash and the names of the files beside it."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


def one_step(step: int = 0) -> list[StepLogged]:
    return [StepLogged(incarnation=1, step=step, metrics={"loss": 1.0})]


async def assert_refused_untouched(path: Path, error: type[Exception], match: str) -> None:
    before = fingerprint(path)
    with pytest.raises(error, match=match):
        async with open_store(path):
            pass
    assert fingerprint(path) == before


async def test_a_text_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 20)
    await assert_refused_untouched(path, NotARunlogDatabase, "not even a SQLite file")


async def test_random_bytes_are_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "noise.db"
    path.write_bytes(os.urandom(8192))
    await assert_refused_untouched(path, NotARunlogDatabase, "not a runlog database")


async def test_another_applications_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers (name) VALUES ('ada')")
    db.close()
    await assert_refused_untouched(path, NotARunlogDatabase, "another application")


async def test_a_database_from_a_newer_runlog_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with open_store(path) as store:
        await store.append("run:p/a", one_step())
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    await assert_refused_untouched(path, IncompatibleSchema, "newer runlog")


async def test_a_truncated_header_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cut.db"
    async with open_store(path) as store:
        await store.append("run:p/a", one_step())
    path.write_bytes(path.read_bytes()[:60])
    await assert_refused_untouched(path, NotARunlogDatabase, "truncated")


async def test_a_damaged_database_raises_corrupt_store(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    async with open_store(path) as store:
        for step in range(0, 3000, 500):
            await store.append("run:p/a", [e for s in range(step, step + 500) for e in one_step(s)])
    data = bytearray(path.read_bytes())
    page = 4096
    data[page:] = b"\xff" * (len(data) - page)  # every page but the header page
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStore, match="damaged"):
        async with open_store(path) as store:
            [r async for r in store.read_all()]


async def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    async with open_store(path) as store:
        await store.append("run:p/a", one_step())
        assert await store.head() == 1


async def test_missing_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "runlog.db"
    async with open_store(path) as store:
        await store.append("run:p/a", one_step())
    assert path.exists()


async def test_create_false_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="create=True"):
        await open_store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


async def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="directory"):
        await open_store(tmp_path)


async def test_the_database_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


async def test_direct_updates_and_deletes_of_events_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store:
        await store.append("run:p/a", one_step())
    db = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET data = x'00'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM events")
    finally:
        db.close()


async def test_a_writer_held_lock_past_lock_timeout_raises_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, lock_timeout=0.3) as store:
        await store.append("run:p/a", one_step(0))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with anyio.fail_after(10), pytest.raises(StoreBusy, match="lock_timeout"):
                await store.append("run:p/a", one_step(1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await store.append("run:p/a", one_step(1))
        assert await store.head() == 2


async def test_a_lock_released_within_lock_timeout_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, lock_timeout=10) as store:
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")

        async def release_soon() -> None:
            await anyio.sleep(0.3)
            blocker.execute("ROLLBACK")

        async with anyio.create_task_group() as tg:
            tg.start_soon(release_soon)
            await store.append("run:p/a", one_step())
        blocker.close()
        assert await store.head() == 1


# --- locations ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", [":memory:", "sqlite://", "sqlite:///:memory:"])
def test_memory_locations(target: str) -> None:
    assert parse_location(target).path is None


def test_sqlite_url_with_three_slashes_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_location("sqlite:///data/x.db").path == tmp_path / "data" / "x.db"


def test_sqlite_url_with_four_slashes_is_absolute() -> None:
    assert parse_location("sqlite:////srv/runs/x.db").path == Path("/srv/runs/x.db")


def test_a_plain_path_and_a_pathlike(tmp_path: Path) -> None:
    assert parse_location(str(tmp_path / "x.db")).path == tmp_path / "x.db"
    assert parse_location(tmp_path / "x.db").url == f"sqlite:///{tmp_path / 'x.db'}"


@pytest.mark.parametrize(
    "target", ["postgresql://u@localhost/db", "postgres://h/db", "postgresql+asyncpg://h/db"]
)
def test_postgres_urls_name_the_postgres_backend(target: str) -> None:
    location = parse_location(target)
    assert (location.backend, location.path, location.url) == ("postgresql", None, target)


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(UnsupportedStore, match="unknown store scheme 'ftp'"):
        parse_location("ftp://localhost:8080")


@pytest.mark.parametrize("target", ["http://localhost:8080", "https://runs.example/"])
def test_a_server_url_is_an_http_store(target: str) -> None:
    location = parse_location(target)
    assert (location.backend, location.path, location.url) == ("http", None, target.rstrip("/"))


@pytest.mark.parametrize("target", ["", "   "])
def test_an_empty_location_is_refused(target: str) -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        parse_location(target)


# --- driver errors, translated once -----------------------------------------------------


def real_error(action: str, tmp_path: Path) -> sqlite3.Error:
    """Provoke a real sqlite3 error of the named kind."""
    try:
        if action == "busy":
            path = tmp_path / "busy.db"
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("CREATE TABLE t (x)")
            holder.execute("BEGIN IMMEDIATE")
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
        elif action == "notadb":
            path = tmp_path / "text.db"
            path.write_text("plain text " * 100)
            sqlite3.connect(path).execute("SELECT * FROM sqlite_schema")
        elif action == "readonly":
            path = tmp_path / "ro.db"
            sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
            sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("INSERT INTO t VALUES (1)")
        elif action == "cantopen":
            sqlite3.connect(tmp_path / "no" / "such" / "dir.db")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError(f"{action} raised nothing")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("busy", StoreBusy),
        ("notadb", NotARunlogDatabase),
        ("readonly", StoreUnavailable),
        ("cantopen", StoreUnavailable),
    ],
)
def test_sqlite_errors_map_to_runlog_errors(
    action: str, expected: type[StoreError], tmp_path: Path
) -> None:
    translated = translate_sqlite_error(real_error(action, tmp_path), "the test store")
    assert type(translated) is expected
    assert "the test store" in str(translated)


async def test_an_existing_store_opens_and_reads_while_a_writer_holds_the_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store:
        await store.append("run:p/a", one_step())
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with anyio.fail_after(5):
            async with open_store(path, lock_timeout=30) as store:
                assert [r.version async for r in store.read_all()] == [0]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_reading_a_header_keeps_the_locks_other_connections_hold(tmp_path: Path) -> None:
    # POSIX drops every lock a process holds on a file when any descriptor of it is
    # closed. A header read that closed its descriptor released SQLite's locks held by
    # other connections of the process, and corrupted shared stores under load.
    import sys

    path = tmp_path / "other.db"  # rollback journal: the write lock is on this file itself
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(NotARunlogDatabase):
            await open_store(path)  # reads the header in this process
        probe = (
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
            "try:\n    db.execute('BEGIN IMMEDIATE')\nexcept sqlite3.OperationalError as e:\n"
            "    print('locked' if 'locked' in str(e) else e)\nelse:\n    print('acquired')\n"
        )
        done = await anyio.run_process([sys.executable, "-c", probe, str(path)])
        assert done.stdout.decode().strip() == "locked"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
