"""The README's cron recipe, run as cron would run it, against the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, SAMPLE_CSV, SAMPLE_MAPPING
from tests.sandbox_helpers import Sandbox

pytestmark = pytest.mark.e2e  # every test here runs the CLI or the sandbox as a process

SCRIPT = ROOT / "examples" / "nightly-import.sh"


def nightly(env_file: Path) -> subprocess.CompletedProcess[str]:
    # cron gives a bare environment: no terminal, a minimal PATH.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent)}
    return subprocess.run(
        ["bash", str(SCRIPT), str(env_file)], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def write_env(folder: Path, sb: Sandbox) -> Path:
    env_file = folder / "nightly.env"
    env_file.write_text(
        f"METRIX_APP_ID={sb.app_id}\nMETRIX_API_KEY={sb.api_key}\nMETRIX_ENDPOINT={sb.url}\n"
        f"EXPORT={SAMPLE_CSV}\nMAPPING={SAMPLE_MAPPING}\nWORKDIR={folder}\n"
        f'IMPORTER="{sys.executable} -m importer"\n'
    )
    env_file.chmod(0o600)
    return env_file


def test_cron_recipe_imports_then_sends_only_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = write_env(tmp_path, sandbox)
    first = nightly(env_file)
    assert first.returncode == 1, first.stderr  # the sample has bad rows on purpose
    summaries = sorted(tmp_path.glob("summary-*.json"))
    assert len(summaries) == 1
    assert json.loads(summaries[0].read_text())["rows_sent"] == 290
    log = (tmp_path / "import.log").read_text()
    assert "INFO" in log and sandbox.api_key not in log
    assert "\r" not in first.stderr  # log lines, not a progress bar
    second = nightly(env_file)
    assert second.returncode == 1
    again = json.loads(summaries[0].read_text())
    assert (again["rows_sent"], again["rows_skipped"]) == (0, 290)
    assert list(tmp_path.glob("failures-*.csv"))


def test_cron_recipe_refuses_a_world_readable_env_file(sandbox: Sandbox, tmp_path: Path) -> None:
    env_file = write_env(tmp_path, sandbox)
    env_file.chmod(0o644)
    result = nightly(env_file)
    assert result.returncode == 2
    assert "chmod 600" in result.stderr
    assert not (tmp_path / "state.db").exists()
