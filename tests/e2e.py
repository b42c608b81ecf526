"""Shared helpers for end-to-end tests: run the real CLI against the real sandbox."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cli_helpers import ROOT, SAMPLE_CSV, SAMPLE_MAPPING, cli
from tests.sandbox_helpers import Sandbox


def credentials(sb: Sandbox) -> dict[str, str]:
    return {"METRIX_APP_ID": sb.app_id, "METRIX_API_KEY": sb.api_key, "METRIX_ENDPOINT": sb.url}


def run_cli(
    sb: Sandbox, tmp_path: Path, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``metrix-import run ...`` against ``sb`` with failures/summary in ``tmp_path``."""
    return cli(
        "run", *args, "--no-progress",
        "--failures", tmp_path / "failures.csv", "--summary-json", tmp_path / "summary.json",
        cwd=tmp_path, env=credentials(sb), timeout=timeout,
    )  # fmt: skip


def summary(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    assert data["rows_total"] == data["rows_sent"] + data["rows_failed"] + data["rows_skipped"]
    return data


def failure_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def stored_ids(sb: Sandbox) -> list[str]:
    sb.stats()  # flushes the sandbox's write buffer
    with sqlite3.connect(sb.db_path) as db:
        return [row[0] for row in db.execute("SELECT id FROM messages ORDER BY seq")]


def expected_ids(source: Path = SAMPLE_CSV, mapping: Path = SAMPLE_MAPPING) -> set[str]:
    """Message ids of every valid row, from `preview` (ids are deterministic)."""
    result = subprocess.run(
        [sys.executable, "-m", "importer", "preview", str(source), "-m", str(mapping),
         "--rows", "100000000"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return {json.loads(line)["messages"][0]["id"] for line in result.stdout.splitlines()}
