"""``runlog serve`` apps over real SQLite files, for the conformance suite's HTTP backend.

Each target is a server of its own (uvicorn in a thread, over a SQLite file in the
test's directory), so the HTTP store is held to the same specification as the stores
it fronts. The servers a test starts are stopped when it ends (``stop_servers``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import uvicorn

from api._server import create_app

__all__ = ["TOKEN", "served_sqlite", "stop_servers"]

TOKEN = "conformance-token-0123456789"
_servers: list[tuple[uvicorn.Server, threading.Thread]] = []
_token_before: list[str | None] = []  # RUNLOG_TOKEN before the first server, to restore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def served_sqlite(tmp: Path) -> str:
    """The URL of a new server over ``tmp/served.db``; clients send ``TOKEN``."""
    # Every client, in this process or a child, writes with the server's token.
    if not _token_before:
        _token_before.append(os.environ.get("RUNLOG_TOKEN"))
    os.environ["RUNLOG_TOKEN"] = TOKEN
    port = _free_port()
    app = create_app(str(tmp / "served.db"), token=TOKEN, reap_interval=None)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"runlog-serve-{port}", daemon=True)
    thread.start()
    _servers.append((server, thread))
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server on port {port} did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}"


def stop_servers() -> None:
    """Stop every server started so far, wait for each to finish, restore RUNLOG_TOKEN."""
    while _servers:
        server, thread = _servers.pop()
        server.should_exit = True
        thread.join(timeout=30)
    if _token_before:
        before = _token_before.pop()
        if before is None:
            os.environ.pop("RUNLOG_TOKEN", None)
        else:
            os.environ["RUNLOG_TOKEN"] = before
