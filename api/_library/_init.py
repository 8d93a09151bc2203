"""``init``: decide whether to create or continue a run, atomically, and start it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import msgspec

from eventstore import (
    NO_STREAM,
    EventStore,
    InvalidArgument,
    NewEvent,
    Opening,
    RunInitialized,
    WrongExpectedVersion,
    run_stream,
)
from projections import RunState

from .._errors import ActiveRunError, ConfigurationError, RunAlreadyExists, RunNotFound
from ._ids import check_run_id, generate_id
from ._remote import run_states
from ._rewind import check_branch, decide_branch
from ._run import Run, active_runs
from ._settings import (
    ResumeMode,
    Settings,
    env,
    merge,
    normalize_resume,
    read_auto_resume,
    read_settings_file,
    remove_auto_resume,
    root_dir,
    store_target,
    write_auto_resume,
)
from ._stores import runlog_store
from ._summary import carry_over

__all__ = ["DEFAULT_PROJECT", "init"]

log = logging.getLogger("runlog")
DEFAULT_PROJECT = "uncategorized"
_ATTEMPTS = 20


def init(
    project: str | None = None,
    id: str | None = None,
    *,
    resume: bool | str | None = None,
    config: dict[str, Any] | None = None,
    notes: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    group: str | None = None,
    job_type: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    store: EventStore | str | os.PathLike[str] | None = None,
    heartbeat_interval: float | None = None,
    settings: Settings | dict[str, Any] | None = None,
    reinit: str | None = None,
    flush_interval: float = 0.2,
    batch_size: int = 1000,
    max_buffer: int = 20_000,
    resume_from: str | None = None,
    fork_from: str | None = None,
) -> Opening[Run]:
    """Start a run, or continue one: ``run = await init(...)`` or ``async with init(...) as run``.

    Args:
        project: the project (``RUNLOG_PROJECT``, else ``"uncategorized"``).
        id: the run id (``RUNLOG_RUN_ID``/``WANDB_RUN_ID``, the auto-resume file with
            ``resume="auto"``, else generated). Inside a sweep run the agent's id wins.
        resume: ``None``/``False`` (create; an existing run is an error), ``"never"``
            (the same), ``"allow"`` (continue if it exists, else create), ``"must"``
            (continue; a missing run is an error), ``"auto"``/``True`` (the id from
            ``<dir>/runlog/resume.json``, then as ``"allow"``). ``RUNLOG_RESUME``.
        config, notes, name, tags, group, job_type: recorded with the run; on a resume,
            given values replace (config per top-level key; empty tags keep the old).
        dir: the root for ``runlog/resume.json`` and the default store
            ``runlog/runlog.db`` (``RUNLOG_DIR``, else the current directory).
        store: an open store, or a path/URL (``RUNLOG_STORE``, else the default).
        heartbeat_interval: seconds of silence before a heartbeat is written (30).
        settings: ``Settings`` (or a dict of its fields), below explicit arguments and
            above the environment.
        reinit: ``"create_new"`` allows ``resume="must"`` while another run is active.
        flush_interval: seconds between group commits.
        batch_size: a commit starts as soon as this many events wait.
        max_buffer: ``log`` waits for a commit when this many events wait.
        resume_from: ``"<id>?_step=n"``: rewind run ``<id>`` to step ``n`` and continue
            it from ``n + 1`` (contract §3.4).
        fork_from: ``"<source>?_step=n"``: a new run whose history starts with the
            source's rows up to ``n``.

    Raises:
        RunAlreadyExists, RunNotFound, ActiveRunError: the resume rules (contract §3.3).
        InvalidRunId, ConfigurationError: a bad id or environment variable.
    """
    arguments = dict(locals())
    return Opening(lambda: _start(**arguments))


async def _start(
    project: str | None,
    id: str | None,
    resume: bool | str | None,
    config: dict[str, Any] | None,
    notes: str | None,
    name: str | None,
    tags: list[str] | None,
    group: str | None,
    job_type: str | None,
    dir: str | os.PathLike[str] | None,
    store: EventStore | str | os.PathLike[str] | None,
    heartbeat_interval: float | None,
    settings: Settings | dict[str, Any] | None,
    reinit: str | None,
    flush_interval: float,
    batch_size: int,
    max_buffer: int,
    resume_from: str | None = None,
    fork_from: str | None = None,
) -> Run:
    given = merge(
        {
            "id": id,
            "project": project,
            "resume": resume,
            "dir": os.fspath(dir) if dir is not None else None,
            "store": store if isinstance(store, (str, os.PathLike)) else None,
            "heartbeat_interval": heartbeat_interval,
        },
        settings,
    )
    if resume is False:
        given.pop("resume", None)
    root = root_dir(given.get("dir"))
    from_file = read_settings_file(root)
    mode = _resume_mode(given, explicitly_unset=resume is False, from_file=from_file.get("resume"))
    branch = check_branch(resume_from, fork_from, mode, given.get("id"))
    if branch is not None and branch.kind == "rewind":
        given["id"] = branch.run_id
    # The settings file counts only where the environment says nothing (contract §2).
    for key, variable in (("id", "RUN_ID"), ("project", "PROJECT"), ("heartbeat_interval", None)):
        if key not in given and key in from_file and (variable is None or env(variable) is None):
            given[key] = from_file[key]
    if "store" not in given and "store" in from_file and not os.environ.get("RUNLOG_STORE"):
        given["store"] = from_file["store"]
    sweep_id = env("SWEEP_ID")
    run_id, project_name = _identity(given, mode, root, sweep_id)
    interval = float(given.get("heartbeat_interval") or 30.0)
    if interval <= 0 or flush_interval <= 0 or batch_size < 1 or max_buffer < batch_size:
        raise InvalidArgument(
            "heartbeat_interval and flush_interval must be positive, batch_size >= 1 and "
            "max_buffer >= batch_size"
        )
    if mode == "must" and active_runs() and reinit != "create_new":
        raise ActiveRunError(
            "Cannot resume a run while another run is active in this process; finish the "
            'active run first, or pass reinit="create_new"'
        )
    if mode is None:
        remove_auto_resume(root)  # contract §5, delete (2)
    elif mode == "auto":
        write_auto_resume(root, run_id)

    # Built before the store is opened: reading the sweep parameters may fail.
    template = _template(
        project_name, run_id, mode, config, notes, name, tags, group, job_type, sweep_id
    )
    opened: EventStore
    if store is None or isinstance(store, (str, os.PathLike)):
        owns_store = True
        opened = await runlog_store(store_target(given.get("store"), root))
    else:
        owns_store = False
        opened = store
    try:
        if branch is not None:

            def build(event: RunInitialized, version: int, final: RunState) -> Run:
                return _build_run(
                    opened,
                    owns_store,
                    event,
                    version,
                    final,
                    root,
                    mode,
                    sweep_id,
                    (interval, flush_interval, batch_size, max_buffer),
                )

            run = await decide_branch(opened, project_name, run_id, branch, template, build)
        else:
            run = await _decide(
                opened,
                owns_store,
                project_name,
                run_id,
                mode,
                root,
                sweep_id,
                template,
                interval,
                flush_interval,
                batch_size,
                max_buffer,
            )
    except BaseException:
        if owns_store:
            await opened.aclose()
        raise
    # Let the run's writer task take its first step before the caller goes on: a task
    # cancelled before it ever ran (the script leaves, asyncio.run cancels what is
    # left) would never get to write what the run logged.
    await asyncio.sleep(0)
    return run


def _sweep_params(sweep_id: str | None) -> dict[str, Any]:
    """Inside a sweep run, the parameters the agent wrote to ``RUNLOG_SWEEP_PARAM_PATH``;
    they override the script's own config defaults, as in W&B."""
    path = env("SWEEP_PARAM_PATH")
    if sweep_id is None or path is None:
        return {}
    try:
        params = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the sweep parameters at {path}: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigurationError(f"the sweep parameters at {path} are not a JSON object")
    return params


