"""A PostgreSQL server for the tests, and a fresh database per store.

The server is ``RUNLOG_TEST_POSTGRES_URL`` (any database on it; the tests create and
drop their own) if that is set, else a throwaway one this module starts on first use
from the PostgreSQL binaries it finds (``/usr/lib/postgresql/*/bin``, ``pg_config
--bindir`` or ``PATH``) in a temporary directory on a free port, as an unprivileged
user when the tests run as root. It is stopped when the test session ends.

Without a server the PostgreSQL tests skip, saying why; with
``RUNLOG_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) they fail instead, so CI can never
count a skipped test as a pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

__all__ = ["PostgresServer", "database_url", "require_server", "stop_server"]

_names = itertools.count()


class PostgresServer:
    """A reachable server: its maintenance URL, and the databases made on it."""

    def __init__(self, url: str, data_dir: Path | None, bin_dir: Path | None, user: str | None):
        self.url = url
        self.data_dir = data_dir
        self.bin_dir = bin_dir
        self.user = user
        self.databases: list[str] = []

    def database(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + name))

    def run_as_owner(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the server's owner (for pg_ctl)."""
        assert self.bin_dir is not None
        command = [str(self.bin_dir / args[0]), *args[1:]]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            user=self.user,
            group=pwd.getpwnam(self.user).pw_gid if self.user is not None else None,
            extra_groups=[] if self.user is not None else None,
            cwd="/",
        )


_server: PostgresServer | None = None
_failure: str | None = None


def _required() -> bool:
    return os.environ.get("RUNLOG_REQUIRE_POSTGRES") == "1"


def require_server() -> PostgresServer:
    """The test server, started on first use; skips (or fails under CI) without one."""
    global _server, _failure
    if _server is None and _failure is None:
        try:
            _server = _find_or_start()
        except Exception as exc:
            _failure = str(exc)
    if _server is None:
        message = f"no PostgreSQL server for the tests: {_failure}"
        if _required():
            pytest.fail(message + " (RUNLOG_REQUIRE_POSTGRES=1 makes this a failure)")
        pytest.skip(message)
    return _server


def database_url(_tmp: Path | None = None) -> str:
    """The URL of a database no test used before (``open_store`` creates it)."""
    server = require_server()
    name = f"runlog_test_{os.getpid()}_{next(_names)}"
    server.databases.append(name)
    return server.database(name)


def _find_or_start() -> PostgresServer:
    url = os.environ.get("RUNLOG_TEST_POSTGRES_URL")
    if url:
        _check(url)
        return PostgresServer(url, None, None, None)
    return _start()


def _execute(url: str, statements: list[str]) -> None:
    """Run ``statements`` on ``url``, each on its own, from any thread (loop or not)."""

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=30)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    # A thread of its own, so this works whether or not an event loop is running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def _check(url: str) -> None:
    try:
        _execute(url, ["SELECT 1"])
    except Exception as exc:
        raise RuntimeError(f"cannot query {url}: {exc}") from exc


def _bin_dir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        path = Path(found.stdout.strip())
        if (path / "initdb").exists():
            return path
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb) found; install the 'postgresql' package or "
        "set RUNLOG_TEST_POSTGRES_URL"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start() -> PostgresServer:
    bin_dir = _bin_dir()
    user: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        for candidate in ("postgres", "nobody"):
            try:
                pwd.getpwnam(candidate)
            except KeyError:
                continue
            user = candidate
            break
        else:
            raise RuntimeError("running as root and there is no 'postgres' or 'nobody' user")
    base = Path(tempfile.mkdtemp(prefix="runlog-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data = base / "data"
    port = _free_port()
    server = PostgresServer(f"postgresql://runlog@127.0.0.1:{port}/postgres", data, bin_dir, user)
    init = server.run_as_owner(
        ["initdb", "-D", str(data), "-U", "runlog", "--auth=trust", "-E", "UTF8", "--no-sync"]
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    # A throwaway server: durability settings off for speed, room for the
    # multi-process tests' connections.
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    started = server.run_as_owner(
        ["pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]
    )
    if started.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log[-2000:]}")
    return server


def stop_server() -> None:
    """Drop the test databases (on a server given by URL) or stop the throwaway server."""
    global _server
    server, _server = _server, None
    if server is None:
        return
    if server.data_dir is None:
        with contextlib.suppress(Exception):  # leftovers on a test server are harmless
            _execute(
                server.url,
                [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in server.databases],
            )
        return
    server.run_as_owner(["pg_ctl", "-D", str(server.data_dir), "-m", "immediate", "stop"])
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)
