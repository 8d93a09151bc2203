"""No value can poison a run: what the store cannot hold is refused at the ``log`` call,
naming the key, and every other value is stored (issue: a bad value used to sink the
whole buffered batch and every later flush)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import api
from eventstore import EventTooLarge, InvalidArgument, StepLogged, open_store

BAD_VALUES = {
    "int over 64 bits": 2**64,
    "int under -2**63": -(2**63) - 1,
    "lone surrogate": "ab\udc80",
    "surrogate inside a list": ["ok", "\ud800"],
    "object": object(),
    "big int in a dict": {"n": 2**70},
}


async def stored_rows(root: Path, run_id: str = "r") -> list[tuple[int, dict[str, Any]]]:
    async with open_store(root / "runlog" / "runlog.db") as store:
        return [
            (r.event.step, r.event.metrics)
            async for r in store.read_stream(f"run:p/{run_id}")
            if isinstance(r.event, StepLogged)
        ]


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
async def test_a_value_the_store_cannot_hold_is_refused_at_the_call_naming_its_key(
    root: Path, value: object
) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"loss": 1.0})
        # A nested dict is a metric group (issue 14): its bad value is named "bad.n".
        with pytest.raises(InvalidArgument, match=r"'bad(\.n)?'"):
            await run.log({"loss": 2.0, "bad": value})
        assert run.step == 1  # the refused call changed nothing
        await run.log({"loss": 3.0})
        await run.flush()  # and nothing later fails because of it
    assert await stored_rows(root) == [(0, {"loss": 1.0}), (1, {"loss": 3.0})]


async def test_a_metric_name_that_cannot_be_encoded_is_refused(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        with pytest.raises(InvalidArgument, match="metric name"):
            await run.log({"bad\udc80": 1.0})
        await run.log({"ok": 1.0})
    assert await stored_rows(root) == [(0, {"ok": 1.0})]


async def test_a_row_over_the_size_limit_is_refused_at_the_call(root: Path) -> None:
    store = await open_store(root / "s.db", max_event_bytes=4096)
    async with api.init(project="p", id="r", store=store) as run:
        await run.log({"a": "x" * 1000}, commit=False)
        with pytest.raises(EventTooLarge, match="step 0"):
            await run.log({"b": "y" * 4000}, commit=False)  # merged, the row would be too big
        await run.log({"c": 1})
    async with open_store(root / "s.db") as reopened:
        rows = [
            (r.event.step, r.event.metrics)
            async for r in reopened.read_stream("run:p/r")
            if isinstance(r.event, StepLogged)
        ]
    await store.aclose()
    assert rows == [(0, {"a": "x" * 1000, "c": 1})]


async def test_logging_one_key_again_and_again_at_one_step_is_not_refused(root: Path) -> None:
    store = await open_store(root / "s.db", max_event_bytes=4096)
    async with api.init(project="p", id="r", store=store) as run:
        for i in range(2000):  # the size estimate grows; the row does not
            await run.log({"a": i}, commit=False)
        await run.log({})
    await store.aclose()


valid = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)
invalid = st.one_of(
    st.integers(min_value=2**64, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) - 1),
    st.sampled_from(["\ud800", "x\udfff", "\udc80y"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=st.lists(st.tuples(st.booleans(), valid, invalid), min_size=1, max_size=30))
async def test_every_accepted_value_is_stored_and_every_refused_one_raised_at_its_call(
    tmp_path_factory: pytest.TempPathFactory, calls: list[tuple[bool, Any, Any]]
) -> None:
    root = tmp_path_factory.mktemp("values")
    expected = []
    async with api.init(project="p", id="r", store=root / "s.db") as run:
        for good, ok_value, bad_value in calls:
            if good:
                await run.log({"v": ok_value})
                expected.append((len(expected), {"v": ok_value}))
            else:
                with pytest.raises(InvalidArgument):
                    await run.log({"v": ok_value, "w": bad_value})
        await run.flush()
    async with open_store(root / "s.db") as store:
        rows = [
            (r.event.step, r.event.metrics)
            async for r in store.read_stream("run:p/r")
            if isinstance(r.event, StepLogged)
        ]
    assert rows == expected
