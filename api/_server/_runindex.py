"""The dashboard's runs table: filter, sort and page over every run without decoding them
per request.

The read model keeps each run's state as one encoded value, which is right for folding
but means a query sorting 100,000 runs by a summary metric would decode them all. The
index decodes each run once, keeps the few fields a table shows, and afterwards reloads
only the runs whose stream (or whose sweep's stream) moved: it compares the streams'
last positions, which the store lists without decoding any event. A page of the table
then costs a filter and a sort over small in-memory rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import anyio
import msgspec

from eventstore import EventStore
from projections import Projector, RunState

__all__ = ["SORTABLE", "RunIndex", "RunQuery", "RunRow", "row_of", "select"]

SORTABLE = (
    "created",
    "updated",
    "runtime",
    "steps",
    "last_step",
    "status",
    "run_id",
    "name",
    "project",
)
"""Sort keys besides ``config.<key>`` and ``summary.<key>``."""
_GAP_READ = 2000  # up to this many new events are read to see which runs moved


class RunRow(msgspec.Struct, kw_only=True):
    """What the runs table knows of one run."""

    project: str
    run_id: str
    name: str | None
    status: str
    sweep_id: str | None
    tags: list[str]
    group: str | None
    steps: int
    last_step: int | None
    created_us: int
    updated_us: int
    runtime_s: float
    """Wall time from the run's first event to its last, in seconds."""
    incarnation: int
    config: dict[str, Any]
    summary: dict[str, Any]
    last_position: int
    text: str = ""
    """Lower-cased project, id, name, group, tags and notes: what the search looks in."""


class RunQuery(msgspec.Struct, kw_only=True):
    """A runs-table request: filters, one sort key, a page."""

    project: str | None = None
    status: str | None = None
    sweep: str | None = None
    tag: str | None = None
    search: str | None = None
    sort: str = "created"
    descending: bool = True
    offset: int = 0
    limit: int = 50


def row_of(state: RunState) -> RunRow:
    """The table row of a run state."""
    last = state.last_event_us or state.updated_us
    text = " ".join(
        [
            state.project,
            state.run_id,
            state.name or "",
            state.group or "",
            state.notes or "",
            *state.tags,
        ]
    ).lower()
    return RunRow(
        project=state.project,
        run_id=state.run_id,
        name=state.name,
        status=state.status.value,
        sweep_id=state.sweep_id,
        tags=list(state.tags),
        group=state.group,
        steps=state.steps,
        last_step=state.last_step,
        created_us=state.created_us,
        updated_us=state.updated_us,
        runtime_s=max(0, last - state.created_us) / 1e6 if state.created_us else 0.0,
        incarnation=state.incarnation,
        config=_flat(state.config),
        summary=_flat(state.summary),
        last_position=state.last_position,
        text=text,
    )


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: a table column is one scalar."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = prefix + str(key)
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


_FIELDS: dict[str, Callable[[RunRow], Any]] = {
    "created": attrgetter("created_us"),
    "updated": attrgetter("updated_us"),
    "runtime": attrgetter("runtime_s"),
    "steps": attrgetter("steps"),
    "last_step": attrgetter("last_step"),
    "status": attrgetter("status"),
    "run_id": attrgetter("run_id"),
    "name": lambda row: row.name or row.run_id,
    "project": attrgetter("project"),
}


def _getter(sort: str) -> Callable[[RunRow], Any]:
    if sort.startswith("config."):
        key = sort[7:]
        return lambda row: row.config.get(key)
    if sort.startswith("summary."):
        key = sort[8:]
        return lambda row: row.summary.get(key)
    return _FIELDS[sort]


