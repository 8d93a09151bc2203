"""The README is a contract: its examples run as written and CI runs its test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def test_the_readme_opens_with_the_two_commands() -> None:
    main_job, tests = (block.strip() for block in SHELL_BLOCKS[:2])
    assert main_job.endswith("runlog demo")
    assert tests.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_exactly() -> None:
    tests_command = SHELL_BLOCKS[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests_command in ci_lines
    assert SHELL_BLOCKS[0].strip() in ci_lines


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"example-{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_readme_example_runs_as_written(code: str, tmp_path: Path) -> None:
    skip_without_its_framework(code)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


FRAMEWORKS = {
    "api.keras": ("keras", "torch"),
    "api.lightning": ("lightning", "torch"),
    "api.huggingface": ("transformers", "accelerate", "torch"),
}


def skip_without_its_framework(code: str) -> None:
    """A framework integration's example needs its framework (see tests/frameworks)."""
    from .frameworks._harness import require

    for module, needs in FRAMEWORKS.items():
        if f"from {module} import" in code or f"import {module}" in code:
            require(*needs)


def test_the_demo_tells_the_preemption_story(tmp_path: Path) -> None:
    runlog = Path(sys.executable).with_name("runlog")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    done = subprocess.run(
        [str(runlog), "demo", "--script", str(ROOT / "examples" / "train.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "exited with 143" in out
    # SIGTERM after step 80: the run leaves at its next step boundary (81, or later if
    # the signal took longer to arrive), and resumes right after it.
    preempted_at = int(re.search(r"the log says: preempted, last step (\d+)", out)[1])  # type: ignore[index]
    assert preempted_at >= 81
    assert f"at step {preempted_at + 1}" in out
    assert f"RunInitialized  incarnation 2, resumed=True, starting_step={preempted_at + 1}" in out
    assert "state folded from the log: finished, incarnation 2, 1 resume, last step 199" in out
    assert "read model equals a replay from position 0: True" in out
    assert "the signal reached the run, which marked itself preempting and exited 143" in out
    sweep_lines = out.split("5. agent B starts")[1].splitlines()
    assert sweep_lines[1].strip().startswith("resumed run")  # the queue before the search
    assert re.search(r"at step (4[1-9]|[5-9]\d)\b", sweep_lines[1])  # after its step 40
    assert "FINISHED (exhausted), runs {'finished': 3}" in out
    assert "claimed from the queue by" in out
    assert "read models equal the replay: ok" in out
    assert (tmp_path / "runlog" / "runlog.db").exists()
    assert not list(tmp_path.glob("runlog-checkpoint-*")), "the demo left checkpoints behind"
    # The closing hint names a runlog the user can type: here, not on PATH, its path.
    [hint] = [line for line in out.splitlines() if line.rstrip().endswith("tell the rest")]
    show = hint.split(",")[0].split()
    assert show[0] == str(runlog)
    shown = subprocess.run(show, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr


def test_the_demo_refuses_a_foreign_file_with_one_line(tmp_path: Path) -> None:
    runlog = Path(sys.executable).with_name("runlog")
    (tmp_path / "notes.txt").write_text("not a database\n" * 10)
    done = subprocess.run(
        [str(runlog), "demo", "--store", "notes.txt"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 4  # the store cannot be used
    assert done.stderr.startswith("runlog: ")
    assert "not a runlog database" in done.stderr
    assert "Traceback" not in done.stderr


AUDIT_MARK = "# audit: the commands below run as written after the example above"


def test_the_audit_commands_run_as_written_after_their_example(tmp_path: Path) -> None:
    [script] = [block for block in SHELL_BLOCKS if block.startswith(AUDIT_MARK)]
    example = README[: README.index(AUDIT_MARK)]
    setup = re.findall(r"```python\n(.*?)```", example, re.S)[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    made = subprocess.run(
        [sys.executable, "-c", setup], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert made.returncode == 0, made.stderr
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mnist/r1" in done.stdout
    assert "StepLogged x5 (steps 0..4)" in done.stdout
    assert done.stdout.count("\nok\n") == 2  # both verifies
    assert "already present" in done.stdout
    assert (tmp_path / "copy.db").exists()
