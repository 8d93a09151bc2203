"""The bearer token that guards the write endpoints.

The token comes from ``RUNLOG_SERVER_TOKEN`` or a file (``--token-file``); it is
compared in constant time and never logged, printed or echoed in an error.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from starlette.requests import Request

from eventstore import InvalidArgument

from ._errors import Problem

__all__ = ["TOKEN_ENV", "load_token", "require_token"]

TOKEN_ENV = "RUNLOG_SERVER_TOKEN"
"""The environment variable the server reads its token from."""
_MIN_LENGTH = 16


def load_token(token_file: str | os.PathLike[str] | None = None) -> str | None:
    """The server's token: the file's first line if given, else ``RUNLOG_SERVER_TOKEN``.

    None means no token is configured: every write endpoint then refuses (403).

    Raises:
        InvalidArgument: the file cannot be read, or the token is shorter than 16 characters.
    """
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the token file {token_file}: {exc}") from exc
        source = f"the token file {token_file}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        source = TOKEN_ENV
        if not token:
            return None
    if len(token) < _MIN_LENGTH:
        # The message names where the token came from, never the token itself.
        raise InvalidArgument(
            f"the token in {source} is shorter than {_MIN_LENGTH} characters; use a random one, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def require_token(request: Request, token: str | None) -> None:
    """Refuse the request unless it carries ``Authorization: Bearer <token>``.

    Raises:
        Problem: 401 without a bearer token, 403 with a wrong one or when the server
            has no token configured.
    """
    if token is None:
        raise Problem(
            403,
            "writes are disabled on this server: start it with RUNLOG_SERVER_TOKEN set or "
            "with --token-file",
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Problem(
            401,
            "this endpoint needs the header 'Authorization: Bearer <token>' (the client reads "
            "RUNLOG_TOKEN)",
            headers={"WWW-Authenticate": 'Bearer realm="runlog"'},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Problem(403, "the bearer token is not this server's token")
