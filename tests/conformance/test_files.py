"""Files saved by content: stored once, restored byte for byte, on every backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventstore import EventStore, InvalidArgument

from ._events import steps


async def test_a_file_round_trips_byte_for_byte(store: EventStore, tmp_path: Path) -> None:
    source = tmp_path / "model-best.h5"
    source.write_bytes(os.urandom(3 * (1 << 20) + 17))  # several chunks and a remainder
    digest, size = await store.put_file(source)
    assert size == source.stat().st_size
    assert digest.startswith("blake2b-256:")
    restored = tmp_path / "restored" / "model-best.h5"
    assert await store.get_file(digest, restored) == size
    assert restored.read_bytes() == source.read_bytes()


async def test_the_same_content_is_stored_once(store: EventStore, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"same bytes")
    (tmp_path / "b").write_bytes(b"same bytes")
    assert await store.put_file(tmp_path / "a") == await store.put_file(tmp_path / "b")


async def test_an_empty_file_round_trips(store: EventStore, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    digest, size = await store.put_file(tmp_path / "empty")
    assert size == 0
    assert await store.get_file(digest, tmp_path / "out") == 0
    assert (tmp_path / "out").read_bytes() == b""


async def test_an_unknown_digest_is_refused(store: EventStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no file with digest"):
        await store.get_file("blake2b-256:00", tmp_path / "out")
    assert not (tmp_path / "out").exists()


async def test_a_missing_source_file_is_refused(store: EventStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read"):
        await store.put_file(tmp_path / "missing")


async def test_stream_info_names_exactly_one_stream(store: EventStore) -> None:
    await store.append("run:p/a", steps(0, 2))
    await store.append("run:p/ab", steps(0, 1))
    info = await store.stream_info("run:p/a")
    assert info is not None
    assert (info.name, info.version, info.first_position, info.last_position) == (
        "run:p/a",
        1,
        1,
        2,
    )
    assert await store.stream_info("run:p/none") is None
