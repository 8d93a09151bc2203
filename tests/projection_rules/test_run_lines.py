"""Each run's line (incarnations, timeline marks, explained events) in the read model:
folded chunk by chunk it equals the fold of the run's streams, a rebuild and a replay."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventstore import (
    ClaimLapsed,
    EventStore,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunRevived,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    open_store,
)
from projections import open_projector
from projections._lifeline import line_from_log

from .._backends import StoreFactory
from ._log import init, sweep_created


def _steps(incarnation: int, start: int, count: int) -> list[StepLogged]:
    return [
        StepLogged(incarnation=incarnation, step=s, metrics={"loss": 1 / (s + 1)})
        for s in range(start, start + count)
    ]


async def write_life(store: EventStore) -> None:
    """A sweep run with every kind of mark: claims, a lapse, an expiry and revival, a
    preemption, fenced writes of the old incarnation, a file, a stop request."""
    await store.append("sweep:s", [sweep_created("s")])
    await store.append(
        "sweep:s",
        [
            RunScheduled(run_id="a", params={"lr": 0.1}),
            RunClaimed(run_id="a", agent_id="agent-1"),
            ClaimLapsed(run_id="a", claim_position=3),
            RunClaimed(run_id="a", agent_id="agent-2"),
        ],
    )
    stream = "run:p/a"
    await store.append(stream, [init("a", sweep_id="s"), *_steps(1, 0, 7)])
    await store.append(
        stream,
        [
            HeartbeatExpired(incarnation=1, last_position=3, observed_at_us=1, timeout_s=60.0),
            Heartbeat(incarnation=1),
            RunRevived(incarnation=1),
            *_steps(1, 7, 3),
            PreemptMarked(incarnation=1),
            RunExited(incarnation=1, exit_code=143),
        ],
    )
    await store.append("sweep:s", [RunClaimed(run_id="a", agent_id="agent-1", requeue=True)])
    await store.append(
        stream,
        [
            init("a", 2, starting_step=10, sweep_id="s"),
            *_steps(1, 10, 2),  # the old writer, fenced
            *_steps(2, 10, 5),
            FileSaved(incarnation=2, name="model.bin", digest="0" * 64, size=3),
            RunStopRequested(incarnation=2, reason="early stop", rule="user"),
            RunExited(incarnation=2, exit_code=0),
        ],
    )
    # Another run, so the chunks hold several streams.
    await store.append("run:p/b", [init("b"), *_steps(1, 0, 4)])


async def test_a_line_folded_in_chunks_equals_the_fold_of_the_runs_streams(
    store: EventStore,
) -> None:
    await write_life(store)
    async with open_projector(store, chunk=3) as projector:
        stored = await projector.run_line("p", "a")
        assert stored is not None
        assert stored == await line_from_log(store, "p", "a")
        bands = stored.line.bands
        assert [(b.incarnation, b.first_step, b.last_step, b.steps) for b in bands] == [
            (1, 0, 9, 10),
            (2, 10, 14, 5),
        ]
        assert [b.end for b in bands] == ["exit 143", "exit 0"]
        assert stored.line.fenced == 2
        kinds = [m.kind for m in stored.line.marks]
        assert kinds == [
            "scheduled",
            "claimed",
            "lapsed",
            "claimed",
            "init",
            "expired",
            "revived",
            "preempt",
            "exit",
            "requeued",
            "resume",
            "fenced",
            "file",
            "exit",
        ]
        check = await projector.check()
        assert check.ok, check.differences


async def test_explained_events_are_listed_by_position_in_log_order(store: EventStore) -> None:
    await write_life(store)
    async with open_projector(store) as projector:
        stored = await projector.run_line("p", "a")
        assert stored is not None
        records = await store.read_positions(stored.events)
    assert [type(r.event).__name__ for r in records] == [
        "RunClaimed",
        "ClaimLapsed",
        "RunClaimed",
        "RunInitialized",
        "HeartbeatExpired",
        "RunRevived",
        "PreemptMarked",
        "RunExited",
        "RunClaimed",
        "RunInitialized",
        "RunStopRequested",
        "RunExited",
    ]
    assert stored.events == sorted(stored.events)


async def test_rebuild_gives_exactly_the_incremental_lines(factory: StoreFactory) -> None:
    async with factory.open() as store, open_projector(store, chunk=2) as projector:
        await write_life(store)
        before = [await projector.run_line("p", r) for r in ("a", "b")]
        await projector.rebuild()
        assert [await projector.run_line("p", r) for r in ("a", "b")] == before


async def test_an_expiry_then_an_exit_ends_the_incarnation_with_the_exit(
    store: EventStore,
) -> None:
    await store.append(
        "run:p/a",
        [
            init("a"),
            HeartbeatExpired(incarnation=1, last_position=1, observed_at_us=1, timeout_s=60.0),
            RunExited(incarnation=1, exit_code=0),
        ],
    )
    async with open_projector(store) as projector:
        stored = await projector.run_line("p", "a")
    assert stored is not None
    assert [b.end for b in stored.line.bands] == ["exit 0"]


async def test_check_reports_a_line_that_differs_from_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store, open_projector(store) as projector:
        await write_life(store)
        await projector.catch_up()
        with sqlite3.connect(path) as db:  # damage the read model, not the log
            db.execute(
                "UPDATE rm_lines SET state = (SELECT state FROM rm_lines WHERE run_id = 'b') "
                "WHERE run_id = 'a'"
            )
        db.close()
        check = await projector.check()
        assert "timeline of run p/a differs from the replay" in check.differences
        await projector.rebuild()
        assert (await projector.check()).ok


async def test_a_read_model_of_an_older_runlog_is_rebuilt_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store, open_projector(store) as projector:
        await write_life(store)
        await projector.catch_up()
        head = await store.head()
    with sqlite3.connect(path) as db:  # what runlog before read-model version 2 left
        db.execute("DROP TABLE rm_lines")
        db.execute("UPDATE rm_meta SET value = 1 WHERE key = 'schema'")
    db.close()
    async with open_store(path) as store, open_projector(store) as projector:
        assert await projector.stored_position() == 0  # emptied, to be folded again
        stored = await projector.run_line("p", "a")
        assert stored is not None
        assert [b.incarnation for b in stored.line.bands] == [1, 2]
        assert projector.position == head
        assert (await projector.check()).ok
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone() == (2,)
    db.close()


async def test_copies_of_run_states_are_the_same_folded_in_chunks_rebuilt_or_replayed(
    factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from projections import _copies

    monkeypatch.setattr(_copies, "COPY_EVERY", 4)
    async with factory.open() as store, open_projector(store, chunk=3) as projector:
        await write_life(store)
        await projector.catch_up()
        stored = (await projector.snapshot()).copies
        assert len(stored) == 7  # run a: 27 events, so 6 copies; run b: 5, so 1
        check = await projector.check()
        assert check.ok, check.differences
        await projector.rebuild()
        assert (await projector.snapshot()).copies == stored
        copy = await projector.run_copy("p", "a", stored[1][2])
        assert copy is not None
        assert (copy.position, copy.version) == (stored[1][2], 8)
        assert copy.sweep is not None
        assert copy.sweep.sweep_id == "s"


async def test_a_version_1_read_model_in_postgresql_is_rebuilt_on_open(tmp_path: Path) -> None:
    import asyncpg

    from .._postgres import database_url

    url = database_url(tmp_path)
    async with open_store(url) as store, open_projector(store) as projector:
        await write_life(store)
        await projector.catch_up()
    connection = await asyncpg.connect(url)
    try:  # what runlog before read-model version 2 left
        await connection.execute("DROP TABLE rm_lines")
        await connection.execute("DROP TABLE rm_copies")
        await connection.execute("UPDATE rm_meta SET value = 1 WHERE key = 'schema'")
    finally:
        await connection.close()
    async with open_store(url) as store, open_projector(store) as projector:
        assert await projector.stored_position() == 0
        stored = await projector.run_line("p", "a")
        assert stored is not None
        assert [b.incarnation for b in stored.line.bands] == [1, 2]
        assert (await projector.check()).ok


async def test_a_sweep_event_before_its_sweep_exists_marks_no_line_in_any_chunking(
    store: EventStore,
) -> None:
    await store.append("sweep:s", [RunClaimed(run_id="a", agent_id="early")])
    await store.append("sweep:s", [sweep_created("s")])
    await store.append("sweep:s", [RunScheduled(run_id="a", params={"lr": 0.1})])
    async with open_projector(store, chunk=1) as projector:
        stored = await projector.run_line("p", "a")
        assert stored is not None
        assert [m.kind for m in stored.line.marks] == ["scheduled"]
        check = await projector.check()  # the replay folds all three at once
        assert check.ok, check.differences
