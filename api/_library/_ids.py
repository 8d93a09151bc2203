"""Run ids: the rules of contract §1."""

from __future__ import annotations

import secrets
import unicodedata

from .._errors import InvalidRunId

__all__ = ["MAX_RUN_ID", "check_run_id", "generate_id"]

MAX_RUN_ID = 64
_FORBIDDEN = "/\\#?%:;,'"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def generate_id(length: int = 8) -> str:
    """A new random run id: ``length`` characters of ``a-z0-9`` from ``secrets``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def check_run_id(run_id: object) -> str:
    """Return ``run_id`` unchanged if it is valid, else raise ``InvalidRunId`` saying why.

    Ids are never rewritten or truncated, and are compared exactly.
    """
    if not isinstance(run_id, str):
        raise InvalidRunId(f"a run id is a string, not {type(run_id).__name__}")
    if not run_id:
        raise InvalidRunId("a run id cannot be empty; pass id=None to get a generated one")
    if len(run_id) > MAX_RUN_ID:
        raise InvalidRunId(
            f"run id {run_id[:20]!r}... is {len(run_id)} characters; the limit is {MAX_RUN_ID}"
        )
    if run_id != run_id.strip():
        raise InvalidRunId(f"run id {run_id!r} has leading or trailing whitespace")
    for char in run_id:
        if char in _FORBIDDEN:
            raise InvalidRunId(
                f"run id {run_id!r} contains {char!r}; ids cannot contain any of {_FORBIDDEN}"
            )
        if unicodedata.category(char) in ("Cc", "Cf"):
            raise InvalidRunId(f"run id {run_id!r} contains the control character {char!r}")
    return run_id
