"""Tampering with a stored SQLite log, and judging what ``runlog verify`` said about it.

Shared by the suite's seeded fuzz test (tests/auditing/test_tamper_fuzz.py) and the
longer campaign (tests/tamper_campaign.py). Two kinds of damage:

* ``row``: one byte of one event's ``data`` or ``hash`` column changed through SQL, as
  someone editing the table would (the append-only triggers are dropped for the edit
  and put back);
* ``file``: one byte anywhere in the database file changed, as a failing disk or a bad
  copy would; it can land in an event, an index, the read model, the header or a free
  page.

The oracle is plain ``sqlite3``: a change *touched the log* when the ``events`` and
``streams`` rows it returns differ from the original ones, or it cannot return them.
``verify`` must then exit non-zero; in every case it must end with its report or a
one-line error, never a traceback.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_TRIGGERS = ("events_are_append_only_on_update", "events_are_append_only_on_delete")


@dataclass(frozen=True)
class Tamper:
    """One change: what was changed, as a line a reader can reproduce."""

    kind: str  # "row" or "file"
    where: str


@dataclass(frozen=True)
class Verdict:
    """What one ``runlog verify`` said about one tampered copy."""

    tamper: Tamper
    workers: int
    exit_code: int | None
    """None when it did not end within the time limit."""
    touched_log: bool
    stdout: str
    stderr: str

    @property
    def traceback(self) -> bool:
        """It crashed: a traceback, a hang, an exit code runlog does not use, or an error
        that is not one line."""
        if self.exit_code is None or "Traceback" in self.stderr + self.stdout:
            return True
        if self.exit_code not in (0, 1, 4):
            return True
        if self.exit_code == 4:
            lines = self.stderr.strip().splitlines()
            return len(lines) != 1 or not lines[0].startswith("runlog: ")
        if self.exit_code == 1:
            return "FAILED" not in self.stderr
        return False

    @property
    def silent_pass(self) -> bool:
        """It said ``ok`` (exit 0) although the log's rows changed."""
        return self.exit_code == 0 and self.touched_log

    def describe(self) -> str:
        """One line for a report."""
        tail = (self.stderr.strip().splitlines() or [""])[-1][:160]
        return (
            f"{self.tamper.kind} {self.tamper.where} (workers {self.workers}): "
            f"exit {self.exit_code}, log touched {self.touched_log}: {tail}"
        )


def log_rows(path: Path) -> list[tuple[Any, ...]] | None:
    """The ``events`` rows joined to their stream names, or None if SQLite cannot read them."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute(
                "SELECT e.position, e.stream_id, e.version, e.event_id, e.recorded_at, e.data, "
                "e.hash, s.name FROM events e LEFT JOIN streams s USING (stream_id) "
                "ORDER BY e.position"
            ).fetchall()
        finally:
            db.close()
    except (sqlite3.Error, UnicodeDecodeError, ValueError):
        return None


def change_row(path: Path, rng: random.Random) -> Tamper:
    """Change one byte of one event's payload or hash, through SQL."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        positions = [p for (p,) in db.execute("SELECT position FROM events")]
        position = rng.choice(positions)
        column = rng.choice(("data", "hash"))
        (value,) = db.execute(
            f"SELECT {column} FROM events WHERE position = ?", (position,)
        ).fetchone()
        data = bytearray(value)
        index = rng.randrange(len(data))
        data[index] ^= rng.randrange(1, 256)
        schema = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
        for name in _TRIGGERS:
            db.execute(f"DROP TRIGGER {name}")
        db.execute(f"UPDATE events SET {column} = ? WHERE position = ?", (bytes(data), position))
        for name in _TRIGGERS:
            db.execute(schema[name])
    finally:
        db.close()
    return Tamper("row", f"position {position} {column}[{index}]")


def flip_file_byte(path: Path, rng: random.Random) -> Tamper:
    """Change one byte anywhere in the database file."""
    size = path.stat().st_size
    offset = rng.randrange(size)
    with path.open("r+b") as file:
        file.seek(offset)
        old = file.read(1)[0]
        new = old ^ rng.randrange(1, 256)
        file.seek(offset)
        file.write(bytes([new]))
    page = offset // 4096 + 1
    return Tamper("file", f"byte {offset} (page {page}) {old:#04x}->{new:#04x}")


def run_verify(path: Path, workers: int, timeout: float = 120.0) -> tuple[int | None, str, str]:
    """``runlog verify`` as a real process; with ``workers`` > 0 the workers check the log."""
    command = [sys.executable, "-m", "api", "verify", "--store", str(path)]
    command += ["--workers", str(workers), "--parallel-from", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
        )
    except subprocess.TimeoutExpired as exc:
        return None, str(exc.stdout or ""), str(exc.stderr or "")
    return done.returncode, done.stdout, done.stderr


def trial(
    original: Path,
    scratch: Path,
    kind: str,
    rng: random.Random,
    workers: tuple[int, ...],
) -> list[Verdict]:
    """Tamper with a fresh copy of ``original`` once and verify it with each of ``workers``.

    Every verify gets its own copy of the same damage: verify catches the read model up
    first, which writes, and one run must not prepare the file for the next.
    """
    expected = log_rows(original)
    assert expected is not None, "the original store must be readable"
    scratch.mkdir(parents=True, exist_ok=True)
    damaged = scratch / "damaged.db"
    shutil.copyfile(original, damaged)
    tamper = change_row(damaged, rng) if kind == "row" else flip_file_byte(damaged, rng)
    touched = log_rows(damaged) != expected
    verdicts = []
    for count in workers:
        copy = scratch / f"verify-{count}.db"
        shutil.copyfile(damaged, copy)
        code, out, err = run_verify(copy, count)
        verdicts.append(Verdict(tamper, count, code, touched, out, err))
        copy.unlink()
    damaged.unlink()
    return verdicts
