"""The hash chain that makes the log tamper-evident.

Each event's hash is BLAKE2b-256 over the previous event's hash (32 zero bytes before
the first event) and the event's stored bytes: its position, stream version and
``recorded_at``, its id, its stream's name and its payload. Changing, dropping,
moving or reordering any stored event breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["GENESIS_HASH", "chain_hash"]

GENESIS_HASH = bytes(32)
"""The 'previous hash' of the first event."""

_HEADER = struct.Struct(">qqqH")


def chain_hash(
    previous: bytes,
    position: int,
    version: int,
    recorded_at_us: int,
    event_id: bytes,
    stream: bytes,
    data: bytes,
) -> bytes:
    """The hash of one event given the hash before it; ``stream`` is the UTF-8 name."""
    header = _HEADER.pack(position, version, recorded_at_us, len(stream))
    return hashlib.blake2b(
        b"".join((previous, header, event_id, stream, data)), digest_size=32
    ).digest()
