"""The event schema: every type round-trips; old payloads upcast; bad ones fail by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from eventstore import (
    AgentHeartbeat,
    AgentStarted,
    AgentStopped,
    ClaimLapsed,
    ConfigUpdated,
    Event,
    EventCodec,
    FileSaved,
    Heartbeat,
    HeartbeatExpired,
    InvalidArgument,
    MalformedEvent,
    MetricDefined,
    NotesEdited,
    PreemptMarked,
    RunClaimed,
    RunExited,
    RunForked,
    RunInitialized,
    RunKilled,
    RunRevived,
    RunRewound,
    RunScheduled,
    RunStopRequested,
    StepLogged,
    SummaryUpdated,
    SweepCancelled,
    SweepCreated,
    SweepFinished,
    SweepPaused,
    SweepResumed,
    SweepStopped,
    UnknownEventType,
    default_codec,
    open_store,
)


def example_events() -> list[Event]:
    """One instance of every catalogue type, with non-default values."""
    return [
        RunInitialized(
            project="p",
            run_id="a",
            incarnation=2,
            resumed=True,
            starting_step=11,
            resume="allow",
            config={"lr": 0.1, "layers": [64, 64]},
            notes="n",
            name="first",
            tags=["x"],
            group="g",
            job_type="train",
            sweep_id="s1",
            host="h",
            pid=42,
        ),
        StepLogged(incarnation=2, step=11, metrics={"loss": 0.5, "nested": {"a": 1}}),
        NotesEdited(notes="edited", incarnation=2),
        PreemptMarked(incarnation=2),
        Heartbeat(incarnation=2),
        RunExited(incarnation=2, exit_code=143, interrupted=False),
        HeartbeatExpired(incarnation=2, last_position=7, observed_at_us=99, timeout_s=300.0),
        RunKilled(reason="sweep cancelled", incarnation=2, sweep_id="s1"),
        RunRevived(incarnation=2),
        FileSaved(incarnation=2, name="model-best.h5", digest="blake2b:00ff", size=10),
        SweepCreated(
            sweep_id="s1", project="p", method="grid", config={"method": "grid"}, seed=7, run_cap=10
        ),
        SweepPaused(reason="look"),
        SweepResumed(),
        SweepStopped(),
        SweepCancelled(reason="budget"),
        SweepFinished(reason="exhausted"),
        RunScheduled(run_id="r1", params={"lr": 0.1}, index=0),
        RunClaimed(run_id="r1", agent_id="ag", requeue=True, lease_s=30.0),
        ClaimLapsed(run_id="r1", claim_position=12),
        AgentStarted(agent_id="ag", host="h", pid=1),
        AgentStopped(agent_id="ag", reason="count reached"),
        RunStopRequested(
            incarnation=2,
            reason="hyperband",
            rule="hyperband",
            sweep_id="s1",
            band=3,
            value=0.9,
            threshold=0.5,
        ),
        AgentHeartbeat(agent_id="ag", run_ids=["r1"]),
        SummaryUpdated(values={"best_loss": 0.25}, incarnation=2, removed=["old"]),
        ConfigUpdated(values={"lr": 0.2}, incarnation=2),
        MetricDefined(
            name="loss", incarnation=2, step_metric="epoch", summary="min", goal="minimize"
        ),
        RunRewound(incarnation=3, step=7, summary={"loss": 0.5}, rows=8),
        RunForked(
            source_project="p",
            source_run_id="a",
            step=7,
            source_position=12,
            summary={"loss": 0.5},
            rows=8,
        ),
    ]


@pytest.mark.parametrize("event", example_events(), ids=lambda e: type(e).__name__)
def test_every_event_type_round_trips_through_the_codec(event: Event) -> None:
    assert default_codec.decode(default_codec.encode(event)) == event


def test_the_tag_names_the_type() -> None:
    raw = msgspec.msgpack.decode(default_codec.encode(Heartbeat(incarnation=1)))
    assert raw == {"type": "Heartbeat", "incarnation": 1}


# --- schema evolution -------------------------------------------------------------------


class CheckpointV1(Event, frozen=True, tag="Checkpoint"):
    """The shape an older runlog wrote."""

    incarnation: int
    path: str


class CheckpointV2(Event, frozen=True, tag="Checkpoint.v2"):
    """Today's shape: ``path`` renamed to ``file``, ``size`` added."""

    schema_version: ClassVar[int] = 2
    incarnation: int
    file: str
    size: int = 0


def evolved_codec(with_upcaster: bool = True) -> EventCodec:
    codec = EventCodec([*default_codec.types, CheckpointV2])
    if with_upcaster:

        @codec.register_upcaster("Checkpoint", from_version=1)
        def rename_path(payload: dict[str, object]) -> dict[str, object]:
            payload["file"] = payload.pop("path")
            return payload

    return codec


