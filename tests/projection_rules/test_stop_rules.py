"""The stop command's fold rules (contract §6.2, §9.2, §9.6) and agent heartbeats."""

from __future__ import annotations

import pytest

from eventstore import (
    AgentHeartbeat,
    AgentStarted,
    AgentStopped,
    HeartbeatExpired,
    PreemptMarked,
    RunExited,
    RunStopRequested,
)
from projections import RunStatus

from ._log import Log, in_sweep, init, to_status


def stop(incarnation: int = 1) -> RunStopRequested:
    return RunStopRequested(
        incarnation=incarnation, reason="hyperband: at band 3", rule="hyperband"
    )


def expired(incarnation: int = 1) -> HeartbeatExpired:
    return HeartbeatExpired(
        incarnation=incarnation, last_position=0, observed_at_us=0, timeout_s=300
    )


@pytest.mark.parametrize("code", [1, 137, 143, 255])
def test_a_stopped_run_that_exits_non_zero_is_killed(code: int) -> None:
    log = in_sweep(Log()).run("a", stop(), RunExited(incarnation=1, exit_code=code))
    state = log.state("a")
    assert (state.status, state.reason) == (RunStatus.KILLED, "hyperband: at band 3")


def test_a_stopped_run_marked_preempting_is_killed_and_never_queued() -> None:
    log = in_sweep(Log()).run(
        "a", stop(), PreemptMarked(incarnation=1), RunExited(incarnation=1, exit_code=143)
    )
    assert log.state("a").status is RunStatus.KILLED
    assert log.sweep_state("s").queue == []


def test_a_stopped_run_that_exits_0_is_finished() -> None:
    log = in_sweep(Log()).run("a", stop(), RunExited(incarnation=1, exit_code=0))
    assert log.state("a").status is RunStatus.FINISHED


@pytest.mark.parametrize("status", ["running", "preempting"])
def test_a_stopped_run_that_goes_silent_is_killed_not_crashed_or_queued(status: str) -> None:
    log = to_status(in_sweep(Log()), status).run("a", stop(), expired())
    assert log.state("a").status is RunStatus.KILLED
    assert log.sweep_state("s").queue == []


def test_a_stop_for_an_older_incarnation_is_ignored() -> None:
    log = in_sweep(Log()).run("a", init(incarnation=2, resumed=True), stop(incarnation=1))
    log.run("a", RunExited(incarnation=2, exit_code=1))
    state = log.state("a")
    assert (state.stop_requested, state.status) == (False, RunStatus.FAILED)


def test_a_new_incarnation_clears_the_stop() -> None:
    log = to_status(in_sweep(Log()).run("a", stop()), "killed")
    log.run("a", init(incarnation=2, resumed=True))
    state = log.state("a")
    assert (state.status, state.stop_requested) == (RunStatus.RUNNING, False)


def test_a_stop_neither_revives_a_crashed_run_nor_counts_as_its_heartbeat() -> None:
    log = to_status(in_sweep(Log()), "crashed")
    before = log.state("a").last_event_us
    state = log.run("a", stop()).state("a")
    assert (state.status, state.stop_requested) == (RunStatus.CRASHED, False)
    assert state.last_event_us == before


def test_an_agent_heartbeat_records_its_live_runs_and_when() -> None:
    log = in_sweep(Log()).sweep("s", AgentStarted(agent_id="g", host="h", pid=7))
    log.sweep("s", AgentHeartbeat(agent_id="g", run_ids=["a"]))
    info = log.sweep_state("s").agents["g"]
    assert info.run_ids == ["a"]
    assert info.last_seen_us == log.records[-1].recorded_at_us
    assert (info.host, info.pid) == ("h", 7)


def test_a_heartbeat_of_an_agent_that_left_or_never_came_is_ignored() -> None:
    log = in_sweep(Log()).sweep("s", AgentStarted(agent_id="g"), AgentStopped(agent_id="g"))
    log.sweep("s", AgentHeartbeat(agent_id="g", run_ids=["a"]))
    log.sweep("s", AgentHeartbeat(agent_id="x", run_ids=["a"]))
    assert log.sweep_state("s").agents == {}
