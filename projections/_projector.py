"""The projector: keeps a read model current with the log and answers queries from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from types import TracebackType
from typing import Any, Self

import anyio
import msgspec

from eventstore import (
    Event,
    EventStore,
    InvalidArgument,
    Opening,
    RunLogError,
    StepLogged,
    read_streams,
    run_stream,
    sweep_stream,
)

from ._copies import RunCopy
from ._fold import Fold, RunKey
from ._hosts import READ_MODELS
from ._lifeline import RunLine, line_from_log
from ._readmodel import MemoryReadModel, ReadModel, Snapshot
from ._rewind import history_as_of
from ._state import HistoryPoint, RunState, RunStatus, SweepState, SweepStatus

__all__ = ["ProjectionCheck", "Projector", "compare_snapshots", "open_projector"]

_READ_BACK = 1000
"""History points whose events one ``read_events_at`` call reads. Measured: 1,000 took
about a quarter less CPU per point than 5,000 or 20,000 (less held at once)."""


class ProjectionCheck(msgspec.Struct, frozen=True):
    """The result of comparing the read model with a replay of the log from position 0."""

    position: int
    """The log position both sides reflect."""
    runs: int
    sweeps: int
    history_rows: int
    differences: list[str]
    """One line per disagreement; empty when the read model is exactly the replay."""

    @property
    def ok(self) -> bool:
        """True when the read model equals the replay."""
        return not self.differences


class Projector:
    """Run and sweep state of one store, current with its log.

    Every query first folds in whatever was appended since the last one (by this
    process or any other), so it sees every append that returned before it was asked.
    With a SQLite file store the read model is kept in the same file, with the position
    it reflects, so opening a large store does not replay it (with a PostgreSQL store,
    in the same database); with an in-memory store it lives in memory.

    Use ``async with open_projector(store) as projector``.
    """

    def __init__(self, store: EventStore, *, chunk: int = 10_000) -> None:
        if chunk < 1:
            raise InvalidArgument(f"chunk must be >= 1, got {chunk}")
        self._store = store
        self._chunk = chunk
        self._read_model: ReadModel | None = None
        self._lock = anyio.Lock()
        self._position = 0

    async def _open(self) -> Self:
        # The store picks the read model it can keep (a table in its file or database,
        # the server's, or memory): see eventstore.ReadModelFactory.
        self._read_model = await self._store.host_read_model(READ_MODELS)
        try:
            self._position = await self._read_model.checkpoint()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Close the read model (not the store); idempotent."""
        read_model, self._read_model = self._read_model, None
        if read_model is not None:
            with anyio.CancelScope(shield=True):
                await read_model.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def _model(self) -> ReadModel:
        if self._read_model is None:
            raise RunLogError("the projector is closed; open it with open_projector(store)")
        return self._read_model

    @property
    def position(self) -> int:
        """The log position the read model reflected after the last catch-up."""
        return self._position

    # --- keeping current ----------------------------------------------------------------

    async def catch_up(self) -> int:
        """Fold in everything appended so far; return the position now reflected."""
        async with self._lock:
            self._position = await self._model.catch_up(self._store, self._chunk)
            return self._position

    async def rebuild(self) -> int:
        """Throw the read model away and fold the whole log again; return the position."""
        async with self._lock:
            await self._model.reset()
            self._position = 0
        return await self.catch_up()

    async def check(self) -> ProjectionCheck:
        """Compare the read model with a replay of the log from position 0.

        The replay runs in memory and leaves the read model untouched; use
        ``rebuild()`` to replace a read model that disagrees.
        """
        position = await self.catch_up()
        return await self.compare(await self.replay(position))

    async def stored_position(self) -> int:
        """The position the stored read model reflects now, without catching it up."""
        return await self._model.checkpoint()

    async def replay(
        self,
        to_position: int,
        *,
        into: MemoryReadModel | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> MemoryReadModel:
        """Fold the log up to ``to_position`` in memory (continuing ``into`` if given).

        This is the pure fold from position 0 that every read model must equal;
        ``progress`` is called with the number of events folded after each page.
        """
        replay = into if into is not None else MemoryReadModel()
        start = replay.model.position + 1
        async for page in self._store.read_all_pages(start, to_position=to_position, size=5000):
            replay.apply_now(page)
            if progress is not None:
                progress(len(page))
        return replay

    async def snapshot(self) -> Snapshot:
        """The stored read model's content as of one position, without catching it up."""
        return await self._model.snapshot()

    async def compare(self, replay: MemoryReadModel) -> ProjectionCheck:
        """Compare the stored read model with ``replay``, which must be at the same position.

        Raises:
            InvalidArgument: the read model reflects another position than the replay.
        """
        return compare_snapshots(await self.snapshot(), replay.snapshot_now())

    # --- queries ------------------------------------------------------------------------

    async def run(self, project: str, run_id: str) -> RunState | None:
        """The current state of a run, or None if the log never mentions it."""
        await self.catch_up()
        return await self._model.run((project, run_id))

    async def runs(
        self,
        project: str | None = None,
        status: RunStatus | str | None = None,
        *,
        limit: int | None = None,
    ) -> list[RunState]:
        """Runs, optionally of one project and in one status, oldest first; at most
        ``limit`` (the first page of a list: read from an index, however many runs)."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidArgument(f"limit must be a non-negative int or None, not {limit!r}")
        await self.catch_up()
        return await self._model.runs(project, _run_status(status), limit)

    async def run_line(self, project: str, run_id: str) -> RunLine | None:
        """A run's line: its incarnations, timeline marks and the positions of the events
        ``explain`` describes (None if the log never mentions the run).

        Read from one indexed row where the read model keeps lines; otherwise (a
        server's read model, over HTTP) folded from the run's and its sweep's streams.
        """
        await self.catch_up()
        keeper = getattr(self._model, "run_line", None)
        if keeper is None:
            return await line_from_log(self._store, project, run_id)
        found: RunLine | None = await keeper((project, run_id))
        return found

    async def run_copy(self, project: str, run_id: str, position: int) -> RunCopy | None:
        """The last copy the read model keeps of a run's state at or before ``position``
        (None if there is none, or the read model keeps no copies): time travel folds
        from there, not from the run's start."""
        await self.catch_up()
        keeper = getattr(self._model, "run_copy", None)
        if keeper is None:
            return None
        found: RunCopy | None = await keeper((project, run_id), position)
        return found

    async def runs_of_sweep(self, sweep_id: str) -> list[RunState]:
        """The runs of one sweep."""
        await self.catch_up()
        return await self._model.runs_of_sweep(sweep_id)

    async def history_rows(
        self,
        project: str,
        run_id: str,
        start: int | None = None,
        stop: int | None = None,
        points: int | None = None,
    ) -> list[tuple[int, int]]:
        """(step, position) of a run's history, as ``history`` selects them, without the
        events (a remote projector reads those from its own store)."""
        await self.catch_up()
        return await self._model.history((project, run_id), start, stop, points)

    async def sweep(self, sweep_id: str) -> SweepState | None:
        """The current state of a sweep (with its queue), or None."""
        await self.catch_up()
        return await self._model.sweep(sweep_id)

    async def sweeps(
        self, project: str | None = None, status: SweepStatus | str | None = None
    ) -> list[SweepState]:
        """Sweeps, optionally of one project and in one status, oldest first."""
        await self.catch_up()
        return await self._model.sweeps(project, _sweep_status(status))

    async def history(
        self,
        project: str,
        run_id: str,
        *,
        keys: Sequence[str] | None = None,
        start: int | None = None,
        stop: int | None = None,
        points: int | None = None,
    ) -> list[HistoryPoint]:
        """A run's metric history: every logged step in ``[start, stop)``, or at most
        ``points`` of them spread evenly over that range (keeping the first and last).

        Sampling is even in step values, as a chart's x axis is: for each of ``points``
        evenly spaced target steps it takes the first logged step at or after it, so a
        long gap between steps yields fewer points than asked for rather than crowding
        them on one side. ``keys`` keeps only those metrics (a step that logged none of
        them is left out).
        """
        if points is not None and points < 1:
            raise InvalidArgument(f"points must be >= 1, got {points}")
        await self.catch_up()
        state = await self._model.run((project, run_id))
        if state is not None and (state.rewinds or state.forked_from is not None):
            # Rewound or forked: which rows are visible is decided from the log (§3.4).
            return await history_as_of(
                self._store, project, run_id, keys=keys, start=start, stop=stop, points=points
            )
        rows = await self._model.history((project, run_id), start, stop, points)
        return await self._points(rows, set(keys) if keys is not None else None)

    async def _points(
        self, rows: list[tuple[int, int]], wanted: set[str] | None
    ) -> list[HistoryPoint]:
        """The history points of (step, position) ``rows``: their events read from the log
        a chunk at a time, the next chunk read while this one is turned into points."""
        out: list[HistoryPoint] = []
        chunks = [rows[i : i + _READ_BACK] for i in range(0, len(rows), _READ_BACK)]
        if not chunks:
            return out
        read = self._store.read_events_at
        fetched: list[tuple[list[int], list[Event]]] = [([], []) for _ in chunks]
        ready = [anyio.Event() for _ in chunks]

        async def fetch(index: int) -> None:
            fetched[index] = await read([position for _, position in chunks[index]])
            ready[index].set()

        async with anyio.create_task_group() as group:
            # One chunk is read ahead of the one being turned into points; the task
            # group owns that read and cancels it if this fails.
            group.start_soon(fetch, 0)
            for index, chunk in enumerate(chunks):
                await ready[index].wait()
                got, fetched[index] = fetched[index], ([], [])
                if index + 1 < len(chunks):
                    group.start_soon(fetch, index + 1)
                out += _history_points(chunk, got, wanted)
        return out

    # --- time travel --------------------------------------------------------------------

    async def run_as_of(
        self,
        project: str,
        run_id: str,
        *,
        position: int | None = None,
        recorded_at_us: int | None = None,
    ) -> RunState | None:
        """A run's state as it was at a past position, or at a past time (microseconds)."""
        until = await self._as_of(position, recorded_at_us)
        current = await self.run(project, run_id)
        streams = [run_stream(project, run_id)]
        if current is not None and current.sweep_id is not None:
            streams.append(sweep_stream(current.sweep_id))
        model = await self._fold_streams(streams, until)
        return model.runs.get((project, run_id))

    async def sweep_as_of(
        self, sweep_id: str, *, position: int | None = None, recorded_at_us: int | None = None
    ) -> SweepState | None:
        """A sweep's state (queue included) as it was at a past position or time."""
        until = await self._as_of(position, recorded_at_us)
        await self.catch_up()
        members = await self._model.runs_of_sweep(sweep_id)
        streams = [sweep_stream(sweep_id)] + [run_stream(r.project, r.run_id) for r in members]
        model = await self._fold_streams(streams, until)
        return model.sweeps.get(sweep_id)

    async def _as_of(self, position: int | None, recorded_at_us: int | None) -> int:
        if (position is None) == (recorded_at_us is None):
            raise InvalidArgument("pass exactly one of position= and recorded_at_us=")
        if position is not None:
            if position < 0:
                raise InvalidArgument(f"position must be >= 0, got {position}")
            return position
        assert recorded_at_us is not None
        return await self._store.position_at(recorded_at_us)

    async def _fold_streams(self, streams: list[str], until: int) -> Fold:
        model = Fold()
        async for record in read_streams(self._store, streams, until=until):
            model.apply(record)
        return model


def open_projector(store: EventStore, *, chunk: int = 10_000) -> Opening[Projector]:
    """Open the projector of ``store``: ``async with open_projector(store) as projector``.

    Args:
        store: an open event store.
        chunk: how many events one catch-up transaction folds (bounds how long it holds
            the database's write lock).
    """
    return Opening(Projector(store, chunk=chunk)._open)


def _history_points(
    rows: list[tuple[int, int]], got: tuple[list[int], list[Event]], wanted: set[str] | None
) -> list[HistoryPoint]:
    """The points of ``rows`` given the time and the event at each row's position."""
    times, events = got
    if not set(map(type, events)) <= {StepLogged}:
        position = next(
            p for (_, p), e in zip(rows, events, strict=True) if type(e) is not StepLogged
        )
        raise RunLogError(
            f"the read model's history points at position {position}, which holds no "
            "StepLogged; rebuild the read model (`runlog rebuild`)"
        )
    steps, positions = zip(*rows, strict=True) if rows else ((), ())
    metrics: list[dict[str, Any]] = list(map(_metrics_of, events))
    if wanted is None:
        # Built by map in C: a full history read back is a point per step.
        return list(map(HistoryPoint, steps, positions, times, metrics))
    out: list[HistoryPoint] = []
    for step, position, recorded_at, values in zip(steps, positions, times, metrics, strict=True):
        kept = {k: v for k, v in values.items() if k in wanted}
        if kept:
            out.append(HistoryPoint(step, position, recorded_at, kept))
    return out


_metrics_of = attrgetter("metrics")


def _run_key(state: RunState) -> RunKey:
    return (state.project, state.run_id)


def _sweep_key(state: SweepState) -> tuple[str]:
    return (state.sweep_id,)


def compare_snapshots(stored: Snapshot, replayed: Snapshot) -> ProjectionCheck:
    """Every difference between a stored read model and a replay at the same position.

    Raises:
        InvalidArgument: the two are at different positions.
    """
    if stored.position != replayed.position:
        raise InvalidArgument(
            f"the read model reflects position {stored.position} and the replay "
            f"{replayed.position}; replay to the read model's position first"
        )
    differences: list[str] = []
    _compare("run", stored.runs, replayed.runs, _run_key, differences)
    _compare("sweep", stored.sweeps, replayed.sweeps, _sweep_key, differences)
    left = {(p, r): (n, d) for p, r, n, d in stored.history}
    right = {(p, r): (n, d) for p, r, n, d in replayed.history}
    differing = sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))
    for project, run_id in differing:
        differences.append(f"history of run {project}/{run_id} differs from the replay")
    left_lines = {(p, r): d for p, r, d in stored.lines}
    right_lines = {(p, r): d for p, r, d in replayed.lines}
    for project, run_id in sorted(
        k for k in left_lines.keys() | right_lines.keys() if left_lines.get(k) != right_lines.get(k)
    ):
        differences.append(f"timeline of run {project}/{run_id} differs from the replay")
    left_copies = {(p, r, at): d for p, r, at, d in stored.copies}
    right_copies = {(p, r, at): d for p, r, at, d in replayed.copies}
    for project, run_id, at in sorted(
        k
        for k in left_copies.keys() | right_copies.keys()
        if left_copies.get(k) != right_copies.get(k)
    ):
        differences.append(
            f"the copy of run {project}/{run_id} at position {at} differs from the replay"
        )
    if stored.history_rows != replayed.history_rows and not differing:
        differences.append(
            f"the read model holds {stored.history_rows} history rows and the replay "
            f"{replayed.history_rows}"
        )
    return ProjectionCheck(
        stored.position,
        len(replayed.runs),
        len(replayed.sweeps),
        replayed.history_rows,
        differences,
    )


