"""Stored files, the part every backend shares: content digests and chunk sizes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ._errors import InvalidArgument

__all__ = ["BLOB_CHUNK", "BLOB_PREFIX", "hash_file", "new_digest"]

BLOB_CHUNK = 1 << 20
"""Bytes per stored chunk: neither side ever holds a whole large file in memory."""
BLOB_PREFIX = "blake2b-256:"


def new_digest() -> hashlib.blake2b:
    """A hasher whose ``BLOB_PREFIX + hexdigest()`` is a stored file's digest."""
    return hashlib.blake2b(digest_size=32)


def hash_file(path: Path) -> tuple[str, int]:
    """The digest and size of the file at ``path``, read a chunk at a time."""
    hasher = new_digest()
    size = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(BLOB_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from exc
    return BLOB_PREFIX + hasher.hexdigest(), size
