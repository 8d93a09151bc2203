"""Seeded fuzzing of ``runlog verify``: single-byte damage to the events table and to the
file; verify reports it or says in one line what is wrong, never a traceback, never
``ok`` when an event's row changed. tests/tamper_campaign.py runs the same trials at
scale (300 row changes and 50 file flips)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from .._tamper import trial
from .conftest import Story

SEED = 20261128
ROW_CHANGES = 5
FILE_FLIPS = 5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["row", "file"])
def test_verify_reports_every_single_byte_change_without_a_traceback(
    story: Story, tmp_path: Path, kind: str
) -> None:
    rng = random.Random(f"{SEED}-{kind}")
    count = ROW_CHANGES if kind == "row" else FILE_FLIPS
    bad = []
    touched = 0
    for number in range(count):
        for verdict in trial(story.path, tmp_path / f"trial-{number}", kind, rng, (0, 2)):
            touched += verdict.touched_log
            if verdict.traceback or verdict.silent_pass:
                bad.append(verdict.describe())
    assert not bad, "\n".join(bad)
    if kind == "row":
        assert touched == 2 * count  # every row change is a change to the log