def _compare(
    kind: str, stored: list[Any], replayed: list[Any], key: Any, differences: list[str]
) -> None:
    left = {key(state): state for state in stored}
    right = {key(state): state for state in replayed}
    for name in sorted(set(left) | set(right)):
        shown = "/".join(name)
        if name not in right:
            differences.append(f"{kind} {shown} is in the read model but not in the replay")
        elif name not in left:
            differences.append(f"{kind} {shown} is in the replay but not in the read model")
        elif left[name] != right[name]:
            fields = [
                field
                for field in left[name].__struct_fields__
                if getattr(left[name], field) != getattr(right[name], field)
            ]
            differences.append(f"{kind} {shown} differs from the replay in {', '.join(fields)}")


def _run_status(status: RunStatus | str | None) -> RunStatus | None:
    if status is None or isinstance(status, RunStatus):
        return status
    try:
        return RunStatus(status)
    except ValueError:
        known = ", ".join(s.value for s in RunStatus)
        raise InvalidArgument(f"unknown run status {status!r}; use one of {known}") from None


def _sweep_status(status: SweepStatus | str | None) -> SweepStatus | None:
    if status is None or isinstance(status, SweepStatus):
        return status
    try:
        return SweepStatus(status.upper())
    except ValueError:
        known = ", ".join(s.value for s in SweepStatus)
        raise InvalidArgument(f"unknown sweep status {status!r}; use one of {known}") from None
