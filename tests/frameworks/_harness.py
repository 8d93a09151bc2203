"""Running a framework training script as a child process, killing it, reading its run.

Framework tests skip when the framework is not installed, saying so; under
``RUNLOG_REQUIRE_FRAMEWORKS=1`` (set by ``.ci/run``) a missing framework fails instead,
so CI can never pass by skipping them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventstore import FileSaved, RunExited, RunInitialized, StepLogged, open_store
from projections import RunState, open_projector

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def require(*modules: str) -> None:
    """Skip (or, under RUNLOG_REQUIRE_FRAMEWORKS=1, fail) unless ``modules`` import."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = (
        f"{', '.join(missing)} not installed: pip install torch==2.13.0, then "
        "'.[keras,lightning,transformers]', to run the framework tests"
    )
    if os.environ.get("RUNLOG_REQUIRE_FRAMEWORKS") == "1":
        pytest.fail(message + " (RUNLOG_REQUIRE_FRAMEWORKS=1 makes this a failure)")
    pytest.skip(message)


def child_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["KERAS_BACKEND"] = "torch"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HF_HUB_OFFLINE"] = "1"
    # One thread: the machine is shared, and float sums keep one order.
    env["OMP_NUM_THREADS"] = "1"
    env["HOME"] = str(workdir)  # frameworks' caches stay in the test's directory
    return env


class Child:
    """A training script in its own process, read line by line."""

    def __init__(
        self, script: str, args: list[str], workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self._stderr = workdir / f"stderr-{len(list(workdir.glob('stderr-*')))}.txt"
        with self._stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / script), *args],
                cwd=workdir,
                env={**child_env(workdir), **(env or {})},
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def wait_for(self, words: str) -> None:
        """Read stdout until a line equal to ``words`` (the child must print it)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == words:
                return
        self.finish()
        raise AssertionError(f"the child ended before printing {words!r}:\n{self.stderr()}")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = 240) -> int:
        """Wait for the exit, draining stdout; return the exit code."""
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass
        self.process.stdout.close()
        return self.process.wait(timeout=timeout)

    def stderr(self) -> str:
        return self._stderr.read_text()


def run_to_end(
    script: str, args: list[str], workdir: Path, env: dict[str, str] | None = None
) -> None:
    """Run the script to its end; it must exit 0."""
    child = Child(script, args, workdir, env)
    code = child.finish()
    assert code == 0, child.stderr()


def killed_and_restarted(
    script: str,
    args: list[str],
    workdir: Path,
    at: str,
    signum: int,
    env: dict[str, str] | None = None,
) -> int:
    """Start the script, send ``signum`` once it printed ``at``, then run it again to its
    end; return the first process's exit code."""
    child = Child(script, args, workdir, env)
    child.wait_for(at)
    child.signal(signum)
    code = child.finish()
    run_to_end(script, args, workdir, env)
    return code


async def _history(
    store: Path, run_id: str, project: str = "p"
) -> tuple[dict[int, dict[str, Any]], list[int]]:
    rows: dict[int, dict[str, Any]] = {}
    exits: list[int] = []
    async with open_store(store) as opened:
        async for record in opened.read_stream(f"run:{project}/{run_id}"):
            event = record.event
            if isinstance(event, StepLogged):
                assert event.step not in rows, f"step {event.step} was logged twice"
                rows[event.step] = dict(event.metrics)
            elif isinstance(event, RunExited):
                exits.append(event.exit_code)
    return rows, exits


def history(store: Path, run_id: str, project: str = "p") -> dict[int, dict[str, Any]]:
    """Every logged step's values (a step logged twice fails the test)."""
    return asyncio.run(_history(store, run_id, project))[0]


def exit_codes(store: Path, run_id: str, project: str = "p") -> list[int]:
    """The exit codes the run's incarnations recorded, in order."""
    return asyncio.run(_history(store, run_id, project))[1]


async def _saves(store: Path, run_id: str, name: str, project: str) -> int:
    async with open_store(store) as opened:
        return len(
            [
                r
                async for r in opened.read_stream(f"run:{project}/{run_id}")
                if isinstance(r.event, FileSaved) and r.event.name == name
            ]
        )


def saves(store: Path, run_id: str, name: str, project: str = "p") -> int:
    """How many times the run saved a file called ``name``."""
    return asyncio.run(_saves(store, run_id, name, project))


async def _run_ids(store: Path) -> set[str]:
    async with open_store(store) as opened:
        return {
            r.event.run_id async for r in opened.read_all() if isinstance(r.event, RunInitialized)
        }


def run_ids(store: Path) -> set[str]:
    """The ids of the runs the store holds."""
    return asyncio.run(_run_ids(store))


async def _state(store: Path, run_id: str) -> RunState:
    async with open_store(store) as opened, open_projector(opened) as projector:
        state = await projector.run("p", run_id)
    assert state is not None
    return state


def state(store: Path, run_id: str) -> RunState:
    """The run's state folded from the log."""
    return asyncio.run(_state(store, run_id))


def assert_same_history(got: dict[int, dict[str, Any]], want: dict[int, dict[str, Any]]) -> None:
    """Step for step, key for key, value for value."""
    assert sorted(got) == sorted(want)
    for step in sorted(want):
        assert got[step] == want[step], f"step {step}: {got[step]} != {want[step]}"


SIGTERM, SIGKILL = signal.SIGTERM, signal.SIGKILL