def _resume_mode(
    given: dict[str, Any], *, explicitly_unset: bool, from_file: object = None
) -> ResumeMode | None:
    if "resume" in given:
        return normalize_resume(given["resume"])
    if explicitly_unset:
        return None
    value = env("RESUME")
    if value is not None:
        return normalize_resume(value, source="RUNLOG_RESUME")
    return normalize_resume(from_file, source="the settings file's resume")


def _identity(
    given: dict[str, Any], mode: ResumeMode | None, root: Path, sweep_id: str | None
) -> tuple[str, str]:
    explicit_id = given.get("id")
    project = given.get("project")
    if sweep_id is not None:
        # contract §2: inside a sweep run the agent's id and project win.
        agent_id = env("RUN_ID")
        if explicit_id is not None and agent_id is not None and explicit_id != agent_id:
            warnings.warn(f"Ignoring run_id {explicit_id!r} when running a sweep", stacklevel=4)
        if project is not None and env("PROJECT") is not None and project != env("PROJECT"):
            warnings.warn(f"Ignoring project {project!r} when running a sweep", stacklevel=4)
            project = None
        explicit_id = agent_id or explicit_id
    run_id = explicit_id if explicit_id is not None else env("RUN_ID")
    if mode == "auto":
        from_file = read_auto_resume(root)
        if from_file is not None and run_id is not None and from_file != run_id:
            log.warning(
                "Ignoring ID %s loaded due to resume='auto' because the run ID is set to %s.",
                from_file,
                run_id,
            )
        run_id = run_id if run_id is not None else from_file
    run_id = check_run_id(run_id) if run_id is not None else generate_id()
    project = project or env("PROJECT") or DEFAULT_PROJECT
    if not isinstance(project, str) or not project or "/" in project or "\x00" in project:
        raise InvalidArgument(f"project {project!r} must be a non-empty string without '/'")
    return run_id, project