class RunIndex:
    """Every run's table row, kept current with the log on demand."""

    def __init__(self, store: EventStore, projector: Projector) -> None:
        self._store = store
        self._projector = projector
        self._rows: dict[tuple[str, str], RunRow] = {}
        self._streams: dict[str, int] = {}  # stream -> last position seen
        self._keys: list[tuple[str, str]] = []  # of the rows, sorted: the order of ties
        self._position = -1  # -1: never loaded
        self._lock = anyio.Lock()

    @property
    def position(self) -> int:
        """The log position the rows reflect (at least)."""
        return self._position

    async def refresh(self) -> int:
        """Bring the rows up to the log's head; return the position they reflect."""
        async with self._lock:
            head = await self._projector.catch_up()
            if self._position < 0:
                await self._load_all()
                self._position = head
            elif head > self._position:
                if head - self._position <= _GAP_READ:
                    await self._reload_read(head)
                else:
                    await self._reload_changed()
                self._position = head
            return self._position

    async def _load_all(self) -> None:
        for state in await self._projector.runs():
            self._rows[(state.project, state.run_id)] = row_of(state)
        self._streams = {
            info.name: info.last_position
            for prefix in ("run:", "sweep:")
            for info in await self._store.streams(prefix)
        }

    async def _reload_read(self, head: int) -> None:
        runs: set[str] = set()
        sweeps: set[str] = set()
        async for record in self._store.read_all(self._position + 1, to_position=head):
            self._streams[record.stream] = record.position
            if record.stream.startswith("run:"):
                runs.add(record.stream)
            elif record.stream.startswith("sweep:"):
                sweeps.add(record.stream[6:])
        await self._reload(runs, sweeps)

    async def _reload_changed(self) -> None:
        runs: set[str] = set()
        sweeps: set[str] = set()
        for prefix in ("run:", "sweep:"):
            for info in await self._store.streams(prefix):
                if self._streams.get(info.name) != info.last_position:
                    self._streams[info.name] = info.last_position
                    (runs if prefix == "run:" else sweeps).add(info.name[len(prefix) :])
        await self._reload({"run:" + r for r in runs}, sweeps)

    async def _reload(self, run_streams: Iterable[str], sweeps: Iterable[str]) -> None:
        keys: set[tuple[str, str]] = set()
        for stream in run_streams:
            project, _, run_id = stream[4:].partition("/")
            keys.add((project, run_id))
        for sweep_id in sweeps:
            # Sweep events (claims, requeues, kills) change the state of the sweep's runs.
            for state in await self._projector.runs_of_sweep(sweep_id):
                self._rows[(state.project, state.run_id)] = row_of(state)
        for project, run_id in keys:
            found = await self._projector.run(project, run_id)
            if found is not None:
                self._rows[(project, run_id)] = row_of(found)

    def rows(self) -> list[RunRow]:
        """Every row, in no particular order."""
        return list(self._rows.values())

    def select(self, query: RunQuery) -> tuple[list[RunRow], int]:
        """The rows of one page of ``query`` and how many rows match in all."""
        if len(self._keys) != len(self._rows):
            self._keys = sorted(self._rows)  # a run was added since
        return select([self._rows[key] for key in self._keys], query)


def select(rows: list[RunRow], query: RunQuery) -> tuple[list[RunRow], int]:
    """One page of ``rows`` filtered and sorted as ``query`` says, and how many match.

    ``rows`` must be in (project, run id) order: it is the order of ties.

    Numbers come first, then strings, then other values, then NaN, then the runs without
    the value, whichever the direction: the direction orders values within each kind, so
    a column mixing kinds still reads sensibly and missing values never lead.

    Raises:
        ValueError: ``query.sort`` is not a sort key.
    """
    key = query.sort
    if key not in SORTABLE and not key.startswith(("config.", "summary.")):
        raise ValueError(f"cannot sort by {key!r}")
    value_of = _getter(key)
    ordered = rows
    if any(
        v is not None for v in (query.project, query.status, query.sweep, query.tag, query.search)
    ):
        ordered = [row for row in ordered if _matches(row, query)]
    # Only lists of existing objects and of indexes are built: at 100,000 runs, a tuple
    # per row would cost more in garbage collection than the sort itself.
    values = [value_of(row) for row in ordered]
    kinds: list[list[int]] = [[], [], [], [], []]  # number, string, other, NaN, missing
    for index, value in enumerate(values):
        of_type = type(value)
        if of_type is float or of_type is int or of_type is bool:
            kinds[0 if value == value else 3].append(index)
        elif of_type is str:
            kinds[1].append(index)
        elif value is None:
            kinds[4].append(index)
        else:
            values[index] = repr(value)
            kinds[2].append(index)
    wanted = query.offset + query.limit
    chosen: list[int] = []
    for kind, indexes in enumerate(kinds):
        if len(chosen) >= wanted:
            break
        if kind < 3:
            # Python's sort is stable, also reversed: ties keep the (project, run id) order.
            indexes.sort(key=values.__getitem__, reverse=query.descending)
        chosen += indexes[: wanted - len(chosen)]
    return [ordered[i] for i in chosen[query.offset : wanted]], len(ordered)


def _matches(row: RunRow, query: RunQuery) -> bool:
    if query.project is not None and row.project != query.project:
        return False
    if query.status is not None and row.status != query.status:
        return False
    if query.sweep is not None and row.sweep_id != query.sweep:
        return False
    if query.tag is not None and query.tag not in row.tags:
        return False
    return query.search is None or query.search in row.text
