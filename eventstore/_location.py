"""Parsing the one argument that says where a store lives."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import msgspec

from ._errors import InvalidArgument, UnsupportedStore

__all__ = ["StoreLocation", "parse_location"]


class StoreLocation(msgspec.Struct, frozen=True):
    """A parsed store location."""

    backend: Literal["sqlite", "postgresql", "http"]
    path: Path | None
    """The database file for SQLite; None for an in-memory store or a server URL."""
    url: str


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SUPPORTED = (
    "a file path, 'sqlite:///relative/path.db', 'sqlite:////absolute/path.db', "
    "':memory:' or 'sqlite://' (in memory), 'postgresql://user@host/dbname', or a "
    "'runlog serve' URL (http://host:port)"
)


def parse_location(target: str | os.PathLike[str]) -> StoreLocation:
    """Turn a path or URL into a ``StoreLocation``.

    SQLite URLs follow SQLAlchemy's convention: three slashes before a relative path,
    four before an absolute one. ``postgresql://``, ``postgres://`` and
    ``postgresql+asyncpg://`` URLs name a PostgreSQL database (libpq's URL syntax).
    """
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, str):
        raise InvalidArgument(f"a store is a path or URL string, not {type(target).__name__}")
    if not target.strip():
        raise InvalidArgument(f"the store location is empty; pass {_SUPPORTED}")
    if target in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return StoreLocation("sqlite", None, "sqlite://")
    if target.startswith("sqlite:///"):
        rest = target[len("sqlite:///") :]
        if not rest:
            raise InvalidArgument(f"{target!r} names no file; pass {_SUPPORTED}")
        return _file(Path(rest))
    scheme, sep, _ = target.partition("://")
    if sep and _SCHEME.fullmatch(scheme):
        if scheme in ("http", "https"):
            return StoreLocation("http", None, target.rstrip("/"))
        if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
            return StoreLocation("postgresql", None, target)
        raise UnsupportedStore(f"unknown store scheme {scheme!r} in {target!r}; pass {_SUPPORTED}")
    return _file(Path(target))


def _file(path: Path) -> StoreLocation:
    path = path.expanduser().absolute()
    return StoreLocation("sqlite", path, f"sqlite:///{path}")
