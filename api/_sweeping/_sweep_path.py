"""Sweep ids as W&B prints them: ``ID``, ``project/ID`` or ``entity/project/ID``."""

from __future__ import annotations

from projections import Projector

from .._errors import SweepNotFound

__all__ = ["resolve_sweep_id", "split_sweep_path"]


def split_sweep_path(text: str) -> tuple[str | None, str]:
    """(project or None, sweep id) of ``ID``, ``project/ID`` or ``entity/project/ID``.

    runlog has no entities: the entity part is accepted and not checked.

    Raises:
        SweepNotFound: more than three parts, or an empty id.
    """
    parts = text.split("/")
    if len(parts) > 3 or not parts[-1]:
        raise SweepNotFound(
            f"{text!r} is not a sweep id; write ID, project/ID or entity/project/ID"
        )
    project = parts[-2] if len(parts) >= 2 and parts[-2] else None
    return project, parts[-1]


async def resolve_sweep_id(text: str, projector: Projector, where: str) -> str:
    """The sweep id of ``text`` (any of W&B's forms), checked against its project.

    Raises:
        SweepNotFound: no such sweep, or the sweep belongs to another project.
    """
    project, sweep_id = split_sweep_path(text)
    if project is None:
        return sweep_id
    sweep = await projector.sweep(sweep_id)
    if sweep is None:
        raise SweepNotFound(f"there is no sweep {sweep_id!r} in {where}")
    if sweep.project != project:
        raise SweepNotFound(
            f"sweep {sweep_id!r} belongs to project {sweep.project!r}, not {project!r}; "
            f"use {sweep.project}/{sweep_id} or just {sweep_id}"
        )
    return sweep_id
