"""The hash chain that makes the log tamper-evident.

Each event's hash is BLAKE2b-256 over the previous event's hash (32 zero bytes before
the first event) and the event's stored bytes: its position, stream version and
``recorded_at``, its id, its stream's name and its payload. Changing, dropping,
moving or reordering any stored event breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["GENESIS_HASH", "chain_batch", "chain_hash"]

GENESIS_HASH = bytes(32)
"""The 'previous hash' of the first event."""

_pack = struct.Struct(">qqqH").pack
_blake2b = hashlib.blake2b
_join = b"".join


def chain_hash(
    previous: bytes,
    position: int,
    version: int,
    recorded_at_us: int,
    event_id: bytes,
    stream: bytes,
    data: bytes,
) -> bytes:
    """The hash of one event given the hash before it; ``stream`` is the UTF-8 name.

    The one definition of the chain: appends, imports and ``check_log`` all call it.
    """
    header = _pack(position, version, recorded_at_us, len(stream))
    return _blake2b(_join((previous, header, event_id, stream, data)), digest_size=32).digest()


def chain_batch(
    previous: bytes,
    stream: str,
    first_position: int,
    first_version: int,
    recorded_at_us: int,
    ids: list[bytes],
    datas: list[bytes],
) -> list[bytes]:
    """The hashes of an append's events, one stream's consecutive versions at
    consecutive positions, all recorded at the same time.

    Exactly ``chain_hash`` for each event in turn, with its work inlined: this runs once
    per appended event, and a call per event costs more than the rest of the loop.
    """
    name = stream.encode()
    length = len(name)
    hashes: list[bytes] = []
    add, pack, blake2b, join = hashes.append, _pack, _blake2b, _join
    version = first_version
    for position, event_id, data in zip(
        range(first_position, first_position + len(ids)), ids, datas, strict=True
    ):
        header = pack(position, version, recorded_at_us, length)
        previous = blake2b(join((previous, header, event_id, name, data)), digest_size=32).digest()
        add(previous)
        version += 1
    return hashes
