"""The package layering docs/architecture.md describes, checked on the source.

eventstore knows nothing of the other two, projections knows only eventstore, api
knows both; and no package reaches into another's private modules (``_x``): what one
package offers the others is what its ``__init__`` exports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("eventstore", "projections", "api")
ALLOWED = {"eventstore": set(), "projections": {"eventstore"}, "api": {"eventstore", "projections"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, nested ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _violations(package: str) -> tuple[list[str], list[str]]:
    private, upward = [], []
    for path in sorted((ROOT / package).rglob("*.py")):
        where = path.relative_to(ROOT)
        for line, module in _imports(path):
            parts = module.split(".")
            other = parts[0]
            if other not in PACKAGES or other == package:
                continue
            if other not in ALLOWED[package]:
                upward.append(f"{where}:{line} imports {module}")
            if any(part.startswith("_") for part in parts[1:]):
                private.append(f"{where}:{line} imports {module}")
    return private, upward


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_another_packages_private_modules(package: str) -> None:
    private, _ = _violations(package)
    assert private == [], "publish the name in the package's __init__ instead"


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    _, upward = _violations(package)
    assert upward == []


def test_the_check_sees_private_imports_even_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from eventstore._codec import x\nimport projections._fold\n")
    assert sorted(module for _, module in _imports(source)) == [
        "eventstore._codec",
        "eventstore._codec.x",
        "projections._fold",
    ]


_SQLITE_ONLY = """
import sys, asyncio
import api
from eventstore import open_store
from projections import open_projector

async def main(path):
    async with open_store(path) as store, open_projector(store) as projector:
        await projector.runs()

asyncio.run(main(sys.argv[1]))
print(sorted(m for m in ("asyncpg", "httpx") if m in sys.modules))
"""


def test_sqlite_users_never_import_asyncpg(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SQLITE_ONLY, str(tmp_path / "runs.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["eventstore", "projections"])
def test_every_module_is_named_in_the_architecture_page(package: str) -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        path.name
        for path in sorted((ROOT / package).glob("*.py"))
        if path.name != "__init__.py" and f"`{path.name}`" not in page
    ]
    assert missing == [], "say in docs/architecture.md what the new module holds"


# Inside api, the parts depend one way too: the library is the base, sweeps build on it,
# the audit tools read what both wrote, the server and the CLI sit on top, and the
# public modules (api/__init__.py, api/sync.py and the W&B surface behind it) use any.
API_PARTS: dict[str, set[str]] = {
    "_errors": set(),
    "_wire": set(),
    "_library": {"_errors", "_wire"},
    "_sweeping": {"_errors", "_library"},
    "_audit": {"_errors", "_library", "_sweeping"},
    "_server": {"_errors", "_wire", "_library", "_sweeping", "_audit"},
    "_cli": {"_errors", "_library", "_sweeping", "_audit", "_server"},
}


def _api_part(path: Path) -> str | None:
    """The part of api ``path`` belongs to, or None for api's public top level."""
    parts = path.relative_to(ROOT / "api").with_suffix("").parts
    name = parts[0]
    return name if name in API_PARTS else None


def _relative_targets(path: Path) -> list[tuple[int, str]]:
    """(line, first part of api imported) of every relative import in ``path``."""
    package = list(path.relative_to(ROOT).parent.parts)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            if len(target) > 1:
                found.append((node.lineno, target[1]))
            else:
                found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_api_parts_depend_one_way() -> None:
    wrong = []
    for path in sorted((ROOT / "api").rglob("*.py")):
        part = _api_part(path)
        if part is None:
            continue
        for line, target in _relative_targets(path):
            if target != part and target not in API_PARTS[part]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports api.{target}")
    assert wrong == [], "see API_PARTS: a part imports only the parts below it"


def test_every_api_part_is_named_in_the_architecture_page() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    api = ROOT / "api"
    assert all((api / name).is_dir() or (api / f"{name}.py").is_file() for name in API_PARTS)
    missing = [name for name in API_PARTS if f"`{name}" not in page]
    assert missing == [], "say in docs/architecture.md what the part holds"
