"""The pure core imports no edge library and no edge module (see README, Design)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "importer"
CORE = ["config", "convert", "jalali", "phone", "messages", "delivery", "infer"]
EDGE_LIBRARIES = {
    "aiohttp", "click", "tqdm", "sqlite3", "openpyxl", "python_calamine", "pandas", "csv",
    "socket", "asyncio", "multiprocessing", "subprocess", "urllib",
}  # fmt: skip
EDGE_MODULES = {
    "importer.readers", "importer.transport", "importer.state", "importer.report",
    "importer.cli", "importer.cli_sandbox", "importer.runner", "importer.job",
    "importer.parallel", "importer.progress", "importer.sandbox", "importer.duplicates",
    "importer.pipeline", "importer.demo",
}  # fmt: skip


def imported_names(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_edge(module: str) -> None:
    names = imported_names(module)
    libraries = {name.split(".")[0] for name in names} & EDGE_LIBRARIES
    modules = names & EDGE_MODULES
    assert not libraries and not modules, f"importer.{module} imports {libraries | modules}"


def test_the_check_would_notice() -> None:
    assert "asyncio" in {n.split(".")[0] for n in imported_names("runner")}
