"""``runlog serve``: the HTTP server for dashboards and remote runs.

``create_app(store, token=...)`` is the Starlette app (JSON read endpoints, server-sent
events, token-guarded writes, the store protocol for ``open_store("http://...")``, the
dashboard page); ``serve(...)`` runs it with uvicorn.
"""

from ._app import create_app as create_app
from ._auth import TOKEN_ENV as TOKEN_ENV
from ._auth import load_token as load_token
from ._serve import serve as serve

__all__ = ["TOKEN_ENV", "create_app", "load_token", "serve"]
