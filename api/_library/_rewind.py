"""Rewind (``resume_from``) and fork (``fork_from``): contract §3.4.

``resume_from="<id>?_step=n"`` continues run ``<id>`` as a new incarnation that starts
at ``n + 1``: the rows after ``n`` are hidden from its history (they stay in the log,
readable as of an earlier position), its summary is recomputed as of step ``n``, and
the config merges as on any resume. ``fork_from="<src>?_step=n"`` creates a new run
whose history starts with the source's rows up to ``n`` and whose summary is the
source's as of ``n``. Either is one conditional append: the ``RunRewound`` or
``RunForked`` fact together with the new incarnation's ``RunInitialized``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from eventstore import (
    NO_STREAM,
    EventStore,
    ExpectedVersion,
    InvalidArgument,
    NewEvent,
    RunForked,
    RunInitialized,
    RunRewound,
    WrongExpectedVersion,
    run_stream,
)
from projections import Fold, RunState, rows_as_of

from .._errors import RunAlreadyExists, RunNotFound
from ._ids import check_run_id
from ._remote import run_states
from ._run import Run

__all__ = ["Branch", "check_branch", "decide_branch", "parse_branch"]

_FORMAT = re.compile(r"^(?P<run>[^?]*)\?(?P<metric>[^=]*)=(?P<value>.*)$")
_ATTEMPTS = 20


class Branch(msgspec.Struct, frozen=True):
    """A parsed ``resume_from``/``fork_from``."""

    kind: Literal["rewind", "fork"]
    run_id: str
    step: int


def parse_branch(value: object, argument: str) -> Branch:
    """``"<run_id>?_step=<n>"`` as a ``Branch``; ``ValueError`` (``InvalidArgument``) else."""
    expected = f'{argument} is "<run_id>?_step=<n>" with n a non-negative step number'
    match = _FORMAT.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidArgument(f"{argument}={value!r}: {expected}")
    if match["metric"] != "_step":
        raise InvalidArgument(
            f"{argument}={value!r}: only the _step metric is supported; {expected}"
        )
    try:
        number = float(match["value"])
    except ValueError:
        raise InvalidArgument(f"{argument}={value!r}: {expected}") from None
    if not number.is_integer() or number < 0:
        raise InvalidArgument(f"{argument}={value!r}: {expected}")
    kind: Literal["rewind", "fork"] = "rewind" if argument == "resume_from" else "fork"
    return Branch(kind, check_run_id(match["run"]), int(number))


def check_branch(
    resume_from: str | None, fork_from: str | None, resume: object, run_id: str | None
) -> Branch | None:
    """The rules of §3.1 and §3.4 that need no store: at most one of ``resume``,
    ``resume_from`` and ``fork_from`` (a resume from the environment counts); ``id=``
    must name the rewound run and must not name a fork's source."""
    given = [resume is not None, resume_from is not None, fork_from is not None]
    if sum(given) > 1:
        raise InvalidArgument("`fork_from`, `resume`, or `resume_from` are mutually exclusive")
    if resume_from is not None:
        branch = parse_branch(resume_from, "resume_from")
        if run_id is not None and run_id != branch.run_id:
            raise InvalidArgument(
                f"id={run_id!r} differs from the run in resume_from ({branch.run_id!r}); a "
                "rewind continues that run: drop id= or make it the same"
            )
        return branch
    if fork_from is not None:
        branch = parse_branch(fork_from, "fork_from")
        if run_id == branch.run_id:
            raise InvalidArgument(
                f"fork_from names run {run_id!r} and so does id=; a fork is a new run: choose "
                f'another id, or use resume_from="{run_id}?_step={branch.step}" to rewind'
            )
        return branch
    return None


