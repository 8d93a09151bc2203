"""A real ``runlog serve`` process for the server tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(
    store: Path | str, *args: str, token: str | None = TOKEN, log: Path | None = None
) -> Iterator[str]:
    """Start ``runlog serve`` on a free port; yield its base URL; stop it with SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "WANDB_"))}
    if token is not None:
        env["RUNLOG_SERVER_TOKEN"] = token
    log_path = log or Path(str(store) + f".{port}.log")
    output = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--store", str(store), "--port", str(port), *args],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"runlog serve exited with {process.returncode}")
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("runlog serve did not come up within 30 s")
            time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        output.close()
    # uvicorn re-raises the signal it stopped on once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM), process.returncode
    logged = log_path.read_bytes()
    assert b"Application shutdown complete" in logged
    assert TOKEN.encode() not in logged  # the token is never logged
