"""The Python snippets of W&B's resume and preemption pages run on runlog with only the
import replaced (``from api import sync as wandb``), each in a real process, and do
what their page says (``data/wandb_seed_snippets.md``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import open_store
from projections import RunState, RunStatus, open_projector

pytestmark = pytest.mark.slow

SNIPPETS_FILE = Path(__file__).parent / "data" / "wandb_seed_snippets.md"
BLOCKS = re.findall(r"```python\n(.*?)```", SNIPPETS_FILE.read_text(), re.S)
FRAMEWORKS = ("keras", "torch", "lightning", "transformers", "tensorflow")
PLAIN = [b for b in BLOCKS if not any(re.search(rf"\b{f}\b", b) for f in FRAMEWORKS)]
PRELUDE = "import json\nimport os\nimport sys\nfrom api import sync as wandb\n"


def as_runlog(snippet: str) -> str:
    """The snippet with W&B's import replaced, behind the import if it has none."""
    replaced = snippet.replace("import wandb\n", "from api import sync as wandb\n")
    return PRELUDE + replaced


def run_script(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
    )


def facts(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)  # type: ignore[no-any-return]


async def state_of(cwd: Path, project: str, run_id: str) -> RunState:
    async with (
        open_store(cwd / "runlog" / "runlog.db") as store,
        open_projector(store) as projector,
    ):
        state = await projector.run(project, run_id)
    assert state is not None
    return state


REPORT = "print(json.dumps({'id': run.id, 'resumed': run.resumed, 'step': run.step}))\n"


def test_the_seed_pages_have_four_plain_snippets_and_one_framework_snippet() -> None:
    assert len(PLAIN) == 4
    assert len(BLOCKS) - len(PLAIN) == 1


def test_resume_true_continues_a_failed_run_from_the_same_directory(tmp_path: Path) -> None:
    snippet = PLAIN[0]
    assert "resume=True" in snippet
    script = as_runlog(snippet) + REPORT + "for _ in range(3):\n    wandb.log({'loss': 1.0})\n"
    first = run_script(script + "sys.exit(1)\n", tmp_path)
    assert first.returncode == 1, first.stderr
    second = run_script(script, tmp_path)
    assert second.returncode == 0, second.stderr
    assert facts(first)["resumed"] is False
    assert facts(second) == {"id": facts(first)["id"], "resumed": True, "step": 3}


async def test_resume_must_fails_for_a_missing_run_and_resumes_an_existing_one(
    tmp_path: Path,
) -> None:
    snippet = PLAIN[1]
    assert 'resume="must"' in snippet
    missing = run_script(as_runlog(snippet), tmp_path)
    assert missing.returncode == 1
    assert "RunNotFound" in missing.stderr
    assert "<run ID>" in missing.stderr
    create = 'wandb.init(project="<project>", id="<run ID>")\nwandb.log({"loss": 1.0})\n'
    created = run_script(PRELUDE + create, tmp_path)
    assert created.returncode == 0, created.stderr
    resumed = run_script(as_runlog(snippet) + REPORT, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert facts(resumed) == {"id": "<run ID>", "resumed": True, "step": 1}
    assert (await state_of(tmp_path, "<project>", "<run ID>")).resumes == 1


async def test_a_stored_generated_id_names_the_run_and_the_second_init_returns_it(
    tmp_path: Path,
) -> None:
    snippet = PLAIN[2]
    assert "wandb.util.generate_id()" in snippet
    report = "print(json.dumps({'id': id, 'run': wandb.run.id}))\n"
    done = run_script(as_runlog(snippet) + report, tmp_path)
    assert done.returncode == 0, done.stderr
    ran = facts(done)
    assert re.fullmatch(r"[a-z0-9]{8}", str(ran["id"]))
    assert ran["run"] == ran["id"]  # init() while a run is active returns it, as in W&B
    assert "returns that run" in done.stderr
    state = await state_of(tmp_path, "uncategorized", str(ran["id"]))
    assert (state.status, state.resumes) == (RunStatus.FINISHED, 0)


@pytest.mark.parametrize(
    ("ending", "code", "status"),
    [
        ("raise RuntimeError('preempted')\n", 1, RunStatus.PREEMPTED),
        ("sys.exit(143)\n", 143, RunStatus.PREEMPTED),
        ("", 0, RunStatus.FINISHED),
    ],
)
async def test_mark_preempting_then_the_exit_code_decides_preempted_or_finished(
    tmp_path: Path, ending: str, code: int, status: RunStatus
) -> None:
    snippet = PLAIN[3]
    assert snippet.strip() == "wandb.mark_preempting()"
    start = 'run = wandb.init(project="p", id="r1")\nwandb.log({"loss": 1.0})\n'
    done = run_script(PRELUDE + start + snippet + ending, tmp_path)
    assert done.returncode == code, done.stderr
    state = await state_of(tmp_path, "p", "r1")
    assert (state.status, state.exit_code) == (status, code)
