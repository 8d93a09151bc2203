"""The integrations' shared preemption, without a framework: the grace period."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import RunStatus

from ._harness import SIGTERM, Child, exit_codes, history, state

pytestmark = pytest.mark.slow


def test_a_signal_with_no_step_boundary_in_the_grace_period_ends_the_run_preempted(
    tmp_path: Path,
) -> None:
    child = Child("_stuck.py", [str(tmp_path / "s.db"), "r1"], tmp_path)
    child.wait_for("ready")
    child.signal(SIGTERM)
    assert child.finish(timeout=60) == 128 + SIGTERM
    assert state(tmp_path / "s.db", "r1").status == RunStatus.PREEMPTED
    assert exit_codes(tmp_path / "s.db", "r1") == [128 + SIGTERM]
    assert history(tmp_path / "s.db", "r1") == {0: {"loss": 1.0}}  # written on the way out
