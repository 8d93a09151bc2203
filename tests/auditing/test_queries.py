"""`runlog runs/show/history/sweep show/replay`: what the log says, now and at a past point."""

from __future__ import annotations

from pathlib import Path

from .conftest import Story, cli, cli_json, runlog


def test_runs_lists_every_run_with_its_status(story: Story) -> None:
    runs = cli_json("runs", "--store", story.path)["runs"]
    assert {(r["project"], r["run_id"], r["status"]) for r in runs} == {
        ("p", "alpha", "finished"),
        ("p", story.queued_run, "preempted"),
    }


def test_runs_filters_by_status_and_project(story: Story) -> None:
    assert [
        r["run_id"]
        for r in cli_json("runs", "--status", "preempted", "--store", story.path)["runs"]
    ] == [story.queued_run]
    assert cli_json("runs", "--project", "other", "--store", story.path)["runs"] == []


def test_an_unknown_status_is_refused_with_the_known_ones(story: Story) -> None:
    result = cli("runs", "--status", "sleeping", "--store", story.path)
    assert result.exit_code == 5
    assert "unknown run status 'sleeping'" in result.stderr
    assert "finished" in result.stderr


def test_show_gives_state_summary_files_and_incarnations(story: Story) -> None:
    report = cli_json("show", "p/alpha", "--store", story.path)
    state = report["state"]
    assert (state["status"], state["last_step"], state["steps"]) == ("finished", 14, 15)
    assert state["summary"] == {"loss": 0.01}
    assert list(state["files"]) == ["weights.bin"]
    lives = report["incarnations"]
    assert [(i["number"], i["resumed"], i["starting_step"], i["ended"]) for i in lives] == [
        (1, False, 0, "exit 143"),
        (2, True, 10, "exit 0"),
    ]


def test_show_accepts_a_bare_run_id_unique_across_projects(story: Story) -> None:
    assert cli_json("show", "alpha", "--store", story.path)["state"]["run_id"] == "alpha"


def test_show_prints_a_readable_report(story: Story) -> None:
    result = cli("show", "p/alpha", "--store", story.path)
    assert result.exit_code == 0
    for text in ("run p/alpha", "finished", "weights.bin", "exit 143", "resumed"):
        assert text in result.stdout


def test_an_unknown_run_is_one_line_and_exit_3(story: Story) -> None:
    result = runlog("show", "p/nope", "--store", story.path)
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "runlog: the log has no run p/nope; `runlog runs` lists the runs it has"
    )
    assert "Traceback" not in result.stderr


def test_history_lists_every_event_of_the_run_with_what_it_changed(story: Story) -> None:
    events = cli_json("history", "p/alpha", "--store", story.path)["events"]
    kinds = [e["type"] for e in events]
    assert kinds == (
        ["RunInitialized"]
        + ["StepLogged"] * 10
        + ["FileSaved", "PreemptMarked", "RunExited"]
        + ["RunInitialized"]
        + ["StepLogged"] * 5
        + ["RunExited"]
    )
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    assert [e["incarnation"] for e in events] == [1] * 14 + [2] * 7
    marked, exited = events[12], events[13]
    assert marked["changes"]["status"] == ["running", "preempting"]
    assert exited["changes"]["status"] == ["preempting", "preempted"]
    assert exited["changes"]["exit_code"] == [None, 143]
    assert events[1]["changes"]["last_step"] == [None, 0]
    assert events[15]["changes"]["summary.loss"] == [0.1, 0.01]


def test_history_since_and_limit_window_the_timeline(story: Story) -> None:
    events = cli_json("history", "p/alpha", "--store", story.path)["events"]
    middle = events[5]["position"]
    window = cli_json(
        "history", "p/alpha", "--since", str(middle), "--limit", "3", "--store", story.path
    )["events"]
    assert window == events[5:8]


def test_history_collapses_stretches_of_steps_for_people(story: Story) -> None:
    result = cli("history", "p/alpha", "--store", story.path)
    assert "StepLogged x10 (steps 0..9)" in result.stdout
    assert "StepLogged x5 (steps 10..14)" in result.stdout
    assert "21 events" in result.stdout


