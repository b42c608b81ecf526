"""Run the real command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "sample_data" / "customers.csv"
SAMPLE_XLSX = ROOT / "sample_data" / "customers.xlsx"
SAMPLE_MAPPING = ROOT / "mappings" / "customers.yaml"


def cli(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``metrix-import ARGS`` via ``python -m importer``; never raises on exit codes."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("METRIX_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "importer", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    """A user never sees a Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
