"""Files saved by runs, stored in the PostgreSQL database by content.

A file is a ``blobs`` row (digest, size, chunk count) and its bytes in 1 MiB
``blob_chunks`` rows, written in one transaction and read back a chunk at a time, so
neither side holds a large checkpoint in memory. Being in the database, the files
follow the log to any machine that can reach it: a resume elsewhere restores them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

import anyio

from ._errors import CorruptStore, InvalidArgument
from ._files import BLOB_CHUNK as _BLOB_CHUNK
from ._files import BLOB_PREFIX as _BLOB_PREFIX
from ._postgres_schema import Connection

__all__ = ["restore_file", "store_file"]


async def store_file(conn: Connection, source: Path, digest: str, size: int) -> None:
    """Store ``source`` under ``digest`` unless it is stored already (one transaction)."""
    if await conn.fetchval("SELECT 1 FROM blobs WHERE digest = $1", digest):
        return
    chunks = -(-size // _BLOB_CHUNK)
    async with conn.transaction():
        # A concurrent saver of the same content makes this wait for its commit,
        # then find the row and write nothing.
        claimed = await conn.fetchval(
            "INSERT INTO blobs (digest, size, chunks) VALUES ($1, $2, $3) "
            "ON CONFLICT (digest) DO NOTHING RETURNING 1",
            digest,
            size,
            chunks,
        )
        if not claimed:
            return
        hasher = hashlib.blake2b(digest_size=32)
        file = await anyio.to_thread.run_sync(_open_for_reading, source)
        try:
            seq = 0
            while chunk := await anyio.to_thread.run_sync(file.read, _BLOB_CHUNK):
                hasher.update(chunk)
                await conn.execute(
                    "INSERT INTO blob_chunks (digest, seq, data) VALUES ($1, $2, $3)",
                    digest,
                    seq,
                    chunk,
                )
                seq += 1
        finally:
            await anyio.to_thread.run_sync(file.close)
        if seq != chunks or _BLOB_PREFIX + hasher.hexdigest() != digest:
            raise InvalidArgument(f"{source} changed while it was being saved; save it again")


async def restore_file(conn: Connection, digest: str, target: Path, where: str) -> int:
    """Write the file stored under ``digest`` to ``target`` atomically; return its size."""
    row = await conn.fetchrow("SELECT size, chunks FROM blobs WHERE digest = $1", digest)
    if row is None:
        raise InvalidArgument(f"no file with digest {digest} is stored in {where}")
    size, chunks = row
    partial = target.with_name(f".{target.name}.runlog-partial")
    file = await anyio.to_thread.run_sync(_open_for_writing, partial)
    hasher = hashlib.blake2b(digest_size=32)
    try:
        for seq in range(chunks):
            data = await conn.fetchval(
                "SELECT data FROM blob_chunks WHERE digest = $1 AND seq = $2", digest, seq
            )
            if data is None:
                break
            hasher.update(data)
            await anyio.to_thread.run_sync(file.write, data)
    finally:
        await anyio.to_thread.run_sync(file.close)
    if _BLOB_PREFIX + hasher.hexdigest() != digest:
        await anyio.to_thread.run_sync(partial.unlink)
        raise CorruptStore(f"{where}: the stored file {digest} does not match its digest")
    await anyio.to_thread.run_sync(os.replace, partial, target)
    return int(size)


def _open_for_reading(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from exc


def _open_for_writing(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")