def test_history_of_a_sweep_run_includes_its_sweep_events(story: Story) -> None:
    events = cli_json("history", f"p/{story.queued_run}", "--store", story.path)["events"]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["RunScheduled", "RunClaimed"]
    assert kinds[-1] == "RunExited"


def test_sweep_show_gives_status_counts_and_queue(story: Story) -> None:
    sweep = cli_json("sweep", "show", story.sweep_id, "--store", story.path)
    assert sweep["status"] == "RUNNING"
    assert sweep["queue"] == [story.queued_run]
    assert sweep["counts"]["preempted"] == 1
    result = cli("sweep", "show", story.sweep_id, "--store", story.path)
    assert story.queued_run in result.stdout
    assert "queue" in result.stdout


def test_sweep_show_of_an_unknown_sweep_exits_3(story: Story) -> None:
    result = cli("sweep", "show", "nope", "--store", story.path)
    assert result.exit_code == 3
    assert "no sweep 'nope'" in result.stderr


def test_replay_until_a_position_shows_the_state_then(story: Story) -> None:
    events = cli_json("history", "p/alpha", "--store", story.path)["events"]
    before_exit = events[12]["position"]  # the PreemptMarked
    past = cli_json("replay", "p/alpha", "--until", str(before_exit), "--store", story.path)
    [run] = past["runs"]
    assert (run["status"], run["last_step"], run["incarnation"]) == ("preempting", 9, 1)
    assert past["position"] == before_exit


def test_replay_as_of_a_time_uses_the_last_event_recorded_by_then(story: Story) -> None:
    events = cli_json("history", "p/alpha", "--store", story.path)["events"]
    exited = events[13]
    seconds = exited["recorded_at_us"] / 1_000_000
    past = cli_json("replay", "p/alpha", "--as-of", f"@{seconds:.6f}", "--store", story.path)
    assert past["position"] >= exited["position"]
    assert past["runs"][0]["status"] in ("preempted", "running")  # the resume may share the µs


def test_replay_of_a_sweep_shows_its_queue_at_that_point(story: Story) -> None:
    history = cli_json("history", f"p/{story.queued_run}", "--store", story.path)["events"]
    before = history[-2]["position"]
    then = cli_json("replay", story.sweep_id, "--until", str(before), "--store", story.path)
    now = cli_json("replay", story.sweep_id, "--store", story.path)
    assert then["sweeps"][0]["queue"] == []
    assert now["sweeps"][0]["queue"] == [story.queued_run]


def test_replay_of_everything_at_the_head_equals_the_read_models(story: Story) -> None:
    replayed = cli_json("replay", "--store", story.path)
    current = cli_json("runs", "--store", story.path)["runs"]
    assert sorted(replayed["runs"], key=lambda r: r["run_id"]) == sorted(
        current, key=lambda r: r["run_id"]
    )


def test_replay_refuses_both_until_and_as_of(story: Story) -> None:
    result = cli("replay", "--until", "3", "--as-of", "@1", "--store", story.path)
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_replay_refuses_an_unreadable_time(story: Story) -> None:
    result = cli("replay", "--as-of", "yesterday-ish", "--store", story.path)
    assert result.exit_code == 2
    assert "ISO 8601" in result.stderr


def test_a_missing_store_is_not_created_and_exits_4(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    result = runlog("runs", "--store", missing)
    assert result.returncode == 4
    assert "there is no runlog database at" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()


def test_a_file_that_is_not_a_runlog_database_exits_4(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_text("shopping list\n")
    result = runlog("show", "p/alpha", "--store", foreign)
    assert result.returncode == 4
    assert "is not a runlog database" in result.stderr
    assert foreign.read_text() == "shopping list\n"


def test_errors_come_as_json_too_with_json(story: Story) -> None:
    result = cli("show", "p/nope", "--store", story.path, "--json")
    assert result.exit_code == 3
    assert '"type":"RunNotFound"' in result.stdout
