"""`runlog export` / `runlog import`: a lossless, verified round trip, applied exactly once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

import api
from eventstore import open_store

from .conftest import Story, cli, cli_json, runlog


def export(store: Path, target: Path, *args: str) -> list[dict[str, object]]:
    result = cli("export", "--store", store, "-o", target, *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in target.read_text().splitlines()]


def events_of(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in lines if line["kind"] == "event"]


def test_an_export_holds_every_event_and_the_saved_files(story: Story, tmp_path: Path) -> None:
    lines = export(story.path, tmp_path / "log.jsonl")
    assert lines[0]["kind"] == "runlog-export"
    assert lines[-1]["kind"] == "end"
    events = events_of(lines)
    head = lines[0]["head"]
    assert [e["position"] for e in events] == list(range(1, int(head) + 1))  # type: ignore[call-overload]
    assert [line["kind"] for line in lines].count("file") == 1
    assert lines[-1]["events"] == len(events)


def test_export_to_stdout_is_the_same_as_to_a_file(story: Story, tmp_path: Path) -> None:
    to_file = export(story.path, tmp_path / "log.jsonl")
    piped = runlog("export", "--store", story.path)
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.splitlines()] == to_file
    assert "exported" in piped.stderr


def test_import_into_an_empty_store_restores_the_log_byte_for_byte(
    story: Story, tmp_path: Path
) -> None:
    original = export(story.path, tmp_path / "log.jsonl")
    copy = tmp_path / "copy.db"
    summary = cli_json("import", tmp_path / "log.jsonl", "--store", copy)
    assert (summary["added"], summary["skipped"]) == (len(events_of(original)), 0)
    again = export(copy, tmp_path / "again.jsonl")
    assert events_of(again) == events_of(original)  # ids, positions, times, bytes and hashes
    assert again[-1] == original[-1]
    verified = runlog("verify", "--store", copy)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert cli_json("show", "p/alpha", "--store", copy) == cli_json(
        "show", "p/alpha", "--store", story.path
    )


def test_a_resume_from_the_imported_store_restores_the_saved_file(
    story: Story, tmp_path: Path
) -> None:
    export(story.path, tmp_path / "log.jsonl")
    copy = tmp_path / "copy.db"
    assert cli("import", tmp_path / "log.jsonl", "--store", copy).exit_code == 0

    async def restore() -> Path:
        async with api.init(project="p", id="alpha", resume="must", store=copy) as run:
            return await run.restore("weights.bin", tmp_path / "restored.bin")

    assert anyio.run(restore).read_bytes() == story.checkpoint


def test_importing_the_same_file_twice_adds_nothing(story: Story, tmp_path: Path) -> None:
    export(story.path, tmp_path / "log.jsonl")
    copy = tmp_path / "copy.db"
    first = cli_json("import", tmp_path / "log.jsonl", "--store", copy)
    second = cli_json("import", tmp_path / "log.jsonl", "--store", copy)
    assert second["added"] == 0
    assert second["skipped"] == first["added"]
    assert second["head"] == first["head"]


def test_an_offline_log_ships_to_a_shared_store_exactly_once(story: Story, tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"

    async def other_work() -> None:
        async with api.init(project="q", id="beta", store=shared) as run:
            for step in range(3):
                await run.log({"acc": step / 3})

    anyio.run(other_work)
    export(story.path, tmp_path / "offline.jsonl", "--stream", "run:p/*")
    before = cli_json("runs", "--store", shared)["runs"]
    shipped = cli_json("import", tmp_path / "offline.jsonl", "--store", shared)
    assert shipped["added"] > 0
    again = cli_json("import", tmp_path / "offline.jsonl", "--store", shared)
    assert again["added"] == 0
    runs = {r["run_id"]: r for r in cli_json("runs", "--store", shared)["runs"]}
    assert set(runs) == {r["run_id"] for r in before} | {"alpha", story.queued_run}
    assert runs["alpha"]["last_step"] == 14
    assert runlog("verify", "--store", shared).returncode == 0


def test_a_stream_filter_exports_only_matching_streams(story: Story, tmp_path: Path) -> None:
    lines = export(story.path, tmp_path / "alpha.jsonl", "--stream", "run:p/alpha")
    assert {e["stream"] for e in events_of(lines)} == {"run:p/alpha"}
    assert lines[0]["streams"] == ["run:p/alpha"]


def test_a_changed_line_is_refused_and_nothing_is_imported(story: Story, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    export(story.path, path)
    lines = path.read_text().splitlines()
    event = json.loads(lines[5])
    event["recorded_at_us"] += 1
    lines[5] = json.dumps(event)
    path.write_text("\n".join(lines) + "\n")
    target = tmp_path / "copy.db"
    result = runlog("import", path, "--store", target)
    assert result.returncode == 5
    assert f"line 6 (position {event['position']}) does not match its hash" in result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists() or anyio.run(head_of, target) == 0


async def head_of(path: Path) -> int:
    async with open_store(path, create=False) as store:
        return await store.head()


def test_a_file_cut_short_is_refused(story: Story, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    export(story.path, path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")
    result = cli("import", path, "--store", tmp_path / "copy.db")
    assert result.exit_code == 5
    assert "cut short" in result.stderr


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": "world"}\n')
    result = cli("import", path, "--store", tmp_path / "copy.db")
    assert result.exit_code == 5
    assert "is not a runlog export" in result.stderr


def test_a_diverged_target_is_refused_without_changing_what_it_has(
    story: Story, tmp_path: Path
) -> None:
    export(story.path, tmp_path / "log.jsonl")
    other = tmp_path / "other.db"

    async def same_name() -> None:
        async with api.init(project="p", id="alpha", store=other) as run:
            await run.log({"loss": 9.0})

    anyio.run(same_name)
    before = anyio.run(head_of, other)
    result = cli("import", tmp_path / "log.jsonl", "--store", other)
    assert result.exit_code == 5
    assert "run:p/alpha" in result.stderr
    assert anyio.run(head_of, other) == before


@pytest.mark.parametrize("flag", ["--no-files"])
def test_files_can_be_left_out(story: Story, tmp_path: Path, flag: str) -> None:
    lines = export(story.path, tmp_path / "log.jsonl", flag)
    assert all(line["kind"] != "file" for line in lines)
    assert lines[-1]["files"] == 0
    assert os.path.getsize(tmp_path / "log.jsonl") > 0


def test_a_log_moves_from_sqlite_to_postgresql_and_back_unchanged(
    story: Story, tmp_path: Path
) -> None:
    from .._postgres import database_url

    original = export(story.path, tmp_path / "log.jsonl")
    server = database_url()
    moved = cli_json("import", tmp_path / "log.jsonl", "--store", server)
    assert moved["added"] == len(events_of(original))
    assert runlog("verify", "--store", server).returncode == 0
    assert events_of(export(server, tmp_path / "from-postgres.jsonl")) == events_of(original)
    assert cli_json("show", "p/alpha", "--store", server) == cli_json(
        "show", "p/alpha", "--store", story.path
    )
    back = tmp_path / "back.db"
    assert cli_json("import", tmp_path / "from-postgres.jsonl", "--store", back)["skipped"] == 0
    assert events_of(export(back, tmp_path / "back.jsonl")) == events_of(original)


def test_export_to_stdout_shows_a_progress_bar_when_stderr_is_a_terminal(
    story: Story, tmp_path: Path
) -> None:
    import pty
    import subprocess
    import sys

    from .conftest import REPO

    master, slave = pty.openpty()
    target = tmp_path / "log.jsonl"
    with target.open("wb") as out:  # `runlog export > log.jsonl` in a terminal
        done = subprocess.run(
            [sys.executable, "-m", "api", "export", "--store", os.fspath(story.path)],
            stdout=out,
            stderr=slave,
            timeout=120,
            cwd=REPO,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: everything was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert done.returncode == 0
    assert b"exporting" in shown
    assert b"exported" in shown
    assert json.loads(target.read_text().splitlines()[-1])["kind"] == "end"
