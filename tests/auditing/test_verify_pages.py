"""``check_log`` over a log of several pages names damage at its position wherever it
is, mid-page as at the edges."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eventstore import StepLogged, check_log, open_store

EVENTS = 12_000  # more than two of check_log's pages


async def _long_log(path: Path) -> None:
    async with open_store(path) as store:
        for start in range(0, EVENTS, 1000):
            stream = f"run:p/r{start // 1000 % 3}"
            await store.append(
                stream,
                [
                    StepLogged(incarnation=1, step=s, metrics={"loss": 1 / (s + 1)})
                    for s in range(start, start + 1000)
                ],
            )


def _tamper(path: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER events_are_append_only_on_update")
    db.execute("DROP TRIGGER events_are_append_only_on_delete")
    db.execute(sql, args)
    db.close()


async def _check(path: Path) -> list[tuple[int, str]]:
    async with open_store(path, create=False) as store:
        result = await check_log(store)
    assert result.events >= EVENTS - 1
    return [(fault.position, fault.kind) for fault in result.faults]


async def test_a_long_sound_log_checks_clean(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await _long_log(path)
    assert await _check(path) == []


async def test_a_payload_swapped_mid_page_is_named_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await _long_log(path)
    _tamper(
        path,
        "UPDATE events SET data = (SELECT data FROM events WHERE position = 2) WHERE position = ?",
        7_321,
    )
    assert await _check(path) == [(7_321, "hash")]


async def test_an_undecodable_payload_mid_page_is_named_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await _long_log(path)
    _tamper(path, "UPDATE events SET data = x'c1' WHERE position = ?", 9_999)
    assert await _check(path) == [(9_999, "hash"), (9_999, "decode")]


async def test_a_deleted_event_mid_page_is_named_missing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await _long_log(path)
    _tamper(path, "DELETE FROM events WHERE position = ?", 6_001)
    faults = await _check(path)
    assert faults[0] == (6_001, "missing")


async def test_a_time_going_back_mid_page_is_named_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await _long_log(path)
    _tamper(path, "UPDATE events SET recorded_at = 0 WHERE position = ?", 8_500)
    assert (8_500, "time") in await _check(path)
