"""Running the app with uvicorn."""

from __future__ import annotations

import os
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from eventstore import EventStore

from ._app import create_app
from ._context import Context

__all__ = ["serve"]


def serve(
    store: EventStore | str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    reap_interval: float | None = 60.0,
    reap_timeout: float = 300.0,
    log_level: str = "info",
) -> None:
    """Serve ``store`` on ``host:port`` until interrupted (SIGINT/SIGTERM).

    Open event streams are given 2 s to end on shutdown; the watchdog and the store are
    then closed by the app's lifespan.
    """
    app = create_app(store, token=token, reap_interval=reap_interval, reap_timeout=reap_timeout)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=2,
        # The access log shows method, path and status only: never headers, so never
        # the bearer token.
        access_log=log_level == "debug",
    )
    _Server(config, app).run()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Event streams never end by themselves: end them, so the graceful shutdown
        # finishes at once instead of waiting out its timeout.
        found = getattr(self._app.state, "runlog", None)
        if isinstance(found, Context):
            found.stop_streams_soon()
        super().handle_exit(sig, frame)
