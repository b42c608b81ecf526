"""Run the real command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Measured:
    """A finished command and what it cost: its peak resident memory, from the kernel."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


def cli_measured(
    *args: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Measured:
    """Like ``cli``, but also the child's own peak memory. Past ``timeout`` the child is
    killed and the test fails: the command must end by itself, not hang.

    The peak is the kernel's high-water mark of the child's own memory (VmHWM), read
    while it runs: rusage's ru_maxrss would carry the test process's own size, which
    Linux hands to every child at fork and keeps across exec."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("METRIX_")}
    full_env.update(env or {})
    # Captured outside ``cwd``: a test may run the command in a folder it must not litter.
    capture = Path(tempfile.mkdtemp(prefix="metrix-cli-"))
    out, err = capture / "child.stdout", capture / "child.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "importer", *map(str, args)],
            cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, _high_water_kb(process.pid))
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise AssertionError(
                f"the command did not finish within {timeout:.0f} s:\n{err.read_text()[-2000:]}"
            )
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    result = Measured(process.returncode, out.read_text(), err.read_text(), peak_kb / 1024)
    shutil.rmtree(capture, ignore_errors=True)
    return result


def _high_water_kb(pid: int) -> int:
    """VmHWM of a running process in KiB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
