"""SQLite's errors as runlog's: what a ``sqlite3.Error`` means for the caller."""

from __future__ import annotations

import sqlite3

from ._errors import CorruptStore, NotARunlogDatabase, StoreBusy, StoreError, StoreUnavailable

__all__ = ["BUSY", "is_busy", "translate_sqlite_error"]

BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_UNAVAILABLE = {
    sqlite3.SQLITE_CANTOPEN: "cannot be opened (check the path and its permissions)",
    sqlite3.SQLITE_FULL: "is on a full disk; free space and retry",
    sqlite3.SQLITE_READONLY: "is read-only for this process; check its permissions",
    sqlite3.SQLITE_IOERR: "had an I/O error; check the disk",
    sqlite3.SQLITE_PERM: "is not accessible to this process; check its permissions",
}


def is_busy(exc: sqlite3.Error) -> bool:
    """True if ``exc`` says another connection holds the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in BUSY


def translate_sqlite_error(exc: sqlite3.Error, where: str) -> StoreError:
    """The runlog error for a ``sqlite3`` error raised while using the store at ``where``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in BUSY:
        return StoreBusy(
            f"{where} stayed locked by other writers; nothing was written. Retry, or raise "
            "lock_timeout when opening the store."
        )
    if primary == sqlite3.SQLITE_CORRUPT:
        return CorruptStore(
            f"{where} is damaged ({exc}); restore it from a backup or export what still reads."
        )
    if primary == sqlite3.SQLITE_NOTADB:
        return NotARunlogDatabase(f"{where} is not a database file ({exc}); it was left untouched.")
    if primary in _UNAVAILABLE:
        name = getattr(exc, "sqlite_errorname", "")
        return StoreUnavailable(f"{where} {_UNAVAILABLE[primary]} ({exc}; {name})")
    return StoreError(f"{where}: unexpected SQLite error {exc} (code {code})")
