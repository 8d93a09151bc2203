"""PostgreSQL's errors as runlog's, and which of them a new connection may get past."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from ._errors import CorruptStore, StoreBusy, StoreError, StoreUnavailable
from ._postgres_schema import Connection

__all__ = [
    "CAUGHT",
    "DRIVER_ERRORS",
    "broken",
    "discard",
    "is_transient",
    "translate_postgres_error",
]

# Errors after which a new connection may well succeed: the connection broke, the
# server is restarting or shed the session.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    *_TRANSIENT,
)
CAUGHT: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, asyncpg.InternalClientError)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` is a broken or refused connection that a retry may get past."""
    if isinstance(exc, _TRANSIENT):
        return True
    # asyncpg reports use of a connection the server already closed this way.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def translate_postgres_error(exc: BaseException, where: str) -> StoreError:
    """The runlog error for an asyncpg (or socket) error raised while using ``where``."""
    if isinstance(exc, (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError)):
        return StoreBusy(
            f"{where}: other writers held the append lock for longer than lock_timeout; nothing "
            "was written. Retry, or raise lock_timeout when opening the store."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StoreUnavailable(
            f"{where} does not exist ({exc}); create it (CREATE DATABASE) or open the store "
            "with create=True and a user allowed to create databases"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return StoreUnavailable(
            f"{where} refused the login ({exc}); check the user and password in the URL, "
            "PGPASSWORD or ~/.pgpass, and the server's pg_hba.conf"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StoreUnavailable(
            f"{where}: permission denied ({exc}); grant the user access to the database"
        )
    if isinstance(exc, asyncpg.InsufficientResourcesError):
        return StoreUnavailable(f"{where}: the server is out of resources ({exc}); retry later")
    if isinstance(exc, asyncpg.InternalServerError):
        return CorruptStore(f"{where}: the server reports damage ({exc}); restore from a backup")
    if isinstance(exc, asyncpg.ObjectNotInPrerequisiteStateError):
        return StoreUnavailable(f"{where} does not accept connections now ({exc}); retry later")
    if is_transient(exc):
        return StoreUnavailable(
            f"{where} cannot be reached ({type(exc).__name__}: {exc}); check that the server "
            "is running and the URL's host and port. Nothing unacknowledged was kept; "
            "retrying an append with the same NewEvent ids is safe."
        )
    if isinstance(exc, asyncpg.RestrictViolationError):
        return StoreError(f"{where}: {exc}")
    return StoreError(f"{where}: unexpected PostgreSQL error {type(exc).__name__}: {exc}")


def broken(conn: Connection) -> bool:
    """True if ``conn`` was closed under us (the pool then takes it back by itself)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


def discard(conn: Connection) -> None:
    """Close ``conn`` so the pool replaces it; harmless if it is closed already."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()
