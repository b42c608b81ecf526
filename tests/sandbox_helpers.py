"""Run the real sandbox server as a subprocess for tests.

Tests use the fixtures in ``tests/conftest.py``: ``sandbox`` (defaults, no faults) and
``make_sandbox("--fail-rate", "0.1", "--seed", "1")``; both stop the sandbox after the
test. ``start_sandbox`` is the function underneath, for a context manager::

    with start_sandbox(tmp_path, "--fail-rate", "0.1") as sb:
        ...  # sb.url, sb.stats(), sb.user("u1")
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_APP_ID = "sandbox-app"
DEFAULT_API_KEY = "sandbox-key"
READY_PREFIX = "sandbox listening on "
START_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, headers and the body parsed as JSON (None if not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any


def http_request(
    method: str,
    url: str,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Reply:
    """One request with urllib; 4xx/5xx are returned, not raised. Connection errors raise."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, reply_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, reply_headers, raw = exc.code, dict(exc.headers), exc.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Reply(status, reply_headers, body)


@dataclass
class Sandbox:
    """A running sandbox subprocess. Use as a context manager, or call ``stop()``."""

    process: subprocess.Popen[bytes]
    url: str
    db_path: Path
    app_id: str
    api_key: str
    ready_line: str
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = field(default=None, init=False)

    def post(
        self,
        payload: Any = None,
        *,
        body: bytes | None = None,
        app_id: str | None = None,
        api_key: str | None = None,
        content_type: str | None = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """POST / with the sandbox's credentials (override with app_id/api_key; "" omits)."""
        data = body if body is not None else json.dumps(payload).encode()
        sent: dict[str, str] = {}
        app = self.app_id if app_id is None else app_id
        key = self.api_key if api_key is None else api_key
        if app:
            sent["X-Application-Id"] = app
        if key:
            sent["X-API-Key"] = key
        if content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        return http_request("POST", self.url, data, sent)

    def get(self, path: str) -> Reply:
        """GET a path relative to the sandbox URL, e.g. ``_sandbox/stats``."""
        return http_request("GET", self.url + path.lstrip("/"))

    def stats(self) -> dict[str, Any]:
        """GET /_sandbox/stats."""
        reply = self.get("_sandbox/stats")
        assert reply.status == 200, reply
        result: dict[str, Any] = reply.body
        return result

    def user(self, custom_user_id: str) -> dict[str, Any] | None:
        """GET /_sandbox/users/<id>: ``{"customUserId", "profile", "messages"}`` or None."""
        reply = self.get("_sandbox/users/" + urllib.parse.quote(custom_user_id, safe=""))
        if reply.status == 404:
            return None
        assert reply.status == 200, reply
        result: dict[str, Any] = reply.body
        return result

    def users(self, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """GET /_sandbox/users: ``{"total", "limit", "offset", "users": [...]}``."""
        reply = self.get(f"_sandbox/users?limit={limit}&offset={offset}")
        assert reply.status == 200, reply
        result: dict[str, Any] = reply.body
        return result

    def output(self) -> str:
        """Everything the process wrote so far, stdout then stderr."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Send ``sig``, wait, and assert a clean exit (code 0, no traceback)."""
        if self.returncode is not None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
            raise AssertionError(f"sandbox did not stop within {timeout}s of {sig.name}") from None
        assert self.returncode == 0, f"sandbox exited {self.returncode}:\n{self.output()}"
        assert "Traceback" not in self.output(), self.output()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:  # don't hide the test's own failure behind a shutdown assertion
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()


def _option(args: tuple[str, ...], name: str) -> str | None:
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def sandbox_command(*args: str) -> list[str]:
    """The argv that runs the sandbox CLI with this interpreter."""
    return [sys.executable, "-m", "importer.sandbox", *args]


def sandbox_env() -> dict[str, str]:
    """The environment for the subprocess: the repo importable, no stray sandbox settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRIX_SANDBOX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_sandbox(tmp_path: Path, *extra_args: str) -> Sandbox:
    """Start ``python -m importer.sandbox`` on 127.0.0.1, port 0, and wait for its ready line.

    ``--db`` defaults to a new file under ``tmp_path``; any CLI flag can be added in
    ``extra_args`` (``--app-id``/``--api-key``/``--db`` given there are honoured).
    """
    args = ["--host", "127.0.0.1", "--port", "0"]
    db = _option(extra_args, "--db")
    if db is None:
        db = str(_fresh(tmp_path, "sandbox", ".db"))
        args += ["--db", db]
    args += extra_args
    stdout_path = _fresh(tmp_path, "sandbox", ".stdout")
    stderr_path = stdout_path.with_suffix(".stderr")
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            sandbox_command(*args),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env=sandbox_env(),
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        first_line = stdout_path.read_text(errors="replace").partition("\n")
        if first_line[1]:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            raise RuntimeError(
                "the sandbox did not start:\n"
                + stdout_path.read_text(errors="replace")
                + stderr_path.read_text(errors="replace")
            )
        time.sleep(0.01)
    ready = first_line[0]
    assert ready.startswith(READY_PREFIX), ready
    url = ready[len(READY_PREFIX) :].split(" ", 1)[0]
    assert url.endswith("/"), url
    return Sandbox(
        process=process,
        url=url,
        db_path=Path(db) if Path(db).is_absolute() else tmp_path / db,
        app_id=_option(extra_args, "--app-id") or DEFAULT_APP_ID,
        api_key=_option(extra_args, "--api-key") or DEFAULT_API_KEY,
        ready_line=ready,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )


def _fresh(folder: Path, stem: str, suffix: str) -> Path:
    for n in range(1000):
        candidate = folder / f"{stem}-{n}{suffix}"
        if not candidate.exists():
            return candidate
    raise RuntimeError(f"too many sandboxes in {folder}")


# The type of the ``make_sandbox`` fixture (tests/conftest.py).
MakeSandbox = Callable[..., Sandbox]
