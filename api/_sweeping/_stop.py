"""Stopping one run on request: the ``stop {run_id}`` command of contract §9.2."""

from __future__ import annotations

from projections import RunState, RunStatus, open_projector

from .._errors import RunNotFound, SweepError
from .._library._stores import StoreArg, opened_store
from ._hyperband import request_stop

__all__ = ["stop_run"]


async def stop_run(
    project: str, run_id: str, *, store: StoreArg = None, reason: str = "stopped on request"
) -> RunState:
    """Ask the agent running ``project/run_id`` to stop it; return the run's state.

    Records a ``RunStopRequested`` (the event Hyperband writes too). The run's agent
    sends SIGTERM, then SIGKILL after the kill delay; the run ends KILLED and is never
    requeued, whatever its exit code. Asking again is a no-op.

    Raises:
        RunNotFound: the log never mentions the run.
        SweepError: the run is not running (pending, over, or preempted and queued).
    """
    async with opened_store(store) as opened, open_projector(opened) as projector:
        run = await projector.run(project, run_id)
        if run is None:
            raise RunNotFound(
                f"the log never mentions run {project}/{run_id}; check the project and id"
            )
        if run.status not in (RunStatus.RUNNING, RunStatus.PREEMPTING):
            raise SweepError(
                f"run {project}/{run_id} is {run.status}; only a running run can be stopped"
                + (" (cancel its sweep to drop queued runs)" if run.sweep_id else "")
            )
        await request_stop(opened, projector, project, run_id, reason=reason)
        state = await projector.run(project, run_id)
        assert state is not None
        return state
