"""`runlog history` on long runs: printed as it is read, in bounded memory, with
progress counted from the index; times in the "changed" column read as times."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anyio

import api
from api._audit._queries import timeline

from .conftest import REPO, Story, cli


async def steps_run(path: Path, steps: int) -> None:
    async with api.init(project="p", id="long", store=path) as run:
        for step in range(steps):
            await run.log({"loss": float(step)})


def peak_rss_kb(*args: str) -> int:
    """The peak resident memory of ``runlog ARGS`` run as a process, output discarded."""
    child = subprocess.Popen(
        [sys.executable, "-m", "api", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0
    return usage.ru_maxrss


def test_history_of_every_step_does_not_hold_the_run_in_memory(tmp_path: Path) -> None:
    short, long = tmp_path / "short.db", tmp_path / "long.db"
    anyio.run(steps_run, short, 10)
    anyio.run(steps_run, long, 20_000)
    baseline = peak_rss_kb("history", "p/long", "--all-steps", "--store", str(short))
    peak = peak_rss_kb("history", "p/long", "--all-steps", "--store", str(long))
    # 20,000 rows held as a table cost well over 60 MB; streamed, a few MB at most.
    assert peak - baseline < 25_000, (baseline, peak)


def test_history_progress_counts_the_run_from_the_index(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    anyio.run(steps_run, path, 12_000)
    calls: list[tuple[int, int]] = []

    async def read() -> int:
        entries = 0
        async for _ in timeline("p/long", store=path, progress=lambda d, t: calls.append((d, t))):
            entries += 1
        return entries

    entries = anyio.run(read)
    assert entries == 12_002  # RunInitialized, the steps, RunExited
    assert calls[0] == (0, 12_002)  # the total is known before the first event is read
    assert [done for done, _ in calls[1:]] == [5000, 10_000]
    assert {total for _, total in calls} == {12_002}


def test_history_prints_times_in_the_changed_column_not_microsecond_counters(
    story: Story,
) -> None:
    result = cli("history", "p/alpha", "--store", story.path)
    assert result.exit_code == 0, result.output
    assert not re.search(r"\b1[0-9]{15}\b", result.stdout), result.stdout
    assert re.search(r"created: - -> 20[0-9]{2}-[0-9]{2}-[0-9]{2} ", result.stdout)
