"""The folders of ``importer/`` are its architecture; this test keeps them honest.

Rules, by folder (see README, Design):

- ``core``: the standard library (less its I/O and concurrency modules), yaml, phonenumbers,
  ``importer.core`` and ``importer.errors``. Nothing else.
- ``edges``: may use the core, never ``engine``, ``cli`` or ``sandbox``.
- ``engine``: may use core and edges, never ``cli`` or ``sandbox``.
- ``sandbox``: a second program; only ``importer.errors`` and itself.
- ``ui``: the web page; never ``cli`` or ``sandbox`` (it starts the sandbox as a
  process), and only ``ui/engine_bridge.py`` calls into ``engine`` and ``edges``.
- ``api`` (``importer/api.py``, the Python API): like the command line, on top of the
  engine; never ``cli``, ``sandbox`` or ``ui``, and nothing below it imports it.
- ``errors``: imports nothing of the importer.

A new module is checked by where it sits, with no list to keep up to date.
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "importer"

# Standard-library modules that touch the outside world: the core must not use them.
IMPURE_STDLIB = {
    "asyncio", "csv", "sqlite3", "socket", "ssl", "subprocess", "multiprocessing",
    "threading", "concurrent", "signal", "urllib", "http", "logging", "tempfile",
    "shutil", "fcntl", "gzip", "zipfile",
}  # fmt: skip
CORE_THIRD_PARTY = {"yaml", "phonenumbers"}

FORBIDDEN_INTERNAL = {
    "core": ("importer.engine", "importer.edges", "importer.cli", "importer.sandbox",
             "importer.ui", "importer.api"),
    "edges": ("importer.engine", "importer.cli", "importer.sandbox", "importer.ui",
              "importer.api"),
    "engine": ("importer.cli", "importer.sandbox", "importer.ui", "importer.api"),
    "ui": ("importer.cli", "importer.sandbox"),
    "api": ("importer.cli", "importer.sandbox", "importer.ui"),
}  # fmt: skip
# The page's one door into the engine: adapting to an engine change happens there.
UI_BRIDGE = "importer/ui/engine_bridge.py"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "importer":  # `from importer import core` names a package
                names.update(f"importer.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _core_may_import(name: str) -> bool:
    top = name.split(".")[0]
    if top == "importer":
        return _within(name, "importer.core") or _within(name, "importer.errors")
    if top in CORE_THIRD_PARTY:
        return True
    return top in sys.stdlib_module_names and top not in IMPURE_STDLIB


def _behind_bridge(name: str) -> bool:
    return _within(name, "importer.engine") or _within(name, "importer.edges")


def violations(package: Path) -> list[str]:
    """Every import in ``package`` that breaks the folder rules, as readable lines."""
    found: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        layer = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        where = f"importer/{relative.as_posix()}"
        for name in sorted(imports_of(path)):
            top = name.split(".")[0]
            if layer == "core" and not _core_may_import(name):
                found.add(f"{where}: core imports {name}")
            elif layer == "sandbox":
                if top == "importer" and not (
                    _within(name, "importer.sandbox") or _within(name, "importer.errors")
                ):
                    found.add(f"{where}: the sandbox imports {name}")
            elif layer == "errors" and top == "importer":
                found.add(f"{where}: errors imports {name}")
            elif layer == "ui" and where != UI_BRIDGE and _behind_bridge(name):
                found.add(f"{where}: the page imports {name} (only {UI_BRIDGE} may)")
            for prefix in FORBIDDEN_INTERNAL.get(layer, ()):
                if _within(name, prefix):
                    found.add(f"{where}: {layer} imports {name}")
    return sorted(found)


def test_the_package_follows_its_folders() -> None:
    assert violations(PACKAGE) == []


def test_every_module_sits_in_a_known_folder() -> None:
    layers = {"core", "engine", "edges", "cli", "sandbox", "ui"}
    top_modules = {"__init__", "__main__", "errors", "demo", "api"}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1:
            assert relative.stem in top_modules, f"importer/{relative} belongs in a folder"
        else:
            assert relative.parts[0] in layers, f"importer/{relative}: unknown folder"


def test_the_check_notices_planted_violations(tmp_path: Path) -> None:
    planted = tmp_path / "importer"
    shutil.copytree(PACKAGE, planted, ignore=shutil.ignore_patterns("__pycache__"))
    (planted / "core" / "planted_io.py").write_text("import sqlite3\nimport aiohttp\n")
    (planted / "edges" / "planted_up.py").write_text("from importer.engine import job\n")
    (planted / "sandbox" / "planted.py").write_text("from importer.core import config\n")
    (planted / "core" / "planted_pkg.py").write_text("from importer import edges\n")
    (planted / "ui" / "planted.py").write_text("from importer.engine import job\n")
    assert violations(planted) == [
        "importer/core/planted_io.py: core imports aiohttp",
        "importer/core/planted_io.py: core imports sqlite3",
        "importer/core/planted_pkg.py: core imports importer.edges",
        "importer/edges/planted_up.py: edges imports importer.engine",
        "importer/sandbox/planted.py: the sandbox imports importer.core",
        "importer/ui/planted.py: the page imports importer.engine (only "
        "importer/ui/engine_bridge.py may)",
    ]
