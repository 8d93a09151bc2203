"""``run.summary``, ``define_metric``, ``run.config`` and nested metric dicts (contract §4.1):
recorded as events, folded by the projections to what the script sees, kept across a
resume; through a real SQLite store."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import api
from api._cli import main as cli
from eventstore import (
    ConfigUpdated,
    InvalidArgument,
    MetricDefined,
    StepLogged,
    SummaryUpdated,
    open_store,
)
from projections import RunState, open_projector

STORE = Path("runlog") / "runlog.db"


async def folded(root: Path, run_id: str = "r") -> RunState:
    async with open_store(root / STORE) as store, open_projector(store) as projector:
        state = await projector.run("p", run_id)
        check = await projector.check()
    assert check.ok, check.differences
    assert state is not None
    return state


async def events_of(root: Path, kind: type[Any], run_id: str = "r") -> list[Any]:
    async with open_store(root / STORE) as store:
        return [
            r.event async for r in store.read_stream(f"run:p/{run_id}") if type(r.event) is kind
        ]


async def test_the_summary_is_the_last_logged_value_of_each_key(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"loss": 3.0, "acc": 0.1})
        await run.log({"loss": 2.0})
        assert dict(run.summary) == {"loss": 2.0, "acc": 0.1}
    assert (await folded(root)).summary == {"loss": 2.0, "acc": 0.1}


async def test_an_explicit_summary_value_overrides_until_the_key_is_logged_again(
    root: Path,
) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"loss": 3.0, "acc": 0.5})
        run.summary["loss"] = 0.25
        run.summary.update({"best_acc": 0.9, "epoch": 4})
        assert dict(run.summary) == {"loss": 0.25, "acc": 0.5, "best_acc": 0.9, "epoch": 4}
        await run.log({"acc": 0.6})
        await run.log({"loss": 1.5})
        client = dict(run.summary)
    assert client == {"loss": 1.5, "acc": 0.6, "best_acc": 0.9, "epoch": 4}
    assert (await folded(root)).summary == client
    updates = await events_of(root, SummaryUpdated)
    assert [u.values for u in updates] == [{"loss": 0.25}, {"best_acc": 0.9, "epoch": 4}]


async def test_deleting_a_summary_key_is_recorded_and_folded(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"loss": 3.0, "acc": 0.5})
        del run.summary["acc"]
        assert "acc" not in run.summary
    assert (await folded(root)).summary == {"loss": 3.0}


async def test_a_resumed_run_keeps_its_summary_and_its_explicit_best(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"loss": 3.0})
        run.summary["best_loss"] = 3.0
    async with api.init(project="p", id="r", resume="allow") as run:
        assert dict(run.summary) == {"loss": 3.0, "best_loss": 3.0}
        await run.log({"loss": 2.0})
        if run.summary["loss"] < run.summary["best_loss"]:
            run.summary["best_loss"] = run.summary["loss"]
        assert dict(run.summary) == {"loss": 2.0, "best_loss": 2.0}
    assert (await folded(root)).summary == {"loss": 2.0, "best_loss": 2.0}


async def test_define_metric_min_max_last_keep_aggregates_instead_of_the_last_value(
    root: Path,
) -> None:
    async with api.init(project="p", id="r") as run:
        run.define_metric("loss", summary="min")
        run.define_metric("acc", summary="max,last")
        for loss, acc in [(3.0, 0.2), (1.0, 0.7), (2.0, 0.5)]:
            await run.log({"loss": loss, "acc": acc, "lr": 0.1})
        client = dict(run.summary)
    assert client == {"loss.min": 1.0, "acc.max": 0.7, "acc.last": 0.5, "lr": 0.1}
    state = await folded(root)
    assert state.summary == client
    assert state.metrics["loss"]["ops"] == ["min"]


async def test_define_metric_with_a_glob_applies_to_every_matching_metric(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        run.define_metric("val/*", step_metric="epoch", summary="best", goal="maximize")
        await run.log({"val/acc": 0.5, "val/f1": 0.2, "epoch": 0})
        await run.log({"val/acc": 0.4, "val/f1": 0.3, "epoch": 1})
        client = dict(run.summary)
    assert client == {"val/acc.best": 0.5, "val/f1.best": 0.3, "epoch": 1}
    state = await folded(root)
    assert state.summary == client
    assert state.metrics["val/*"]["step_metric"] == "epoch"


async def test_metric_definitions_are_kept_across_a_resume(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        run.define_metric("loss", summary="min")
        await run.log({"loss": 1.0})
    async with api.init(project="p", id="r", resume="allow") as run:
        await run.log({"loss": 2.0})
        assert dict(run.summary) == {"loss.min": 1.0}
    assert (await folded(root)).summary == {"loss.min": 1.0}


async def test_define_metric_refuses_an_unknown_aggregate(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        with pytest.raises(InvalidArgument, match="summary='median'"):
            run.define_metric("loss", summary="median")
    assert await events_of(root, MetricDefined) == []


async def test_a_nested_metric_dict_is_stored_under_group_dot_key(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"train": {"loss": 1.0, "top": {"k1": 0.5}}, "lr": 0.1})
        assert run.summary["train"] == {"loss": 1.0, "top": {"k1": 0.5}}
        assert run.summary["train.loss"] == 1.0
    (row,) = await events_of(root, StepLogged)
    assert row.metrics == {"train.loss": 1.0, "train.top.k1": 0.5, "lr": 0.1}
    assert (await folded(root)).summary == row.metrics
    async with open_store(root / STORE) as store, open_projector(store) as projector:
        (point,) = await projector.history("p", "r", keys=["train.loss"])
    assert point.metrics == {"train.loss": 1.0}


async def test_a_nested_metric_with_a_non_string_key_is_refused(root: Path) -> None:
    async with api.init(project="p", id="r") as run:
        with pytest.raises(InvalidArgument, match="metric names are strings"):
            await run.log({"train": {1: 0.5}})


def test_runlog_show_lists_the_summary_with_nested_keys_flattened(root: Path) -> None:
    from api import sync

    with sync.init(project="p", id="r") as run:
        run.log({"train": {"loss": 0.5}})
        run.summary["best"] = 0.25
    shown = CliRunner().invoke(cli, ["show", "p/r", "--store", str(root / STORE), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["state"]["summary"] == {"train.loss": 0.5, "best": 0.25}


async def test_config_reads_as_attributes_and_items(root: Path) -> None:
    async with api.init(project="p", id="r", config={"lr": 0.1, "model": {"depth": 3}}) as run:
        assert run.config.lr == 0.1
        assert run.config["model"] == {"depth": 3}
        with pytest.raises(AttributeError, match="no key 'batch'"):
            _ = run.config.batch


async def test_config_updates_are_recorded_and_folded(root: Path) -> None:
    async with api.init(project="p", id="r", config={"lr": 0.1}) as run:
        run.config.update({"batch": 32})
        run.config.epochs = 4
        run.config["lr"] = 0.1  # the same value: nothing to record
    assert [e.values for e in await events_of(root, ConfigUpdated)] == [
        {"batch": 32},
        {"epochs": 4},
    ]
    assert (await folded(root)).config == {"lr": 0.1, "batch": 32, "epochs": 4}


async def test_changing_a_config_value_needs_allow_val_change(root: Path) -> None:
    async with api.init(project="p", id="r", config={"lr": 0.1}) as run:
        with pytest.raises(api.ConfigChangeError, match="allow_val_change=True"):
            run.config.update({"lr": 0.2})
        with pytest.raises(api.ConfigChangeError):
            run.config.lr = 0.2
        assert run.config.lr == 0.1
        run.config.update({"lr": 0.2}, allow_val_change=True)
        assert run.config.lr == 0.2
    assert (await folded(root)).config == {"lr": 0.2}


async def test_a_resume_replaces_top_level_config_keys_and_keeps_the_others(root: Path) -> None:
    async with api.init(project="p", id="r", config={"lr": 0.1, "opt": {"b1": 0.9}}) as run:
        run.config.update({"batch": 32})
    async with api.init(project="p", id="r", resume="allow", config={"opt": {"b2": 0.99}}) as run:
        assert dict(run.config) == {"lr": 0.1, "opt": {"b2": 0.99}, "batch": 32}
        with pytest.raises(api.ConfigChangeError):
            run.config.batch = 64  # the rule holds for keys the run already had
    assert (await folded(root)).config == {"lr": 0.1, "opt": {"b2": 0.99}, "batch": 32}


async def test_config_keys_cannot_be_removed(root: Path) -> None:
    async with api.init(project="p", id="r", config={"lr": 0.1}) as run:
        with pytest.raises(InvalidArgument, match="cannot be removed"):
            del run.config["lr"]
        with pytest.raises(InvalidArgument, match="cannot be removed"):
            run.config.pop("lr")


async def test_sweep_parameters_are_locked_against_the_scripts_own_updates(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep_id = await api.create_sweep(
        {"method": "grid", "parameters": {"lr": {"values": [0.5]}}}, project="p"
    )
    params = root / "params.json"
    params.write_text(json.dumps({"lr": 0.5}))
    monkeypatch.setenv("RUNLOG_SWEEP_ID", sweep_id)
    monkeypatch.setenv("RUNLOG_SWEEP_PARAM_PATH", str(params))
    async with api.init(project="p", id="r", config={"lr": 0.01}) as run:
        assert run.config.lr == 0.5
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.config.update({"lr": 0.01, "batch": 8}, allow_val_change=True)
        assert "locked by the sweep" in str(caught[0].message)
        assert dict(run.config) == {"lr": 0.5, "batch": 8}


async def test_summary_config_and_metric_definitions_leave_a_pending_step_open(
    root: Path,
) -> None:
    async with api.init(project="p", id="r") as run:
        await run.log({"loss": 1.0}, step=3)
        run.summary["best"] = 1.0
        run.config.update({"epochs": 5})
        run.define_metric("val", summary="max")
        await run.log({"val": 0.5}, step=3)  # still step 3: merged, not dropped
        assert run.dropped_steps == 0
    (row,) = await events_of(root, StepLogged)
    assert (row.step, row.metrics) == (3, {"loss": 1.0, "val": 0.5})
    assert (await folded(root)).summary == {"loss": 1.0, "best": 1.0, "val.max": 0.5}
