"""The PostgreSQL schema: identification, versioned creation and migrations.

A runlog database holds a ``runlog_meta`` table whose ``schema_version`` row says which
of ``MIGRATIONS`` have been applied. Opening a database:

- with ``runlog_meta``: applies the migrations it lacks, or refuses a newer version
  (``IncompatibleSchema``) without touching anything;
- without it but with tables of its own: refuses it (``NotARunlogDatabase``), untouched;
- empty: creates the schema.

All of it runs in one transaction under a transaction-level advisory lock, so several
processes opening a fresh database at once create the schema exactly once.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ._errors import IncompatibleSchema, NotARunlogDatabase

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one lent by a pool."""

__all__ = ["APPEND_LOCK", "MIGRATIONS", "SCHEMA_LOCK", "SCHEMA_VERSION", "ensure_schema"]

# Advisory lock keys: one 64-bit number each, "RLOG" + a purpose, so they are unlikely
# to meet another application's keys in a shared database.
APPEND_LOCK = 0x524C4F47_00000001
"""Serialises appends (see ``_postgres``: why positions need it)."""
SCHEMA_LOCK = 0x524C4F47_00000002
"""Serialises schema creation and migrations."""

_V1 = (
    """CREATE TABLE runlog_meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    )""",
    """CREATE TABLE streams (
        stream_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name           text NOT NULL UNIQUE,
        version        bigint NOT NULL,
        first_position bigint NOT NULL,
        last_position  bigint NOT NULL
    )""",
    # No foreign key from events to streams: both are written under the append lock,
    # and a key check per inserted row would cost appends a third of their speed.
    """CREATE TABLE events (
        position    bigint PRIMARY KEY,
        stream_id   bigint NOT NULL,
        version     bigint NOT NULL,
        event_id    bytea NOT NULL,
        recorded_at bigint NOT NULL,
        data        bytea NOT NULL,
        hash        bytea NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream_id, version)",
    "CREATE UNIQUE INDEX events_by_id ON events (event_id)",
    # A guard against other tools, not against tampering (the hash chain is for that).
    """CREATE FUNCTION runlog_events_are_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'runlog events are append-only' USING ERRCODE = 'restrict_violation';
    END
    $$""",
    """CREATE TRIGGER events_are_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION runlog_events_are_append_only()""",
    """CREATE TRIGGER events_are_never_truncated BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION runlog_events_are_append_only()""",
    # Files saved by runs, content-addressed and chunked, so a resume on another
    # machine restores them and a large checkpoint is never in memory at once.
    """CREATE TABLE blobs (
        digest text PRIMARY KEY,
        size   bigint NOT NULL,
        chunks integer NOT NULL
    )""",
    """CREATE TABLE blob_chunks (
        digest text NOT NULL,
        seq    integer NOT NULL,
        data   bytea NOT NULL,
        PRIMARY KEY (digest, seq)
    )""",
    "INSERT INTO runlog_meta (key, value) VALUES ('created_by', 'runlog')",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V1}
"""The statements that take a database from version ``n - 1`` to ``n``."""
SCHEMA_VERSION = max(MIGRATIONS)
"""The schema version this build writes."""


# Added after version 1 without changing it (see the SQLite schema module for why):
# created, under the schema lock, by whoever opens a database that lacks it.
_HEADS = """CREATE TABLE IF NOT EXISTS stream_heads (
    stream_id bigint PRIMARY KEY,
    version   bigint NOT NULL,
    state     bytea NOT NULL
)"""


async def _has_heads(conn: Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'stream_heads')"
        )
    )


async def schema_version(conn: Connection) -> int | None:
    """The database's runlog schema version; None if it has no ``runlog_meta`` table."""
    # A query on pg_tables, not to_regclass(): name lookups go through a cache that an
    # advisory lock does not refresh, so they can miss a table another session just
    # created; a query sees everything committed before it started.
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
        "WHERE schemaname = current_schema() AND tablename = 'runlog_meta')"
    ):
        return None
    value = await conn.fetchval("SELECT value FROM runlog_meta WHERE key = 'schema_version'")
    return int(value) if value is not None else 0


async def ensure_schema(conn: Connection, where: str) -> None:
    """Check the database's schema; create or migrate it if needed.

    Raises:
        NotARunlogDatabase: the database holds tables of another application.
        IncompatibleSchema: the database was written by a newer runlog.
    """
    version = await schema_version(conn)
    if version == SCHEMA_VERSION and await _has_heads(conn):
        return  # the common case needs no lock
    _check_version(where, version)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        version = await schema_version(conn)
        _check_version(where, version)
        if version is None:
            foreign = await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name LIMIT 5"
            )
            if foreign:
                names = ", ".join(row[0] for row in foreign)
                raise NotARunlogDatabase(
                    f"{where} holds tables of another application ({names}) and no runlog "
                    "schema; it was left untouched. Point the store at an empty database "
                    "(CREATE DATABASE runlog) or at an existing runlog database."
                )
            version = 0
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                await conn.execute(statement)
        await conn.execute(_HEADS)
        await conn.execute(
            "INSERT INTO runlog_meta (key, value) VALUES ('schema_version', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            str(SCHEMA_VERSION),
        )


def _check_version(where: str, version: int | None) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise IncompatibleSchema(
            f"{where} was written by a newer runlog (schema version {version}; this one knows up "
            f"to {SCHEMA_VERSION}); it was left untouched. Upgrade runlog to open it."
        )
