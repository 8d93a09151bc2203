"""The Keras 3 callback against real Keras (torch backend, CPU) in child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import RunStatus

from ._harness import (
    SIGKILL,
    SIGTERM,
    assert_same_history,
    exit_codes,
    history,
    killed_and_restarted,
    run_ids,
    run_to_end,
    saves,
    state,
)
from ._harness import require as _require

pytestmark = pytest.mark.slow
SCRIPT = "_keras_trainer.py"
EPOCHS = "12"  # 16 batches each: 192 steps


@pytest.fixture(autouse=True)
def require() -> None:
    _require("keras", "torch")


@pytest.fixture(scope="module")
def reference(reference_store: Path) -> dict[int, dict[str, float]]:
    return history(reference_store, "ref")


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require("keras", "torch")
    workdir = tmp_path_factory.mktemp("keras-reference")
    run_to_end(SCRIPT, [str(workdir / "s.db"), "ref", EPOCHS], workdir)
    return workdir / "s.db"


def test_an_uninterrupted_fit_logs_every_epoch_and_saves_the_best_model(
    reference: dict[int, dict[str, float]], reference_store: Path
) -> None:
    assert sorted(reference) == list(range(int(EPOCHS)))
    assert {"loss", "mae"} <= set(reference[0])
    finished = state(reference_store, "ref")
    assert finished.status == RunStatus.FINISHED
    assert {"model-best.h5", "model-latest.keras", "runlog-keras-state.json"} <= set(finished.files)
    assert finished.config["epochs"] == int(EPOCHS)
    assert finished.config["optimizer"] == "Adam"


def test_sigterm_mid_epoch_ends_preempted_and_the_restart_matches_the_reference(
    reference: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    code = killed_and_restarted(SCRIPT, [str(store), "r1", EPOCHS], tmp_path, "batch 5 7", SIGTERM)
    assert code == 128 + SIGTERM
    assert exit_codes(store, "r1") == [128 + SIGTERM, 0]
    assert state(store, "r1").incarnation == 2
    assert_same_history(history(store, "r1"), reference)


def test_sigkill_mid_epoch_and_restart_matches_the_reference(
    reference: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    code = killed_and_restarted(SCRIPT, [str(store), "r1", EPOCHS], tmp_path, "batch 6 3", SIGKILL)
    assert code == -SIGKILL
    assert exit_codes(store, "r1") == [0]
    assert_same_history(history(store, "r1"), reference)


def test_a_requeued_run_resumes_from_the_wandb_environment_alone(
    reference: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    env = {"WANDB_RUN_ID": "sweep-run", "WANDB_RESUME": "allow"}
    code = killed_and_restarted(
        SCRIPT, [str(store), "-", EPOCHS], tmp_path, "batch 4 2", SIGTERM, env
    )
    assert code == 128 + SIGTERM
    assert exit_codes(store, "sweep-run") == [128 + SIGTERM, 0]
    assert_same_history(history(store, "sweep-run"), reference)


def test_the_best_value_survives_a_resume(tmp_path: Path) -> None:
    # In a child process: importing api.keras here would add it to the api package.
    run_to_end("_keras_best.py", [str(tmp_path / "s.db")], tmp_path)
    assert saves(tmp_path / "s.db", "r1", "model-best.h5") == 2


def test_the_seed_pages_example_resumes_at_the_next_epoch_with_its_best_model(
    tmp_path: Path,
) -> None:
    code = killed_and_restarted("_keras_seed.py", ["6"], tmp_path, "epoch 1", SIGTERM)
    assert code == 128 + SIGTERM
    store = tmp_path / "runlog" / "runlog.db"
    [run_id] = run_ids(store)  # resume=True continued the preempted run
    assert sorted(history(store, run_id, project="preemptable")) == list(range(6))
    assert exit_codes(store, run_id, project="preemptable") == [128 + SIGTERM, 0]
    assert saves(store, run_id, "model-best.h5", project="preemptable") >= 1
