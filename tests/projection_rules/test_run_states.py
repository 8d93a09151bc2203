"""The run state machine: one test per row of contract §6.2, and the §4.1 resume rules."""

from __future__ import annotations

import pytest

from eventstore import (
    ClaimLapsed,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    NotesEdited,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunKilled,
    RunRevived,
    RunScheduled,
    StepLogged,
)
from projections import RunStatus

from ._log import Log, in_sweep, init, sweep_created, to_status


def expired(incarnation: int = 1) -> HeartbeatExpired:
    return HeartbeatExpired(
        incarnation=incarnation, last_position=0, observed_at_us=0, timeout_s=300
    )


# --- §6.2 transitions -------------------------------------------------------------------


def test_scheduled_and_claimed_new_suggestion_is_pending() -> None:
    log = Log().sweep("s", sweep_created("s"))
    log.sweep(
        "s", RunScheduled(run_id="a", params={"lr": 0.1}), RunClaimed(run_id="a", agent_id="g")
    )
    state = log.state("a")
    assert state.status is RunStatus.PENDING
    assert not state.started
    assert state.claimed_by == "g"
    assert state.params == {"lr": 0.1}


def test_preempted_claimed_from_the_queue_is_pending() -> None:
    log = to_status(in_sweep(Log()), "preempted")
    log.sweep("s", RunClaimed(run_id="a", agent_id="g2", requeue=True))
    state = log.state("a")
    assert state.status is RunStatus.PENDING
    assert state.requeued
    assert log.sweep_state("s").queue == []


def test_initialized_without_history_is_running() -> None:
    state = Log().run("a", init()).state("a")
    assert state.status is RunStatus.RUNNING
    assert state.started


def test_initialized_from_pending_is_running() -> None:
    state = in_sweep(Log()).state("a")
    assert state.status is RunStatus.RUNNING
    assert state.claimed_by is None


@pytest.mark.parametrize("status", ["finished", "failed", "crashed", "killed", "preempted"])
def test_initialized_from_a_terminal_or_preempted_state_is_running(status: str) -> None:
    log = to_status(Log().run("a", init()), status)
    log.run("a", init(incarnation=2, starting_step=0))
    assert log.state("a").status is RunStatus.RUNNING


def test_running_marked_preempting_is_preempting() -> None:
    state = to_status(Log().run("a", init()), "preempting").state("a")
    assert state.status is RunStatus.PREEMPTING
    assert state.preempting


def test_marking_preempting_twice_is_idempotent() -> None:
    log = to_status(Log().run("a", init()), "preempting")
    once = log.state("a")
    log.run("a", PreemptMarked(incarnation=1))
    twice = log.state("a")
    assert (twice.status, twice.preempting) == (once.status, once.preempting)


def test_running_exit_0_is_finished() -> None:
    state = Log().run("a", init(), RunExited(incarnation=1, exit_code=0)).state("a")
    assert (state.status, state.exit_code) == (RunStatus.FINISHED, 0)


def test_running_exit_254_is_crashed() -> None:
    state = Log().run("a", init(), RunExited(incarnation=1, exit_code=254)).state("a")
    assert state.status is RunStatus.CRASHED


def test_running_interrupted_exit_is_killed() -> None:
    state = (
        Log().run("a", init(), RunExited(incarnation=1, exit_code=255, interrupted=True)).state("a")
    )
    assert (state.status, state.interrupted) == (RunStatus.KILLED, True)


def test_running_exit_130_is_killed() -> None:
    state = Log().run("a", init(), RunExited(incarnation=1, exit_code=130)).state("a")
    assert state.status is RunStatus.KILLED


@pytest.mark.parametrize("code", [1, 2, 143, 255])
def test_running_other_nonzero_exit_is_failed(code: int) -> None:
    state = Log().run("a", init(), RunExited(incarnation=1, exit_code=code)).state("a")
    assert (state.status, state.exit_code) == (RunStatus.FAILED, code)


def test_running_killed_is_killed() -> None:
    state = Log().run("a", init(), RunKilled(reason="sweep cancelled", incarnation=1)).state("a")
    assert (state.status, state.reason) == (RunStatus.KILLED, "sweep cancelled")


def test_running_heartbeat_expired_is_crashed() -> None:
    state = Log().run("a", init(), expired()).state("a")
    assert state.status is RunStatus.CRASHED


def test_preempting_exit_0_is_finished_and_not_queued() -> None:
    log = to_status(in_sweep(Log()), "preempting")
    log.run("a", RunExited(incarnation=1, exit_code=0))
    assert log.state("a").status is RunStatus.FINISHED
    assert log.sweep_state("s").queue == []


@pytest.mark.parametrize(
    ("code", "interrupted"), [(1, False), (143, False), (138, False), (130, True), (255, True)]
)
def test_preempting_nonzero_exit_is_preempted_and_queued(code: int, interrupted: bool) -> None:
    log = to_status(in_sweep(Log()), "preempting")
    log.run("a", RunExited(incarnation=1, exit_code=code, interrupted=interrupted))
    assert log.state("a").status is RunStatus.PREEMPTED
    assert log.sweep_state("s").queue == ["a"]


