"""The SQLite file format: identification, schema creation and version checks.

A runlog database carries ``application_id`` 0x524C4F47 ("RLOG") and its schema
version in ``user_version``, both in the SQLite file header. Opening a file reads the
header with plain file I/O first, so a foreign file or one from a newer runlog is
refused without SQLite ever touching it.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from ._errors import IncompatibleSchema, NotARunlogDatabase, StoreUnavailable

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "check_header", "ensure_schema"]

APPLICATION_ID = 0x524C4F47
SCHEMA_VERSION = 1
_MAGIC = b"SQLite format 3\x00"

_SCHEMA_V1 = (
    """CREATE TABLE streams (
        stream_id      INTEGER PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        version        INTEGER NOT NULL,
        first_position INTEGER NOT NULL,
        last_position  INTEGER NOT NULL
    )""",
    """CREATE TABLE events (
        position    INTEGER PRIMARY KEY,
        stream_id   INTEGER NOT NULL REFERENCES streams (stream_id),
        version     INTEGER NOT NULL,
        event_id    BLOB NOT NULL,
        recorded_at INTEGER NOT NULL,
        data        BLOB NOT NULL,
        hash        BLOB NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream_id, version)",
    "CREATE UNIQUE INDEX events_by_id ON events (event_id)",
    # A guard against other tools, not against tampering (the hash chain is for that).
    """CREATE TRIGGER events_are_append_only_on_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'runlog events are append-only'); END""",
    """CREATE TRIGGER events_are_append_only_on_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'runlog events are append-only'); END""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # Files saved by runs, content-addressed; chunked so a large checkpoint never has
    # to be in memory at once.
    """CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size   INTEGER NOT NULL,
        chunks INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE blob_chunks (
        digest TEXT NOT NULL,
        seq    INTEGER NOT NULL,
        data   BLOB NOT NULL,
        PRIMARY KEY (digest, seq)
    ) WITHOUT ROWID""",
)

# Added after version 1 without changing it: a file without the table is still a
# version 1 file (the table is created when a writer opens it), and an older runlog
# that appends without keeping heads current only leaves them behind, which is
# allowed (see ``_inline.py``). So files stay readable by the runlog that made them.
_HEADS = (
    """CREATE TABLE IF NOT EXISTS stream_heads (
        stream_id INTEGER PRIMARY KEY,
        version   INTEGER NOT NULL,
        state     BLOB NOT NULL
    )""",
)


# POSIX releases every lock a process holds on a file when *any* of its descriptors
# for that file is closed, including SQLite's locks from other connections of this
# process. So the header is read through one descriptor per file that is never closed
# (SQLite's own VFS defers its closes for the same reason).
_descriptors: dict[tuple[int, int], int] = {}
_descriptors_lock = threading.Lock()


def _read_header(path: Path) -> bytes | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(status.st_mode):
        raise StoreUnavailable(f"{path} is a directory; name a database file inside it")
    key = (status.st_dev, status.st_ino)
    with _descriptors_lock:
        descriptor = _descriptors.get(key)
        if descriptor is None:
            descriptor = _descriptors[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return os.pread(descriptor, 100, 0)


def check_header(path: Path) -> bool:
    """Return True if ``path`` holds data, False if it is absent or empty.

    Raises:
        NotARunlogDatabase: the file is not SQLite, or is another application's database.
        IncompatibleSchema: the file was written by a newer runlog.
    """
    try:
        header = _read_header(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreUnavailable(f"cannot read {path}: {exc}") from exc
    if header is None:
        return False
    if not header:
        return False
    if not header.startswith(_MAGIC):
        raise NotARunlogDatabase(
            f"{path} is not a runlog database (not even a SQLite file); it was left untouched. "
            "Point the store at a new path or at an existing runlog database."
        )
    if len(header) < 100:
        raise NotARunlogDatabase(f"{path} is a truncated SQLite file; it was left untouched.")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id != APPLICATION_ID:
        raise NotARunlogDatabase(
            f"{path} is a SQLite database of another application (application_id "
            f"{application_id:#x}); it was left untouched. Use a different path for the runlog store."
        )
    _check_version(path, int.from_bytes(header[60:64], "big"))
    return True


def _has_heads(db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_schema WHERE name = 'stream_heads'").fetchone()
    return found is not None


def _check_version(path: Path | str, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise IncompatibleSchema(
            f"{path} was written by a newer runlog (schema version {version}; this one knows up to "
            f"{SCHEMA_VERSION}); it was left untouched. Upgrade runlog to open it."
        )


def ensure_schema(
    db: sqlite3.Connection, where: str, begin_immediate: Callable[[sqlite3.Connection], None]
) -> None:
    """Check an existing database's schema, or create it in an empty one.

    Checking needs no write lock, so opening a store never waits for other writers;
    creating takes the lock through ``begin_immediate`` and checks again under it.
    """
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    if application_id == APPLICATION_ID:
        _check_version(where, db.execute("PRAGMA user_version").fetchone()[0])
        if not _has_heads(db):
            begin_immediate(db)
            try:
                for statement in _HEADS:
                    db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return
    begin_immediate(db)
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if application_id == 0 and version == 0 and tables == 0:
            # One statement at a time: executescript() would commit halfway.
            for statement in (*_SCHEMA_V1, *_HEADS):
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("INSERT INTO meta (key, value) VALUES ('created_by', 'runlog')")
        elif application_id != APPLICATION_ID:
            raise NotARunlogDatabase(
                f"{where} is a SQLite database of another application; it was left untouched."
            )
        else:
            _check_version(where, version)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