async def _decide(
    store: EventStore,
    owns_store: bool,
    project: str,
    run_id: str,
    mode: ResumeMode | None,
    root: Path,
    sweep_id: str | None,
    template: RunInitialized,
    heartbeat_interval: float,
    flush_interval: float,
    batch_size: int,
    max_buffer: int,
) -> Run:
    stream = run_stream(project, run_id)
    async with run_states(store) as projector:
        for _ in range(_ATTEMPTS):
            state, info, position = await projector.current(project, run_id)
            if info is not None and info.last_position > position:
                continue  # appended after the read model caught up: look again
            event = _initialization(template, state, mode, project, run_id)
            expected = info.version if info is not None else NO_STREAM
            try:
                result = await store.append(stream, [NewEvent(event)], expected)
            except WrongExpectedVersion:
                # Someone else started or wrote to the run meanwhile: decide again
                # (two racing "allow"s give one creation and one resume, §3.3).
                continue
            final = await projector.run(project, run_id)
            assert final is not None
            return _build_run(
                store,
                owns_store,
                event,
                result.version,
                final,
                root,
                mode,
                sweep_id,
                (heartbeat_interval, flush_interval, batch_size, max_buffer),
            )
    raise WrongExpectedVersion(stream, "a stable stream", -1)


def _build_run(
    store: EventStore,
    owns_store: bool,
    event: RunInitialized,
    version: int,
    final: RunState,
    root: Path,
    mode: ResumeMode | None,
    sweep_id: str | None,
    timing: tuple[float, float, int, int],
) -> Run:
    """The ``Run`` of the incarnation ``event`` started (appended at ``version``)."""
    heartbeat_interval, flush_interval, batch_size, max_buffer = timing
    run = Run(
        store=store,
        owns_store=owns_store,
        project=event.project,
        run_id=event.run_id,
        incarnation=event.incarnation,
        resumed=event.resumed,
        starting_step=event.starting_step,
        version=version,
        config=final.config,
        notes=final.notes,
        sweep_id=final.sweep_id or sweep_id,
        files={name: ref.digest for name, ref in final.files.items()},
        root=root,
        auto_resume=mode == "auto",
        heartbeat_interval=heartbeat_interval,
        flush_interval=flush_interval,
        batch_size=batch_size,
        max_buffer=max_buffer,
    )
    carry_over(run, final, _sweep_params(sweep_id))
    return run


def _template(
    project: str,
    run_id: str,
    mode: ResumeMode | None,
    config: dict[str, Any] | None,
    notes: str | None,
    name: str | None,
    tags: list[str] | None,
    group: str | None,
    job_type: str | None,
    sweep_id: str | None,
) -> RunInitialized:
    """The ``RunInitialized`` a start, rewind or fork appends (incarnation decided later)."""
    return RunInitialized(
        project=project,
        run_id=run_id,
        incarnation=0,
        resumed=False,
        starting_step=0,
        resume=mode,
        config={**(config or {}), **_sweep_params(sweep_id)},
        notes=notes,
        name=name,
        tags=list(tags) if tags else None,
        group=group,
        job_type=job_type,
        sweep_id=sweep_id,
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def _initialization(
    template: RunInitialized,
    state: RunState | None,
    mode: ResumeMode | None,
    project: str,
    run_id: str,
) -> RunInitialized:
    """The ``RunInitialized`` to append, or the contract §3.3 error."""
    exists = state is not None and state.started
    if exists:
        assert state is not None
        if mode is None or mode == "never":
            raise RunAlreadyExists(
                f'run {run_id!r} already exists in {project!r}; pass resume="allow" or "must" to '
                f'continue it, or resume_from="{run_id}?_step=N" to rewind it to step N'
            )
        starting = state.last_step + 1 if state.last_step is not None else 0
        return _with(
            template, incarnation=state.incarnation + 1, resumed=True, starting_step=starting
        )
    if mode == "must":
        raise RunNotFound(
            f'run {run_id!r} was never started in project {project!r}; pass resume="allow" to '
            "create it, or check project="
        )
    incarnation = (state.incarnation if state is not None else 0) + 1
    return _with(template, incarnation=incarnation, resumed=False, starting_step=0)


def _with(template: RunInitialized, **changes: Any) -> RunInitialized:
    return msgspec.structs.replace(template, **changes)
