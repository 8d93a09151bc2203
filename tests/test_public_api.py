"""The curated public surface: everything public is exported, and nothing private."""

from __future__ import annotations

import importlib
import inspect

import pytest


@pytest.mark.parametrize("package", ["eventstore", "projections", "api"])
def test_all_lists_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:  # names a package loads when first used exist then
        getattr(module, name)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (not inspect.ismodule(value) or value.__name__ == f"{package}.{name}")
    }
    assert sorted(module.__all__) == sorted(public)
    assert list(module.__all__) == sorted(module.__all__)


def test_every_exported_name_has_a_docstring() -> None:
    import eventstore

    missing = [
        name
        for name in eventstore.__all__
        if (
            inspect.isclass(getattr(eventstore, name))
            or inspect.isfunction(getattr(eventstore, name))
        )
        and not inspect.getdoc(getattr(eventstore, name))
    ]
    assert missing == []


def test_aiosqlite_still_runs_callables_on_its_connection_thread() -> None:
    # The SQLite backend runs each operation as one call through this hook; an
    # aiosqlite release without it must fail here, not in production.
    import aiosqlite

    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    assert list(inspect.signature(aiosqlite.Connection._execute).parameters)[:2] == ["self", "fn"]
