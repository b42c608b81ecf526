"""Progress output (bar on a terminal, log lines otherwise) and the last-resort error path."""

from __future__ import annotations

import logging
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from importer.cli import friendly_errors
from importer.edges.progress import BarProgress, LogProgress, NoProgress, Snapshot, choose_progress
from tests.cli_helpers import ROOT, SAMPLE_CSV, SAMPLE_MAPPING, cli
from tests.e2e import credentials
from tests.sandbox_helpers import MakeSandbox


@pytest.mark.e2e
def test_without_a_terminal_progress_is_a_log_line_every_interval(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox("--latency-ms", "30")
    result = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--concurrency", "2",
                 "--progress-interval", "0.5", env=credentials(sb), cwd=tmp_path)  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if "progress:" in line]
    # ~290 requests at ~2 per 30 ms take about 4 s: several lines, none of them a bar.
    assert len(lines) >= 3, result.stderr
    assert "rows done" in lines[0] and "rows/s" in lines[0]
    assert "\r" not in result.stderr


@pytest.mark.e2e
def test_on_a_terminal_there_is_a_bar(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = make_sandbox()
    env = {**os.environ, **credentials(sb), "COLUMNS": "160"}
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI with a terminal as stdout and stderr
        os.chdir(tmp_path)
        os.execvpe(sys.executable, [sys.executable, "-m", "importer", "run", str(SAMPLE_CSV),
                                    "-m", str(SAMPLE_MAPPING)], env)  # fmt: skip
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    text = output.decode("utf-8", "replace")
    assert "300/300" in text and "rows/s" in text and "sent=290" in text
    # --concurrency auto (the default): the limit, latency and 429s on the bar too.
    assert re.search(r"limit=\d+, 429s=0, p50/p95=\d+/\d+ms", text), text


def test_choose_progress() -> None:
    log = logging.getLogger("test")
    assert isinstance(choose_progress(False, 10, log), NoProgress)
    chosen = choose_progress(True, 10, log)
    assert isinstance(chosen, BarProgress if sys.stderr.isatty() else LogProgress)


def test_log_progress_reports_rate_and_share(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("metrix_test")
    progress = LogProgress(log, interval=0.0)
    with caplog.at_level(logging.INFO, logger="metrix_test"):
        progress.update(Snapshot(done=50, sent=40, failed=5, skipped=5, retrying=2, fraction=0.5))
    assert "50 rows done (50% of input)" in caplog.text and "retrying 2" in caplog.text


def test_an_unexpected_error_is_exit_70_with_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @click.command()
    @friendly_errors
    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.delenv("METRIX_DEBUG", raising=False)
    result = CliRunner().invoke(broken, [])
    assert result.exit_code == 70
    assert "internal error (RuntimeError: boom)" in result.output
    assert "METRIX_DEBUG=1" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("METRIX_DEBUG", "1")
    assert isinstance(CliRunner().invoke(broken, []).exception, RuntimeError)


@pytest.mark.e2e
def test_python_dash_m_importer_is_the_console_script() -> None:
    result = subprocess.run([sys.executable, "-m", "importer", "--version"],
                            capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0 and "metrix-import" in result.stdout
