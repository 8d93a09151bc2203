"""The Lightning logger against real PyTorch Lightning (CPU) in child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import RunStatus

from ._harness import (
    SIGKILL,
    SIGTERM,
    Child,
    assert_same_history,
    exit_codes,
    history,
    run_to_end,
    saves,
    state,
)
from ._harness import require as _require

pytestmark = pytest.mark.slow
SCRIPT = "_lightning_trainer.py"
STEPS = "200"  # 32 batches an epoch: the kills land inside an epoch


@pytest.fixture(autouse=True)
def require() -> None:
    _require("lightning", "torch")


@pytest.fixture(scope="module")
def reference(reference_store: Path) -> dict[int, dict[str, float]]:
    return history(reference_store, "ref")


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require("lightning", "torch")
    workdir = tmp_path_factory.mktemp("lightning-reference")
    run_to_end(SCRIPT, [str(workdir / "s.db"), "ref", STEPS], workdir)
    return workdir / "s.db"


def test_an_uninterrupted_fit_logs_every_global_step_with_the_hyperparameters(
    reference: dict[int, dict[str, float]], reference_store: Path
) -> None:
    assert sorted(reference) == list(range(int(STEPS)))
    assert {"loss", "weight", "epoch"} <= set(reference[0])
    finished = state(reference_store, "ref")
    assert finished.status == RunStatus.FINISHED
    assert finished.config == {"lr": 0.01, "hidden": 16}
    assert {"last.ckpt", "best.ckpt"} <= set(finished.files)


def test_sigterm_checkpoints_at_the_step_boundary_and_the_restart_matches_the_reference(
    reference: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    args = [str(store), "r1", STEPS]
    child = Child(SCRIPT, args, tmp_path)
    child.wait_for("step 107")  # 27 steps after the last periodic checkpoint (80)
    child.signal(SIGTERM)
    assert child.finish() == 128 + SIGTERM
    preempted = state(store, "r1")
    assert preempted.status == RunStatus.PREEMPTED
    assert max(history(store, "r1")) >= 107
    # the periodic checkpoints of steps 40 and 80, then the one written after the signal
    assert saves(store, "r1", "last.ckpt") == 3
    run_to_end(SCRIPT, args, tmp_path)
    assert exit_codes(store, "r1") == [128 + SIGTERM, 0]
    assert_same_history(history(store, "r1"), reference)


def test_sigkill_and_restart_from_the_last_saved_checkpoint_matches_the_reference(
    reference: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    args = [str(store), "r1", STEPS]
    child = Child(SCRIPT, args, tmp_path)
    child.wait_for("step 133")
    child.signal(SIGKILL)
    assert child.finish() == -SIGKILL
    run_to_end(SCRIPT, args, tmp_path)
    assert exit_codes(store, "r1") == [0]
    assert_same_history(history(store, "r1"), reference)
