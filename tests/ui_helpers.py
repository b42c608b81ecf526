"""Run the real page (``metrix-import ui``) as a subprocess, and a real Chromium.

The browser is the operating system's Chromium driven by Playwright's Python package
(Playwright's own browser download is not used). A missing browser fails the test
loudly: `.ci/run` installs it; locally, ``apt-get install -y chromium``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli_helpers import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("METRIX_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@dataclass
class Ui:
    """A running ``metrix-import ui``."""

    process: subprocess.Popen[bytes]
    url: str  # with the token
    base: str  # http://127.0.0.1:PORT
    token: str
    private: Path
    runs: Path
    out_path: Path
    err_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cookie(self) -> str:
        port = self.base.rsplit(":", 1)[1]
        return f"metrix_ui_{port}={self.token}"

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as a person would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the page did not stop within 30 s of Ctrl-C") from None
        return self.process.returncode


def start_ui(tmp_path: Path, *args: str) -> Ui:
    """``metrix-import ui --no-browser --port 0`` in ``tmp_path``; waits for its URL."""
    out_path, err_path = tmp_path / "ui.stdout", tmp_path / "ui.stderr"
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRIX_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "importer", "ui", "--no-browser", "--port", "0",
             "--runs-dir", str(runs), *args],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmp_path, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        lines = out_path.read_text(errors="replace").splitlines()
        if len(lines) >= 2:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            raise RuntimeError("the page did not start:\n" + err_path.read_text())
        time.sleep(0.05)
    url = lines[0].split("open ", 1)[1].strip()
    private = Path(lines[1].split(": ", 1)[1].split(" (", 1)[0])
    base, token = url.split("/?token=")
    return Ui(process, url, base, token, private, runs, out_path, err_path)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Ui]:
    """The page with default options, stopped with Ctrl-C after the test."""
    page = start_ui(tmp_path)
    try:
        yield page
    finally:
        page.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def request(
    url: str,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One HTTP request that follows no redirect and never raises on a status."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with opener.open(req, timeout=20) as reply:
            return Answer(reply.status, dict(reply.headers), reply.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The system's Chromium, headless; missing, it fails the test (never a skip)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: the browser tests need it. Install it with "
            "`apt-get install -y chromium` (.ci/run does) or set METRIX_TEST_CHROMIUM.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
