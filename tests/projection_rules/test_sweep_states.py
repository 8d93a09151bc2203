"""The sweep state machine (contract §9.1) and the sweep queue (contract §8)."""

from __future__ import annotations

import pytest

from eventstore import (
    AgentStarted,
    AgentStopped,
    Event,
    RunClaimed,
    RunExited,
    RunKilled,
    RunScheduled,
    SweepCancelled,
    SweepFinished,
    SweepPaused,
    SweepResumed,
    SweepStopped,
)
from projections import RunStatus, SweepStatus

from ._log import Log, in_sweep, init, sweep_created, to_status

# Events that bring a new sweep "s" into each state.
REACH: dict[SweepStatus, list[Event]] = {
    SweepStatus.PENDING: [],
    SweepStatus.RUNNING: [AgentStarted(agent_id="g")],
    SweepStatus.PAUSED: [AgentStarted(agent_id="g"), SweepPaused()],
    SweepStatus.FINISHED: [AgentStarted(agent_id="g"), SweepStopped()],
    SweepStatus.CANCELED: [AgentStarted(agent_id="g"), SweepCancelled()],
}


def sweep_in(status: SweepStatus) -> Log:
    return Log().sweep("s", sweep_created("s"), *REACH[status])


def test_a_new_sweep_is_pending() -> None:
    assert sweep_in(SweepStatus.PENDING).sweep_state("s").status is SweepStatus.PENDING


def test_an_agent_starting_makes_a_pending_sweep_running() -> None:
    state = sweep_in(SweepStatus.RUNNING).sweep_state("s")
    assert state.status is SweepStatus.RUNNING
    assert list(state.agents) == ["g"]


def test_an_agent_stopping_leaves_the_agents() -> None:
    state = sweep_in(SweepStatus.RUNNING).sweep("s", AgentStopped(agent_id="g")).sweep_state("s")
    assert state.agents == {}


# --- §9.1 commands: each (command, from-state) row --------------------------------------

ROWS = [
    # (command, from, to)
    (SweepPaused(), SweepStatus.RUNNING, SweepStatus.PAUSED),
    (SweepPaused(), SweepStatus.PAUSED, SweepStatus.PAUSED),
    (SweepResumed(), SweepStatus.PAUSED, SweepStatus.RUNNING),
    (SweepResumed(), SweepStatus.FINISHED, SweepStatus.RUNNING),
    (SweepStopped(), SweepStatus.RUNNING, SweepStatus.FINISHED),
    (SweepStopped(), SweepStatus.PAUSED, SweepStatus.FINISHED),
    (SweepStopped(), SweepStatus.PENDING, SweepStatus.FINISHED),
    (SweepCancelled(), SweepStatus.RUNNING, SweepStatus.CANCELED),
    (SweepCancelled(), SweepStatus.PAUSED, SweepStatus.CANCELED),
    (SweepCancelled(), SweepStatus.PENDING, SweepStatus.CANCELED),
]


@pytest.mark.parametrize(
    ("command", "start", "end"), ROWS, ids=[f"{type(c).__name__}-from-{s}" for c, s, _ in ROWS]
)
def test_an_allowed_command_moves_the_sweep(
    command: Event, start: SweepStatus, end: SweepStatus
) -> None:
    assert sweep_in(start).sweep("s", command).sweep_state("s").status is end


REFUSED = [
    (SweepPaused(), SweepStatus.PENDING),
    (SweepPaused(), SweepStatus.FINISHED),
    (SweepPaused(), SweepStatus.CANCELED),
    (SweepResumed(), SweepStatus.RUNNING),
    (SweepResumed(), SweepStatus.PENDING),
    (SweepResumed(), SweepStatus.CANCELED),
    (SweepStopped(), SweepStatus.FINISHED),
    (SweepStopped(), SweepStatus.CANCELED),
    (SweepCancelled(), SweepStatus.FINISHED),
    (SweepCancelled(), SweepStatus.CANCELED),
]


