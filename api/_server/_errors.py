"""Errors as HTTP answers: one exception for a refused request, one translation table.

Every refusal is a JSON ``ErrorOut`` naming the problem. Library errors are translated
here, once, most specific first; anything not listed is a server fault (500), which the
schemathesis test hunts for.
"""

from __future__ import annotations

import logging

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from eventstore import (
    ConcurrencyError,
    DecodeError,
    InvalidArgument,
    RunLogError,
    StoreUnavailable,
    WrongExpectedVersion,
)

from .._errors import ResumeError, RunAlreadyExists, RunNotFound
from .._sweeping._sweep_config import SweepConfigError
from .._sweeping._sweeps import SweepError, SweepNotFound
from ._schemas import ErrorOut, json_encoder

__all__ = ["Problem", "error_response", "problem_handler", "runlog_error_handler"]

log = logging.getLogger("runlog.server")

_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "server_error",
    503: "unavailable",
}


class Problem(Exception):
    """Raised by a handler to refuse a request with ``status`` and a detail sentence."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def error_response(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    kind: str | None = None,
    actual_version: int | None = None,
    refused: WrongExpectedVersion | None = None,
) -> Response:
    """The JSON error body for ``status`` (``refused`` adds the stream and versions)."""
    body = ErrorOut(status, kind or _KINDS.get(status, "error"), detail, actual_version)
    if refused is not None:
        expected = refused.expected if isinstance(refused.expected, (int, str)) else None
        body = ErrorOut(status, body.error, detail, refused.actual, refused.stream, expected)
    return Response(
        json_encoder.encode(body), status, headers=headers, media_type="application/json"
    )


def status_of(exc: RunLogError) -> int:
    """The HTTP status a library error stands for."""
    # Most specific first: RunNotFound is a ResumeError, SweepNotFound a SweepError.
    if isinstance(exc, (RunNotFound, SweepNotFound)):
        return 404
    if isinstance(exc, (RunAlreadyExists, ConcurrencyError, SweepError, ResumeError)):
        return 409
    if isinstance(exc, (InvalidArgument, DecodeError, SweepConfigError)):
        return 400
    if isinstance(exc, StoreUnavailable):
        return 503
    return 500


async def problem_handler(request: Request, exc: Exception) -> Response:
    """Starlette handler for ``Problem``."""
    assert isinstance(exc, Problem)
    return error_response(exc.status, exc.detail, exc.headers)


async def runlog_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette handler for library errors that reach the app."""
    assert isinstance(exc, RunLogError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
    refused = exc if isinstance(exc, WrongExpectedVersion) else None
    return error_response(status, str(exc), kind=type(exc).__name__, refused=refused)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown path or method) as JSON errors."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404:
        detail = f"no endpoint at {request.url.path}; see /openapi.json"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, str(detail), dict(exc.headers or {}) or None)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """A body that msgspec could not decode into the endpoint's type."""
    assert isinstance(exc, (msgspec.ValidationError, msgspec.DecodeError))
    return error_response(400, f"the request body is invalid: {exc}")