async def _cut(
    store: EventStore, project: str, run_id: str, step: int, until: int | None = None
) -> tuple[dict[str, Any], int, int | None]:
    """(summary, visible rows, last step) of a run as of its step ``step``: the
    summary is the run's state right after the last surviving row was logged."""
    rows = [r for r in await rows_as_of(store, project, run_id, until, step) if r[0] <= step]
    if not rows:
        return {}, 0, None
    last_step, last = rows[-1]
    stream = run_stream(project, run_id)
    if last.stream != stream:  # the surviving rows all come from a fork's source
        source = await _state_of(store, stream, until)
        assert source is not None
        assert source.forked_from is not None
        source_project, source_id, _, source_position = source.forked_from
        summary, _, _ = await _cut(store, source_project, source_id, step, source_position)
        return summary, len(rows), last_step
    state = await _state_of(store, stream, last.position)
    assert state is not None
    return dict(state.summary), len(rows), last_step


async def _state_of(store: EventStore, stream: str, until: int | None) -> RunState | None:
    model = Fold()
    async for record in store.read_stream(stream):
        if until is not None and record.position > until:
            break
        model.apply(record)
    return next(iter(model.runs.values()), None)


async def decide_branch(
    store: EventStore,
    project: str,
    run_id: str,
    branch: Branch,
    template: RunInitialized,
    build: Callable[[RunInitialized, int, RunState], Run],
) -> Run:
    """Append the rewind or the fork with its ``RunInitialized`` and start the run.

    Raises:
        RunNotFound: the run to rewind or fork was never started.
        RunAlreadyExists: the fork's id is taken.
        InvalidArgument: the step is after the source's last logged step.
    """
    source_stream = run_stream(project, branch.run_id)
    async with run_states(store) as projector:
        for _ in range(_ATTEMPTS):
            source, info, position = await projector.current(project, branch.run_id)
            if info is not None and info.last_position > position:
                continue
            if source is None or not source.started or info is None:
                verb = "rewind" if branch.kind == "rewind" else "fork"
                raise RunNotFound(
                    f"run {branch.run_id!r} was never started in project {project!r}; there is "
                    f"nothing to {verb}: check the id and project="
                )
            if source.last_step is None or branch.step > source.last_step:
                raise InvalidArgument(
                    f"step {branch.step} is after the last logged step of run "
                    f"{branch.run_id!r} ({source.last_step}); choose a step it logged"
                )
            summary, rows, last_step = await _cut(store, project, branch.run_id, branch.step)
            started = branch.step + 1
            events: list[Any]
            expected: ExpectedVersion
            if branch.kind == "rewind":
                incarnation = source.incarnation + 1
                stream, expected = source_stream, info.version
                events = [
                    RunRewound(
                        incarnation=incarnation,
                        step=branch.step,
                        summary=summary,
                        rows=rows,
                        last_step=last_step,
                    ),
                    msgspec.structs.replace(
                        template, incarnation=incarnation, resumed=True, starting_step=started
                    ),
                ]
            else:
                stream = run_stream(project, run_id)
                if (await projector.current(project, run_id))[1] is not None:
                    raise RunAlreadyExists(
                        f"run {run_id!r} already exists in {project!r}; a fork is a new run: "
                        "choose another id (or none, for a generated one)"
                    )
                expected = NO_STREAM
                events = [
                    RunForked(
                        source_project=project,
                        source_run_id=branch.run_id,
                        step=branch.step,
                        source_position=info.last_position,
                        summary=summary,
                        rows=rows,
                        last_step=last_step,
                    ),
                    msgspec.structs.replace(
                        template,
                        incarnation=1,
                        resumed=False,
                        starting_step=started,
                        config={**source.config, **template.config},
                    ),
                ]
            try:
                result = await store.append(stream, [NewEvent(e) for e in events], expected)
            except WrongExpectedVersion:
                continue  # written to meanwhile: decide again
            final = await projector.run(project, run_id)
            assert final is not None
            return build(events[-1], result.version, final)
    raise WrongExpectedVersion(source_stream, "a stable stream", -1)