@pytest.mark.parametrize(
    ("command", "start"), REFUSED, ids=[f"{type(c).__name__}-from-{s}" for c, s in REFUSED]
)
def test_a_command_its_state_does_not_allow_changes_nothing(
    command: Event, start: SweepStatus
) -> None:
    log = sweep_in(start)
    before = log.sweep_state("s")
    after = log.sweep("s", command).sweep_state("s")
    assert (after.status, after.finish_reason) == (before.status, before.finish_reason)


def test_stop_records_the_finish_reason_stopped() -> None:
    state = sweep_in(SweepStatus.RUNNING).sweep("s", SweepStopped()).sweep_state("s")
    assert state.finish_reason == "stopped"


@pytest.mark.parametrize("reason", ["exhausted", "run_cap", "target"])
def test_finishing_by_itself_records_its_reason(reason: str) -> None:
    state = sweep_in(SweepStatus.RUNNING).sweep("s", SweepFinished(reason=reason)).sweep_state("s")
    assert (state.status, state.finish_reason) == (SweepStatus.FINISHED, reason)


def test_reopening_a_finished_sweep_clears_its_finish_reason() -> None:
    state = sweep_in(SweepStatus.FINISHED).sweep("s", SweepResumed()).sweep_state("s")
    assert (state.status, state.finish_reason) == (SweepStatus.RUNNING, None)


