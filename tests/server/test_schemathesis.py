"""``schemathesis run`` against ``/openapi.json`` of a real server: no request gets a 5xx.

Every operation is fuzzed from its OpenAPI description (coverage, fuzzing and stateful
phases, a bounded number of examples and a fixed seed, to keep the suite fast and
repeatable), with the token, so the write endpoints are reached too; msgpack bodies are
sent encoded (``_schemathesis_hooks``). The event stream is left out: it never ends by
design (``test_events.py`` covers it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from ._server import TOKEN, running_server
from .conftest import _populate

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parent.parent.parent


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    path = tmp_path / "runlog.db"
    anyio.run(_populate, path)
    with running_server(path) as url:
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.server._schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
        }
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{url}/openapi.json",
                "--checks", "not_a_server_error",
                "--max-examples", "30",
                "--seed", "1",
                "--exclude-path", "/api/events",
                "--header", f"Authorization: Bearer {TOKEN}",
                "--request-timeout", "20",
                "--no-color",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
    assert "Tested: 34" in done.stdout  # every operation but the event stream
