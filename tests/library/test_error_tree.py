"""api's errors form one tree under RunLogError, defined in one module and drawn there."""

from __future__ import annotations

import inspect

import api
import eventstore
from api import _errors


def _exported(kind: type[BaseException]) -> list[type[BaseException]]:
    found = [getattr(api, name) for name in api.__all__]
    return [value for value in found if inspect.isclass(value) and issubclass(value, kind)]


def test_runlogerror_is_exported_by_api() -> None:
    assert api.RunLogError is eventstore.RunLogError


def test_every_api_error_derives_from_runlogerror() -> None:
    errors = [e for e in _exported(Exception) if not issubclass(e, Warning)]
    assert errors
    assert [e.__name__ for e in errors if not issubclass(e, api.RunLogError)] == []


def test_every_error_and_warning_api_defines_lives_in_its_errors_module() -> None:
    own = [e for e in _exported(BaseException) if not e.__module__.startswith("eventstore")]
    assert [e.__name__ for e in own if e.__module__ != "api._errors"] == []


def test_the_tree_in_the_docstring_names_every_error_and_warning_of_the_module() -> None:
    doc = _errors.__doc__ or ""
    missing = [name for name in _errors.__all__ if name != "RunLogError" and name not in doc]
    assert missing == []
