"""Adaptive pacing end to end: the real CLI, default options, against a sandbox that limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, assert_no_traceback, cli
from tests.e2e import credentials, expected_ids, run_cli, stored_ids, summary
from tests.sandbox_helpers import Sandbox, start_sandbox

pytestmark = pytest.mark.e2e  # every test here runs the CLI and the sandbox as processes


def test_default_run_meets_a_hidden_rate_limit_and_still_delivers_every_row(
    tmp_path: Path,
) -> None:
    with start_sandbox(tmp_path, "--rate-limit", "60", "--no-retry-after") as sb:
        result = run_cli(sb, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--report", "r.html")
        assert_no_traceback(result)
        assert result.returncode == 1, result.stderr  # the sample's 10 invalid rows
        assert sorted(stored_ids(sb)) == sorted(expected_ids())
        data = summary(tmp_path)
        pacing = data["pacing"]
        assert data["rows_sent"] == 290
        assert pacing["rate_limited"] == data["status_counts"].get("429", 0) >= 1
        assert pacing["rate_per_second"] is not None  # it switched to a paced rate
        assert 1 <= pacing["limit"] <= 64
        assert "Pacing: auto" in result.stdout and "answered 429" in result.stdout
        # The report charts the limit and latency, with every 429 marked on each chart.
        html = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "Pacing over time" in html
        marks = [int(count) for count in re.findall(r'<line data-429="(\d+)"', html)]
        assert sum(marks) == 2 * pacing["rate_limited"]


def test_a_number_fixes_the_concurrency_and_shows_no_pacing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--concurrency", "4")
    assert result.returncode == 1, result.stderr
    data = summary(tmp_path)
    assert data["pacing"] is None and data["rows_sent"] == 290
    assert "Pacing" not in result.stdout


def test_a_run_that_sends_nothing_shows_no_pacing(sandbox: Sandbox, tmp_path: Path) -> None:
    # Nothing was learnt about the endpoint: "ended at 8 in flight" would mean nothing.
    result = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--dry-run")
    assert result.returncode == 1, result.stderr
    data = summary(tmp_path)
    assert data["pacing"] is None and data["requests"] == 0
    assert "Pacing" not in result.stdout


def test_progress_log_lines_show_the_limit_and_latency(sandbox: Sandbox, tmp_path: Path) -> None:
    result = cli(
        "run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--progress-interval", "0",
        "--failures", tmp_path / "failures.csv", cwd=tmp_path, env=credentials(sandbox),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "progress:" in line]
    assert lines and all("in flight up to" in line and "429s" in line for line in lines)


def test_a_bad_concurrency_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--concurrency", "zero", cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 2
    assert "'zero' is not 'auto' or a number from 1 to 512" in result.stderr
