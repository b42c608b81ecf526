"""The page's guard, over real HTTP against the real `metrix-import ui` process."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from importer.ui.security import Guard
from importer.ui.server import make_app
from importer.ui.workspace import Workspace
from tests.cli_helpers import SAMPLE_CSV, cli
from tests.ui_helpers import Ui, request, start_ui
from tests.ui_helpers import ui as ui

pytestmark = pytest.mark.e2e  # every test here runs the page as a process

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def routes() -> list[tuple[str, str]]:
    """Every (method, path) the page serves, read from the app itself."""
    ws = Workspace(Path("unused-runs"), 1)
    try:
        app = make_app(ws, Guard("t", 1, host="127.0.0.1", allow_remote=False))
        found = []
        for route in app.router.routes():
            info = route.resource.get_info() if route.resource else {}
            path = info.get("path") or info.get("formatter", "")
            if route.method != "HEAD":
                found.append((route.method, path.replace("{name}", "app.js")))
        return found
    finally:
        ws.close()


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, (filename, data) in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        if filename:
            body += f'; filename="{filename}"\r\nContent-Type: text/csv'.encode()
        body += b"\r\n\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_without_the_token_every_route_is_403(ui: Ui) -> None:
    all_routes = routes()
    assert len(all_routes) >= 12 and ("POST", "/run") in all_routes
    for method, path in all_routes:
        data = b"" if method == "POST" else None
        for cookie in (None, f"{ui.cookie}x", "metrix_ui_1=" + ui.token):
            headers = {"Cookie": cookie} if cookie else {}
            answer = request(ui.base + path, method, data, headers)
            assert answer.status == 403, (method, path, cookie)
            assert b"token" in answer.body
            for name, value in SECURITY_HEADERS.items():
                assert answer.headers[name] == value
        assert request(f"{ui.base}{path}?token=wrong", method, data).status == 403


def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_url(ui: Ui) -> None:
    answer = request(ui.url)
    assert answer.status == 303
    assert answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(ui.cookie + ";") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    page = request(ui.base + "/", headers={"Cookie": ui.cookie})
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    assert b"<script>" not in page.body  # no inline script at all


def test_a_cross_site_post_is_refused_and_changes_nothing(ui: Ui) -> None:
    body, kind = multipart({"path": ("", str(SAMPLE_CSV).encode())})
    foreign = [
        {"Origin": "http://evil.example"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1"},
    ]
    for extra in foreign:
        headers = {"Cookie": ui.cookie, "Content-Type": kind, **extra}
        assert request(ui.base + "/open", "POST", body, headers).status == 403, extra
        assert request(ui.base + "/run", "POST", b"target=sandbox", headers).status == 403
    status = request(ui.base + "/api/status", headers={"Cookie": ui.cookie})
    assert json.loads(status.body) == {}  # nothing was opened, nothing runs
    # The page's own form post (what Chromium sends under no-referrer) is accepted.
    own = {"Cookie": ui.cookie, "Content-Type": kind, "Origin": "null",
           "Sec-Fetch-Site": "same-origin"}  # fmt: skip
    assert request(ui.base + "/open", "POST", body, own).status == 303


def test_a_foreign_host_header_is_refused(ui: Ui) -> None:
    answer = request(ui.base + "/", headers={"Cookie": ui.cookie, "Host": "evil.example"})
    assert answer.status == 403


def test_a_non_loopback_host_needs_allow_remote(tmp_path: Path) -> None:
    result = cli("ui", "--no-browser", "--host", "0.0.0.0", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr and "Traceback" not in result.stderr


def test_uploads_are_limited_private_and_removed_on_exit(tmp_path: Path) -> None:
    page = start_ui(tmp_path, "--max-upload", "1KiB")
    try:
        assert stat.S_IMODE(page.private.stat().st_mode) == 0o700
        big, kind = multipart({"file": ("big.csv", b"id\n" + b"1234567\n" * 1000)})
        headers = {"Cookie": page.cookie, "Content-Type": kind}
        assert request(page.base + "/open", "POST", big, headers).status == 303
        shown = request(page.base + "/", headers={"Cookie": page.cookie}).body.decode()
        assert "larger than the upload limit" in shown
        assert not [p for p in page.private.rglob("*") if p.is_file()]
        small, kind = multipart({"file": ("small.csv", b"id,name\n1,a\n2,b\n")})
        headers = {"Cookie": page.cookie, "Content-Type": kind}
        assert request(page.base + "/open", "POST", small, headers).status == 303
        uploaded = [p for p in page.private.rglob("small.csv")]
        assert len(uploaded) == 1
        assert stat.S_IMODE(uploaded[0].parent.stat().st_mode) == 0o700
    finally:
        assert page.stop() == 0
    assert not page.private.exists()
    assert "Traceback" not in page.output()


@pytest.mark.parametrize("size", ["2GiB", "500M", "1048576", "1.5k"])
def test_max_upload_sizes(size: str) -> None:
    from importer.ui.cli import parse_size

    assert parse_size(size) == {"2GiB": 2 * 1024**3, "500M": 500 * 1024**2,
                                "1048576": 1048576, "1.5k": 1536}[size]  # fmt: skip
