"""W&B's module-level API on the blocking facade (``from api import sync as wandb``):
init's W&B keywords, the current run, and the functions that act on it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import api
from api import sync as wandb
from api._wandb import _state
from eventstore import InvalidArgument, StepLogged, open_store
from projections import open_projector

# Every parameter of wandb.init (SDK 0.2x), with a value a script would pass.
WANDB_INIT_KEYWORDS = {
    "entity": "team",
    "project": "p",
    "dir": None,
    "id": "r",
    "name": "first",
    "notes": "n",
    "tags": ("a", "b"),
    "config": {"lr": 0.1},
    "config_exclude_keys": None,
    "config_include_keys": None,
    "allow_val_change": False,
    "group": "g",
    "job_type": "train",
    "mode": "offline",
    "force": False,
    "anonymous": "never",
    "reinit": None,
    "resume": None,
    "resume_from": None,
    "fork_from": None,
    "save_code": False,
    "tensorboard": False,
    "sync_tensorboard": False,
    "monitor_gym": False,
    "settings": None,
    "magic": False,
}


@pytest.fixture(autouse=True)
def no_current_run(root: Path) -> Iterator[None]:
    """Each test starts and ends without a current module-level run."""
    yield
    if _state.run is not None and not _state.run.finished:
        wandb.finish()
    _state.run = None


async def steps(root: Path, run_id: str, project: str = "p") -> list[dict[str, object]]:
    async with open_store(root / "runlog" / "runlog.db") as store:
        return [
            r.event.metrics
            async for r in store.read_stream(f"run:{project}/{run_id}")
            if isinstance(r.event, StepLogged)
        ]


async def test_init_returns_the_run_and_makes_it_the_current_one(root: Path) -> None:
    run = wandb.init(project="p", id="r")
    assert wandb.run is run
    wandb.log({"loss": 1.0})
    wandb.log({"loss": 0.5})
    wandb.finish()
    assert wandb.run is None
    assert run.finished
    assert await steps(root, "r") == [{"loss": 1.0}, {"loss": 0.5}]


async def test_every_wandb_init_keyword_is_accepted(root: Path) -> None:
    run = wandb.init(**WANDB_INIT_KEYWORDS)  # nothing unhonoured is switched on: no warning
    assert (run.id, run.project, run.name, run.entity) == ("r", "p", "first", "team")
    assert dict(run.config) == {"lr": 0.1}
    wandb.finish()
    async with (
        open_store(root / "runlog" / "runlog.db") as store,
        open_projector(store) as projector,
    ):
        state = await projector.run("p", "r")
    assert state is not None
    assert (state.tags, state.group, state.job_type, state.notes) == (["a", "b"], "g", "train", "n")


@pytest.mark.parametrize(
    ("keyword", "value", "says"),
    [
        ("save_code", True, "does not snapshot source code"),
        ("sync_tensorboard", True, "TensorBoard"),
        ("monitor_gym", True, "gym"),
        ("magic", True, "does not patch frameworks"),
        ("anonymous", "allow", "no accounts"),
        ("mode", "online", "no cloud service"),
        ("mode", "shared", "one writer per run"),
    ],
)
def test_a_keyword_runlog_cannot_honour_is_accepted_with_a_warning_saying_so(
    root: Path, keyword: str, value: object, says: str
) -> None:
    with pytest.warns(api.IgnoredArgumentWarning, match=says):
        run = wandb.init(project="p", id="r", **{keyword: value})
    assert not run.finished


def test_an_unknown_mode_is_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="mode='cloudy'"):
        wandb.init(project="p", mode="cloudy")


def test_mode_disabled_writes_nothing_to_the_store(root: Path) -> None:
    wandb.init(project="p", id="r", mode="disabled")
    wandb.log({"loss": 1.0})
    wandb.finish()
    assert not (root / "runlog" / "runlog.db").exists()


def test_a_second_init_returns_the_active_run_by_default(root: Path) -> None:
    first = wandb.init(project="p", id="r1")
    with pytest.warns(api.IgnoredArgumentWarning, match="returns that run"):
        again = wandb.init(project="p", id="r2")
    assert again is first


def test_reinit_finish_previous_finishes_the_active_run_first(root: Path) -> None:
    first = wandb.init(project="p", id="r1")
    second = wandb.init(project="p", id="r2", reinit="finish_previous")
    assert first.finished
    assert wandb.run is second


def test_finishing_the_run_object_clears_the_current_run(root: Path) -> None:
    with wandb.init(project="p", id="r") as run:
        assert wandb.run is run
    assert wandb.run is None
    with pytest.raises(api.NoRunError):
        wandb.mark_preempting()


def test_reinit_create_new_keeps_the_current_run(root: Path) -> None:
    first = wandb.init(project="p", id="r1")
    second = wandb.init(project="p", id="r2", reinit="create_new")
    assert wandb.run is first
    assert not second.finished
    second.finish()


def test_module_functions_without_a_run_say_to_call_init(root: Path) -> None:
    with pytest.raises(api.NoRunError, match="init"):
        wandb.log({"loss": 1.0})
    with pytest.raises(api.NoRunError, match="init"):
        _ = wandb.config.lr
    with pytest.raises(api.NoRunError, match="init"):
        wandb.summary["best"] = 1.0


async def test_module_config_and_summary_act_on_the_current_run(root: Path) -> None:
    run = wandb.init(project="p", id="r", config={"lr": 0.1}, allow_val_change=True)
    wandb.config.update({"lr": 0.2})  # allowed by init(allow_val_change=True)
    wandb.config.batch = 16
    assert (wandb.config.lr, wandb.config["batch"]) == (0.2, 16)
    wandb.define_metric("loss", summary="min")
    wandb.log({"loss": 2.0})
    wandb.log({"loss": 1.0})
    wandb.log({"loss": 3.0})
    wandb.summary["note"] = "ok"
    assert dict(wandb.summary) == {"loss.min": 1.0, "note": "ok"}
    assert dict(run.config) == {"lr": 0.2, "batch": 16}


def test_config_from_a_yaml_file_with_include_and_exclude_keys(root: Path) -> None:
    (root / "config-defaults.yaml").write_text(
        "lr:\n  desc: learning rate\n  value: 0.1\nbatch:\n  value: 32\nseed: 7\n"
    )
    run = wandb.init(
        project="p", id="r", config="config-defaults.yaml", config_exclude_keys=["seed"]
    )
    assert dict(run.config) == {"lr": 0.1, "batch": 32}
    wandb.finish()
    run = wandb.init(
        project="p", id="r2", config={"lr": 0.1, "seed": 7}, config_include_keys=["seed"]
    )
    assert dict(run.config) == {"seed": 7}


def test_wandb_settings_map_to_init_arguments_and_unknown_ones_warn(root: Path) -> None:
    settings = wandb.Settings(run_id="from-settings", project="p", start_method="thread")
    with pytest.warns(api.IgnoredArgumentWarning, match="start_method"):
        run = wandb.init(settings=settings)
    assert (run.id, run.project) == ("from-settings", "p")


def test_save_a_glob_then_restore_gives_the_local_path_as_name(root: Path) -> None:
    wandb.init(project="p", id="r")
    (root / "ckpt").mkdir()
    (root / "ckpt" / "model-best.h5").write_bytes(b"weights")
    (root / "ckpt" / "opt.bin").write_bytes(b"state")
    assert wandb.save("ckpt/*", base_path="ckpt") == ["model-best.h5", "opt.bin"]
    wandb.finish()
    wandb.init(project="p", id="r", resume="must")
    restored = wandb.restore("model-best.h5", root=root / "out")
    assert restored.name == str(root / "out" / "model-best.h5")
    assert Path(restored.name).read_bytes() == b"weights"


def test_util_generate_id_is_eight_characters_of_a_to_z_and_digits() -> None:
    assert re.fullmatch(r"[a-z0-9]{8}", wandb.util.generate_id())


def test_sweep_and_agent_run_the_function_count_times(root: Path) -> None:
    sweep_id = wandb.sweep(
        {"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}}}, project="p"
    )
    seen: list[float] = []

    def train() -> None:
        wandb.init()
        seen.append(wandb.config.lr)
        wandb.log({"loss": wandb.config.lr})

    assert wandb.agent(sweep_id, function=train, count=2) == 2
    assert seen == [0.1, 0.01]
    assert wandb.run is None  # the agent finishes each run, as W&B's does


def test_run_name_and_dir_as_scripts_use_them(root: Path) -> None:
    run = wandb.init(project="p", id="r")
    assert (run.name, run.dir) == ("r", str(root))
    run.name = "renamed"
    assert wandb.run.name == "renamed"