# --- effect on runs ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [SweepPaused(), SweepStopped()], ids=["pause", "stop"])
def test_pause_and_stop_leave_executing_runs_alone(command: Event) -> None:
    log = in_sweep(Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g")))
    log.sweep("s", command)
    assert log.state("a").status is RunStatus.RUNNING
    log.run("a", RunExited(incarnation=1, exit_code=0))
    assert log.state("a").status is RunStatus.FINISHED


def test_cancel_kills_queued_runs_and_clears_the_queue() -> None:
    log = in_sweep(Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g")))
    log = to_status(log, "preempted")
    log.sweep("s", SweepCancelled())
    state, sweep = log.state("a"), log.sweep_state("s")
    assert (state.status, state.reason) == (RunStatus.KILLED, "sweep cancelled")
    assert sweep.queue == []
    assert sweep.counts == {"killed": 1}


def test_cancelled_executing_runs_end_killed_through_run_killed() -> None:
    log = in_sweep(Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g")))
    log.sweep("s", SweepCancelled()).run("a", RunKilled(reason="sweep cancelled", sweep_id="s"))
    assert log.state("a").status is RunStatus.KILLED


def test_a_failed_run_never_changes_the_sweeps_status() -> None:
    log = in_sweep(Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g")))
    log.run("a", RunExited(incarnation=1, exit_code=1))
    sweep = log.sweep_state("s")
    assert sweep.status is SweepStatus.RUNNING
    assert sweep.counts == {"failed": 1}


# --- what agents may be given ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "hands_out"),
    [
        (SweepStatus.PENDING, False),
        (SweepStatus.RUNNING, True),
        (SweepStatus.PAUSED, False),
        (SweepStatus.FINISHED, False),
        (SweepStatus.CANCELED, False),
    ],
)
def test_new_work_is_handed_out_only_while_running(status: SweepStatus, hands_out: bool) -> None:
    assert sweep_in(status).sweep_state("s").hands_out_work is hands_out


def test_a_finished_sweep_still_drains_its_queue() -> None:
    log = in_sweep(Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g")))
    log = to_status(log, "preempted").sweep("s", SweepStopped())
    sweep = log.sweep_state("s")
    assert (sweep.status, sweep.queue, sweep.hands_out_work) == (SweepStatus.FINISHED, ["a"], True)


def test_a_paused_sweep_keeps_its_queue_untouched() -> None:
    log = in_sweep(Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g")))
    log = to_status(log, "preempted").sweep("s", SweepPaused())
    sweep = log.sweep_state("s")
    assert (sweep.queue, sweep.hands_out_work) == (["a"], False)


# --- §8 the queue -----------------------------------------------------------------------


def test_the_queue_is_fifo_by_the_position_of_the_preempting_event() -> None:
    log = Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g"))
    for run_id in ("a", "b", "c"):
        in_sweep(log, run_id)
    for run_id in ("c", "a", "b"):
        to_status(log, "preempted", run_id=run_id)
    assert log.sweep_state("s").queue == ["c", "a", "b"]


def test_a_claim_takes_the_run_out_of_the_queue_and_only_once() -> None:
    log = to_status(in_sweep(Log()), "preempted")
    log.sweep("s", RunClaimed(run_id="a", agent_id="g1", requeue=True))
    log.sweep("s", RunClaimed(run_id="a", agent_id="g2", requeue=True))
    state = log.state("a")
    assert log.sweep_state("s").queue == []
    assert state.claimed_by == "g1"


@pytest.mark.parametrize("status", ["running", "preempting"])
def test_a_run_that_is_not_preempted_cannot_be_claimed_from_the_queue(status: str) -> None:
    log = to_status(in_sweep(Log()), status)
    log.sweep("s", RunClaimed(run_id="a", agent_id="g", requeue=True))
    state = log.state("a")
    assert (state.status.value, state.claimed_by) == (status, None)


def test_a_requeued_run_resumed_leaves_no_trace_in_the_queue() -> None:
    log = to_status(in_sweep(Log()), "preempted")
    log.sweep("s", RunClaimed(run_id="a", agent_id="g", requeue=True))
    log.run("a", init(incarnation=2, starting_step=0, sweep_id="s"))
    sweep = log.sweep_state("s")
    assert (sweep.queue, sweep.claims) == ([], {})
    assert log.state("a").status is RunStatus.RUNNING


def test_a_preempted_run_resumed_directly_leaves_the_queue() -> None:
    log = to_status(in_sweep(Log()), "preempted")
    log.run("a", init(incarnation=2))
    assert log.sweep_state("s").queue == []


def test_rerunning_a_queued_run_does_not_count_against_run_cap_again() -> None:
    log = to_status(in_sweep(Log()), "preempted")
    log.sweep("s", RunClaimed(run_id="a", agent_id="g", requeue=True))
    log.run("a", init(incarnation=2, sweep_id="s"))
    assert log.sweep_state("s").ever_running == 1


def test_only_runs_that_started_count_toward_run_cap() -> None:
    log = Log().sweep("s", sweep_created("s", run_cap=3), RunScheduled(run_id="a", params={}))
    log.sweep("s", RunClaimed(run_id="a", agent_id="g"))
    in_sweep(log, "b")
    sweep = log.sweep_state("s")
    assert (sweep.ever_running, sweep.claims, sweep.run_cap) == (1, {"a": "g"}, 3)


def test_per_status_counts_follow_every_run_of_the_sweep() -> None:
    log = Log().sweep("s", sweep_created("s"), AgentStarted(agent_id="g"))
    for run_id in ("a", "b", "c", "d"):
        in_sweep(log, run_id)
    to_status(log, "finished", run_id="a")
    to_status(log, "preempted", run_id="b")
    to_status(log, "failed", run_id="c")
    log.sweep("s", RunScheduled(run_id="e", params={}))
    assert log.sweep_state("s").counts == {
        "finished": 1,
        "preempted": 1,
        "failed": 1,
        "running": 1,
        "pending": 1,
    }


def test_search_progress_lists_scheduled_runs_in_order_once() -> None:
    log = Log().sweep("s", sweep_created("s"))
    log.sweep("s", *(RunScheduled(run_id=r, params={"i": i}) for i, r in enumerate("xyz")))
    log.sweep("s", RunScheduled(run_id="x", params={"i": 9}))
    sweep = log.sweep_state("s")
    assert sweep.scheduled == ["x", "y", "z"]
    assert log.state("x").params == {"i": 0}


def test_a_run_naming_a_sweep_that_does_not_exist_yet_does_not_join_it() -> None:
    log = Log().run("a", init(sweep_id="s")).sweep("s", sweep_created("s"))
    assert log.state("a").sweep_id is None
    assert log.sweep_state("s").counts == {}