def test_preempting_heartbeat_expired_is_preempted_and_queued() -> None:
    log = to_status(in_sweep(Log()), "preempting")
    log.run("a", expired())
    assert log.state("a").status is RunStatus.PREEMPTED
    assert log.sweep_state("s").queue == ["a"]


@pytest.mark.parametrize(
    "late",
    [
        Heartbeat(incarnation=1),
        StepLogged(incarnation=1, step=0, metrics={"loss": 1.0}),
        RunRevived(incarnation=1),
    ],
    ids=["heartbeat", "step", "revived"],
)
def test_crashed_then_an_event_of_the_current_incarnation_is_running(late: object) -> None:
    log = to_status(Log().run("a", init()), "crashed")
    log.run("a", late)  # type: ignore[arg-type]
    assert log.state("a").status is RunStatus.RUNNING


def test_crashed_then_an_event_of_an_older_incarnation_stays_crashed() -> None:
    log = Log().run("a", init(), RunExited(incarnation=1, exit_code=1), init(incarnation=2))
    log.run("a", expired(2), Heartbeat(incarnation=1))
    assert log.state("a").status is RunStatus.CRASHED


def test_requeued_pending_whose_claim_lapses_is_preempted_at_the_front() -> None:
    log = to_status(in_sweep(Log(), "a"), "preempted")
    log = to_status(in_sweep(log, "b"), "preempted", run_id="b")
    log.sweep("s", RunClaimed(run_id="a", agent_id="g", requeue=True))
    claim = log.records[-1].position
    assert log.sweep_state("s").queue == ["b"]
    log.sweep("s", ClaimLapsed(run_id="a", claim_position=claim))
    assert log.state("a").status is RunStatus.PREEMPTED
    assert log.sweep_state("s").queue == ["a", "b"]


def test_new_suggestion_whose_claim_lapses_stays_pending_and_is_offered_again() -> None:
    log = Log().sweep("s", sweep_created("s"), RunScheduled(run_id="a", params={}))
    log.sweep("s", RunClaimed(run_id="a", agent_id="g"))
    log.sweep("s", ClaimLapsed(run_id="a", claim_position=log.records[-1].position))
    state, sweep = log.state("a"), log.sweep_state("s")
    assert (state.status, state.claimed_by) == (RunStatus.PENDING, None)
    assert sweep.reoffer == ["a"]
    assert sweep.claims == {}


def test_a_lapse_of_an_older_claim_is_ignored() -> None:
    log = Log().sweep("s", sweep_created("s"), RunScheduled(run_id="a", params={}))
    log.sweep("s", RunClaimed(run_id="a", agent_id="g"))
    stale = log.records[-1].position
    log.sweep("s", ClaimLapsed(run_id="a", claim_position=stale))
    log.sweep("s", RunClaimed(run_id="a", agent_id="h"))
    log.sweep("s", ClaimLapsed(run_id="a", claim_position=stale))
    assert log.state("a").claimed_by == "h"


def test_a_claim_lapse_after_the_run_started_is_ignored() -> None:
    log = in_sweep(Log())
    claim = next(r.position for r in log.records if isinstance(r.event, RunClaimed))
    log.sweep("s", ClaimLapsed(run_id="a", claim_position=claim))
    assert log.state("a").status is RunStatus.RUNNING


# --- exit codes (§6.2) ------------------------------------------------------------------


def test_keyboard_interrupt_255_from_an_interrupt_is_killed_otherwise_failed() -> None:
    killed = Log().run("a", init(), RunExited(incarnation=1, exit_code=255, interrupted=True))
    failed = Log().run("a", init(), RunExited(incarnation=1, exit_code=255))
    assert killed.state("a").status is RunStatus.KILLED
    assert failed.state("a").status is RunStatus.FAILED


# --- §4.1 what a resume does ------------------------------------------------------------


def steps(incarnation: int, *numbers: int, **metrics: float) -> list[StepLogged]:
    return [StepLogged(incarnation=incarnation, step=n, metrics=dict(metrics)) for n in numbers]


def test_a_resume_starts_a_new_incarnation_at_the_next_step() -> None:
    log = Log().run(
        "a", init(), *steps(1, 0, 1, 2, loss=1.0), RunExited(incarnation=1, exit_code=1)
    )
    log.run("a", init(incarnation=2, starting_step=3))
    state = log.state("a")
    assert (state.incarnation, state.resumes, state.starting_step, state.next_step) == (2, 1, 3, 3)
    assert state.last_step == 2


def test_the_summary_continues_and_new_logs_overwrite_per_key() -> None:
    log = Log().run("a", init(), *steps(1, 0, loss=1.0, acc=0.5))
    log.run("a", init(incarnation=2, starting_step=1), *steps(2, 1, loss=0.25))
    assert log.state("a").summary == {"loss": 0.25, "acc": 0.5}


