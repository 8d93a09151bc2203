"""Run ids (contract §1)."""

from __future__ import annotations

import re

import pytest

import api
from api._library._ids import check_run_id


@pytest.mark.parametrize("run_id", ["abc12345", "Run-1_x.y", "ü-ñ", "a" * 64, "0"])
def test_valid_ids_are_kept_exactly(run_id: str) -> None:
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize(
    ("run_id", "why"),
    [
        ("", "empty"),
        ("a" * 65, "limit is 64"),
        (" a", "whitespace"),
        ("a ", "whitespace"),
        ("a\tb", "control character"),
        ("a\x00b", "control character"),
        *[(f"a{c}b", re.escape(repr(c))) for c in "/\\#?%:;,'"],
    ],
)
def test_invalid_ids_are_refused_with_the_reason(run_id: str, why: str) -> None:
    with pytest.raises(api.InvalidRunId, match=why):
        check_run_id(run_id)


def test_a_non_string_id_is_refused() -> None:
    with pytest.raises(api.InvalidRunId, match="string"):
        check_run_id(42)


def test_generated_ids_are_8_characters_of_a_to_z_and_0_to_9() -> None:
    ids = {api.generate_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[a-z0-9]{8}", i) for i in ids)


async def test_ids_are_compared_exactly_not_case_folded(root) -> None:  # type: ignore[no-untyped-def]
    async with api.init(project="p", id="Run"):
        pass
    async with api.init(project="p", id="run") as run:  # another run, not a resume
        assert not run.resumed


async def test_an_invalid_id_from_init_is_refused_and_nothing_is_written(root) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(api.InvalidRunId):
        await api.init(project="p", id="a/b")
    assert not (root / "runlog" / "runlog.db").exists()


async def test_an_empty_id_is_refused_not_replaced_by_a_generated_one(root) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(api.InvalidRunId, match="empty"):
        await api.init(project="p", id="")
    assert not (root / "runlog" / "runlog.db").exists()