def test_bytes_written_by_the_old_shape_decode_through_the_upcaster() -> None:
    old_bytes = msgspec.msgpack.encode(CheckpointV1(incarnation=3, path="ckpt/7.pt"))
    assert evolved_codec().decode(old_bytes) == CheckpointV2(incarnation=3, file="ckpt/7.pt")


def test_current_bytes_take_the_fast_path() -> None:
    codec = evolved_codec()
    event = CheckpointV2(incarnation=1, file="f", size=3)
    assert codec.decode(codec.encode(event)) == event


async def test_a_store_written_by_an_older_runlog_reads_upcast(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with open_store(path, codec=EventCodec([*default_codec.types, CheckpointV1])) as old:
        await old.append("run:p/a", [CheckpointV1(incarnation=1, path="a.pt")])
    async with open_store(path, codec=evolved_codec()) as new:
        [record] = [r async for r in new.read_all()]
        [same] = [r async for r in new.read_stream("run:p/a")]
    assert record.event == CheckpointV2(incarnation=1, file="a.pt")
    assert same.event == record.event


def test_an_old_version_without_an_upcaster_is_an_unknown_type() -> None:
    old_bytes = msgspec.msgpack.encode(CheckpointV1(incarnation=3, path="x"))
    with pytest.raises(UnknownEventType, match="position 9: Checkpoint schema version 1 has no"):
        evolved_codec(with_upcaster=False).decode(old_bytes, position=9)


def test_a_newer_version_than_this_build_knows_says_upgrade() -> None:
    future = msgspec.msgpack.encode({"type": "StepLogged.v9", "incarnation": 1})
    with pytest.raises(UnknownEventType, match="newer runlog"):
        default_codec.decode(future, position=3)


def test_an_unknown_type_names_its_position() -> None:
    with pytest.raises(UnknownEventType) as caught:
        default_codec.decode(msgspec.msgpack.encode({"type": "Teleported"}), position=17)
    assert caught.value.position == 17
    assert "Teleported" in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [b"\xc1", b"", msgspec.msgpack.encode([1, 2]), msgspec.msgpack.encode({"type": "StepLogged"})],
    ids=["invalid-byte", "empty", "not-a-map", "missing-fields"],
)
def test_a_malformed_payload_names_its_position(payload: bytes) -> None:
    with pytest.raises(MalformedEvent) as caught:
        default_codec.decode(payload, position=5)
    assert caught.value.position == 5


async def test_reading_a_malformed_stored_event_names_its_position(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store:
        await store.append("run:p/a", [Heartbeat(incarnation=1)])
    with sqlite3.connect(path) as db:  # a writer that bypasses runlog
        db.execute(
            "INSERT INTO events VALUES (2, 1, 1, x'00000000000000000000000000000001', 0, x'c1', x'00')"
        )
    async with open_store(path) as store:
        with pytest.raises(MalformedEvent, match="position 2"):
            [r async for r in store.read_all()]


def test_a_codec_refuses_a_type_whose_tag_does_not_carry_its_version() -> None:
    class Wrong(Event, tag="Wrong"):
        schema_version: ClassVar[int] = 2

    with pytest.raises(InvalidArgument, match=r"Wrong\.v2"):
        EventCodec([Wrong])


def test_an_upcaster_for_a_missing_type_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no event type named"):
        default_codec.register_upcaster("Nope", 1)


def test_a_payload_with_a_string_that_is_not_utf8_is_malformed_at_its_position() -> None:
    data = default_codec.encode(StepLogged(incarnation=1, step=0, metrics={"loss": 0.5}))
    damaged = data.replace(b"loss", b"lo\xffs")
    with pytest.raises(MalformedEvent, match="not valid UTF-8") as caught:
        default_codec.decode(damaged, position=9)
    assert caught.value.position == 9


def test_a_payload_nested_too_deeply_to_parse_is_malformed_at_its_position() -> None:
    with pytest.raises(MalformedEvent, match="nested too deeply") as caught:
        default_codec.decode(b"\x91" * 100_000, position=4)
    assert caught.value.position == 4


def test_an_upcaster_that_fails_is_a_malformed_event_at_its_position() -> None:
    codec = EventCodec([*default_codec.types, CheckpointV2])

    @codec.register_upcaster("Checkpoint", from_version=1)
    def broken(payload: dict[str, object]) -> dict[str, object]:
        raise KeyError("file")

    old_bytes = msgspec.msgpack.encode(CheckpointV1(incarnation=3, path="ckpt/7.pt"))
    with pytest.raises(MalformedEvent, match="cannot be upcast: KeyError") as caught:
        codec.decode(old_bytes, position=11)
    assert caught.value.position == 11