def test_config_top_level_keys_replace_wholesale_and_others_are_kept() -> None:
    log = Log().run("a", init(config={"opt": {"lr": 0.1, "m": 0.9}, "seed": 1}))
    log.run("a", init(incarnation=2, config={"opt": {"lr": 0.01}}))
    assert log.state("a").config == {"opt": {"lr": 0.01}, "seed": 1}


def test_tags_replace_when_given_and_are_kept_when_absent_or_empty() -> None:
    log = Log().run("a", init(tags=["x"]), init(incarnation=2, tags=[]))
    assert log.state("a").tags == ["x"]
    log.run("a", init(incarnation=3, tags=["y", "z"]))
    assert log.state("a").tags == ["y", "z"]


def test_notes_given_on_resume_overwrite_even_ui_edits() -> None:
    log = Log().run("a", init(notes="first"), NotesEdited(notes="edited in a UI"))
    assert log.state("a").notes == "edited in a UI"
    log.run("a", init(incarnation=2))
    assert log.state("a").notes == "edited in a UI"
    log.run("a", init(incarnation=3, notes="from the script"))
    assert log.state("a").notes == "from the script"


def test_name_group_and_job_type_replace_when_given() -> None:
    log = Log().run("a", init(name="n1", group="g1", job_type="train"))
    log.run("a", init(incarnation=2, name="n2"))
    state = log.state("a")
    assert (state.name, state.group, state.job_type) == ("n2", "g1", "train")


def test_a_new_incarnation_clears_the_preempt_mark_and_exit_code() -> None:
    log = to_status(Log().run("a", init()), "preempted")
    log.run("a", init(incarnation=2))
    state = log.state("a")
    assert (state.preempting, state.exit_code) == (False, None)


# --- ignored events (the same on every path) --------------------------------------------


def test_a_lower_step_is_dropped_and_counted() -> None:
    log = Log().run("a", init(), *steps(1, 0, 1, 2, loss=1.0), *steps(1, 1, loss=9.0))
    state = log.state("a")
    assert (state.last_step, state.steps, state.dropped_steps) == (2, 3, 1)
    assert state.summary == {"loss": 1.0}


def test_a_step_may_skip_ahead() -> None:
    state = Log().run("a", init(), *steps(1, 0, 10, loss=1.0)).state("a")
    assert (state.last_step, state.next_step) == (10, 11)


def test_events_of_a_fenced_incarnation_are_ignored_and_counted() -> None:
    log = Log().run("a", init(), *steps(1, 0, 1, loss=1.0), init(incarnation=2, starting_step=2))
    log.run("a", *steps(1, 2, 3, loss=9.0), RunExited(incarnation=1, exit_code=0))
    state = log.state("a")
    assert (state.status, state.last_step, state.fenced_events) == (RunStatus.RUNNING, 1, 3)


def test_an_older_or_repeated_initialization_is_fenced() -> None:
    log = Log().run("a", init(), init(incarnation=2), init(incarnation=2))
    state = log.state("a")
    assert (state.incarnation, state.resumes, state.fenced_events) == (2, 1, 1)


def test_events_of_a_run_that_never_started_are_ignored() -> None:
    model = Log().run("a", *steps(1, 0, loss=1.0), Heartbeat(incarnation=1)).fold()
    assert model.runs == {}


def test_files_saved_are_listed_with_their_position() -> None:
    log = Log().run("a", init(), FileSaved(incarnation=1, name="model-best.h5", digest="d", size=3))
    assert log.state("a").files["model-best.h5"].position == 2


def test_heartbeats_and_any_event_record_liveness() -> None:
    log = Log().run("a", init(), Heartbeat(incarnation=1))
    state = log.state("a")
    assert state.last_heartbeat_us == log.records[-1].recorded_at_us
    assert state.last_event_us == log.records[-1].recorded_at_us


def test_a_run_outside_a_sweep_can_be_preempted_but_is_never_queued() -> None:
    model = to_status(Log().run("a", init()), "preempted").fold()
    assert model.runs[("p", "a")].status is RunStatus.PREEMPTED
    assert model.sweeps == {}


def test_events_on_the_wrong_kind_of_stream_are_ignored() -> None:
    log = Log().sweep("s", sweep_created("s")).add("sweep:s", init("a"), Heartbeat(incarnation=1))
    log.run("a", init(), sweep_created("t"))
    model = log.fold()
    assert set(model.sweeps) == {"s"}
    assert set(model.runs) == {("p", "a")}
    assert model.runs[("p", "a")].status is RunStatus.RUNNING


def test_streams_that_are_neither_runs_nor_sweeps_are_ignored() -> None:
    model = Log().add("audit", init("a")).add("run:no-slash", init("b")).fold()
    assert (model.runs, model.sweeps) == ({}, {})
