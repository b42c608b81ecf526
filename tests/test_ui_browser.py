"""The page in a real browser: the whole flow once, escaping, the key, the report.

Chromium from the operating system, driven by Playwright (see tests/ui_helpers.py).
Set METRIX_UPDATE_SCREENSHOT=1 to refresh docs/ui.png, the README's screenshot.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response

from tests.cli_helpers import ROOT, SAMPLE_CSV, cli
from tests.e2e import stored_ids
from tests.sandbox_helpers import Sandbox, start_sandbox
from tests.ui_helpers import Ui, start_ui
from tests.ui_helpers import browser as browser
from tests.ui_helpers import ui as ui

pytestmark = pytest.mark.e2e  # every test here runs the page and Chromium as processes

SCREENSHOT = ROOT / "docs" / "ui.png"
WAIT_MS = 60_000


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        context.close()


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def wait_checked(page: Page) -> dict[str, int]:
    """Wait for the whole-file check; its counts as the page shows them."""
    page.wait_for_selector("#validation-text:has-text('Whole file checked')")
    text = page.inner_text("#validation-text")
    found = re.search(r"([\d,]+) rows, ([\d,]+) valid, ([\d,]+) invalid", text)
    assert found, text
    total, valid, invalid = (int(g.replace(",", "")) for g in found.groups())
    return {"rows_total": total, "rows_valid": valid, "rows_invalid": invalid}


def column(page: Page, name: str) -> dict[str, str]:
    row = page.locator(f"tr[data-column='{name}']")
    whole = row.locator(".file-fails")
    return {
        "converted": row.locator("ul.converted").inner_text(),
        "sampled_fails": row.locator(".fails").inner_text(),
        "file_fails": whole.inner_text() if whole.count() else "",
    }


def test_the_whole_flow_from_an_export_to_the_sandbox(ui: Ui, page: Page, tmp_path: Path) -> None:
    errors = console_errors(page)
    page.goto(ui.url)
    assert page.url == ui.base + "/"  # the token left the address bar
    page.set_input_files("#file", SAMPLE_CSV)  # choosing a file opens it
    page.wait_for_selector("#columns")
    assert "customers.csv" in page.inner_text("#file-name")
    before = wait_checked(page)
    assert before["rows_total"] == 300 == before["rows_valid"] + before["rows_invalid"]
    assert page.locator("tr.check").count() >= 1  # the draft's CHECK lines stand out

    # Change a column's type: vip's cells become booleans, and "maybe" now fails.
    assert column(page, "vip")["sampled_fails"] == "0"
    with page.expect_navigation():  # every change applies at once
        page.locator("tr[data-column='vip'] select.type").select_option("bool")
    after_type = wait_checked(page)
    vip = column(page, "vip")
    assert vip["converted"].splitlines()[0] == "true"  # the cell was "1"
    assert vip["sampled_fails"] == "1" and vip["file_fails"] == "1"
    assert "not a yes/no value" in page.locator("tr[data-column='vip']").inner_text()
    assert after_type["rows_invalid"] == before["rows_invalid"] + 1

    # Change a target and its format: updated_at becomes the message time.
    with page.expect_navigation():
        page.locator("tr[data-column='updated_at'] select.target").select_option("time")
    wait_checked(page)
    fmt = page.locator("tr[data-column='updated_at'] input.format")
    fmt.fill("jalali:%Y/%m/%d")  # wrong on purpose: every row fails on it
    with page.expect_navigation():
        fmt.press("Tab")
    wrong = wait_checked(page)
    assert wrong["rows_valid"] == 0 and column(page, "updated_at")["file_fails"] == "300"
    fmt = page.locator("tr[data-column='updated_at'] input.format")
    fmt.fill("%Y-%m-%d %H:%M:%S")
    with page.expect_navigation():
        fmt.press("Tab")
    counts = wait_checked(page)
    assert counts == after_type
    converted = column(page, "updated_at")["converted"].splitlines()
    assert converted[0] == "1734599576000"  # 2024-12-19 09:12:56 UTC, epoch ms

    # The preview shows the exact body of a row the user picks, and invalid rows.
    page.fill("#row-number", "2")
    with page.expect_navigation():
        page.click("#show-row")
    body = json.loads(page.inner_text("#picked-body"))
    assert body["customUserId"] == "C0000002"
    assert body["messages"][0]["time"] == 1721015207000
    assert page.locator("#invalid tr").count() == counts["rows_invalid"]

    if os.environ.get("METRIX_UPDATE_SCREENSHOT"):
        page.locator("#columns").scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT))

    # Save the mapping; the command line validates it to exactly the page's counts.
    with page.expect_download() as download:
        page.click("#download-mapping")
    saved = tmp_path / "saved.yaml"
    download.value.save_as(saved)
    result = cli(
        "validate", SAMPLE_CSV, "--mapping", saved, "--summary-json", tmp_path / "v.json",
        "--failures", tmp_path / "v.csv", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    validated = json.loads((tmp_path / "v.json").read_text())
    assert {k: validated[k] for k in counts} == counts
    assert validated["reasons"]["vip: not a yes/no value"] == 1

    # Import into the embedded sandbox and watch the progress reach the end.
    page.click("#start")
    page.wait_for_selector("#run-summary")
    page.wait_for_function(
        "document.getElementById('run-progress').value === 1 && "
        "document.getElementById('run-text').textContent.includes('finished')"
    )
    sent = int(page.inner_text("#sent").replace(",", ""))
    failed = int(page.inner_text("#failed").replace(",", ""))
    assert (sent, failed) == (counts["rows_valid"], counts["rows_invalid"])
    assert "metrix-import run" in page.inner_text("#command")
    assert "--state" in page.inner_text("#command")

    with page.expect_download() as download:
        page.click("#download-failures")
    failures = tmp_path / "failures.csv"
    download.value.save_as(failures)
    with open(failures, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == failed and all(row["_stage"] == "validate" for row in rows)

    # What the sandbox stored: every valid row, once.
    sandbox_url = page.inner_text("#sandbox-url").removesuffix("_sandbox/users")
    sandbox_db = ui.private / "sandbox.db"
    stored = stored_ids(Sandbox(ui.process, sandbox_url, sandbox_db, "", "", "", Path(), Path()))
    assert len(stored) == len(set(stored)) == sent

    # The report, in the page, renders with no console error.
    frame = page.frame_locator("#report")
    assert frame.locator("td[data-count='sent']").inner_text() == f"{sent:,}"
    assert errors == []


def test_a_script_in_a_cell_is_text_in_the_browser(ui: Ui, page: Page, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.csv"
    hostile.write_text(
        "id,name,link\n"
        '1,<script>window.pwned=1</script>,"=HYPERLINK(""http://x"",""y"")"\n'
        "2,<img src=x onerror=window.pwned=2>,ok\n",
        encoding="utf-8",
    )
    errors = console_errors(page)
    page.goto(ui.url)
    page.fill("#path", str(hostile))
    page.click("#open-button")
    page.wait_for_selector("#columns")
    wait_checked(page)
    cells = page.locator("tr[data-column='name'] ul.cells").inner_text()
    assert "<script>window.pwned=1</script>" in cells
    assert "<img src=x onerror=window.pwned=2>" in cells
    link = page.locator("tr[data-column='link'] ul.cells").inner_text()
    assert '=HYPERLINK("http://x","y")' in link
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#columns script, #columns img").count() == 0
    assert errors == []


def test_the_api_key_never_leaves_the_server_process(page: Page, tmp_path: Path) -> None:
    key = "k3y-" + "Zq9" * 8
    data = tmp_path / "data"
    data.mkdir()
    source = data / "customers.csv"
    shutil.copy(SAMPLE_CSV, source)
    before = source.read_bytes()
    bodies: list[bytes] = []

    def keep(response: Response) -> None:
        if response.url.endswith("/events"):
            return  # a stream that never ends: read by the page, checked by /api/status
        with contextlib.suppress(Exception):  # a redirect has no body to read
            bodies.append(response.body())

    with start_sandbox(tmp_path, "--api-key", key, "--app-id", "app-1") as sandbox:
        running = start_ui(tmp_path)
        try:
            page.on("response", keep)
            page.goto(running.url)
            page.fill("#path", str(source))
            page.click("#open-button")
            page.wait_for_selector("#columns")
            valid = wait_checked(page)["rows_valid"]
            page.check("#to-metrix")
            page.fill("input[name=endpoint]", sandbox.url)
            page.fill("input[name=app_id]", "app-1")
            page.fill("input[name=api_key]", key)
            page.click("#start")
            page.wait_for_selector("#run-summary")
            assert int(page.inner_text("#sent")) == valid
            page.reload()
            page.goto(running.base + "/api/status")
            page.goto(running.base + "/")
            assert page.input_value("input[name=api_key]") == ""
            assert "METRIX_API_KEY=..." in page.inner_text("#command")
            files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
            files += [p for p in running.private.rglob("*") if p.is_file()]
            names = {p.name for p in files}
            assert {"state.db", "import.log", "report.html", "summary.json"} <= names
            written = {p: p.read_bytes() for p in files}  # before the page removes its own
        finally:
            assert running.stop() == 0
        assert len(stored_ids(sandbox)) == valid
    assert source.read_bytes() == before  # a typed path is read, never written
    assert sorted(p.name for p in data.iterdir()) == ["customers.csv"]
    for path, content in written.items():
        assert key.encode() not in content, path
    assert bodies and all(key.encode() not in body for body in bodies)
    assert key not in running.output()


def test_a_report_file_renders_with_no_console_errors(page: Page, tmp_path: Path) -> None:
    result = cli("validate", SAMPLE_CSV, "--report", "v.html", "-m",
                 ROOT / "mappings" / "customers.yaml", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = console_errors(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((tmp_path / "v.html").as_uri())
    assert page.locator("h1").inner_text() == "Validation report"
    assert page.locator("svg").count() >= 2
    assert errors == []
    assert requests == [(tmp_path / "v.html").as_uri()]  # nothing else is fetched


def test_the_readme_screenshot_is_committed() -> None:
    assert SCREENSHOT.exists() and SCREENSHOT.stat().st_size < 400_000
