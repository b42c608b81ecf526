"""What the page shows for a file, over HTTP: detected settings, sheets, escaping."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
from openpyxl import Workbook

from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, cli
from tests.test_ui_runs import open_path, wait
from tests.ui_helpers import Ui, request
from tests.ui_helpers import ui as ui

pytestmark = pytest.mark.e2e  # every test here runs the page as a process


def page_text(ui: Ui) -> str:
    return request(ui.base + "/", headers={"Cookie": ui.cookie}).body.decode()


def test_a_workbook_with_several_sheets_offers_a_sheet_chooser(ui: Ui, tmp_path: Path) -> None:
    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "Customers"
    first.append(["customer_id", "email"])
    first.append(["C1", "a@example.com"])
    second = book.create_sheet("Leads")
    second.append(["lead_id", "mobile", "نام"])
    second.append(["L1", "09121234567", "علی"])
    path = tmp_path / "two.xlsx"
    book.save(path)
    open_path(ui, path)
    shown = page_text(ui)
    assert "sheet &#x27;Customers&#x27;" in shown
    assert '<select name="sheet" id="sheet"><option selected>Customers</option>' in shown
    assert "<option>Leads</option>" in shown
    assert 'data-column="email"' in shown and 'data-column="lead_id"' not in shown
    form = urllib.parse.urlencode({"encoding": "auto", "delimiter": "auto", "header_row": "1",
                                   "sheet": "Leads"}).encode()  # fmt: skip
    headers = {"Cookie": ui.cookie, "Content-Type": "application/x-www-form-urlencoded"}
    assert request(ui.base + "/settings", "POST", form, headers).status == 303
    shown = page_text(ui)
    assert 'data-column="lead_id"' in shown and 'data-column="email"' not in shown
    assert '<th dir="auto">نام</th>' in shown
    mapping = request(ui.base + "/mapping.yaml", headers={"Cookie": ui.cookie}).body.decode()
    assert "sheet: Leads" in mapping and "user_id: lead_id" in mapping


def test_an_unreadable_file_is_a_message_not_an_error_page(ui: Ui, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    body = f'--b\r\nContent-Disposition: form-data; name="path"\r\n\r\n{empty}\r\n--b--\r\n'
    headers = {"Cookie": ui.cookie, "Content-Type": "multipart/form-data; boundary=b"}
    assert request(ui.base + "/open", "POST", body.encode(), headers).status == 303
    shown = page_text(ui)
    assert 'id="error"' in shown and "the file is empty" in shown
    assert "Traceback" not in ui.output()


def test_a_loaded_mapping_gives_the_counts_the_command_line_gives(ui: Ui) -> None:
    open_path(ui, SAMPLE_CSV)
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="mapping"; '
            f'filename="customers.yaml"\r\nContent-Type: application/x-yaml\r\n\r\n'
        ).encode()
        + SAMPLE_MAPPING.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Cookie": ui.cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert request(ui.base + "/mapping/load", "POST", body, headers).status == 303
    wait(ui, lambda s: s.get("validation", {}).get("state") == "done")
    shown = page_text(ui)
    result = cli("validate", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--summary-json", "s.json",
                 cwd=ui.runs.parent)  # fmt: skip
    assert result.returncode == 1, result.stderr
    summary = json.loads((ui.runs.parent / "s.json").read_text())
    assert (
        f"Whole file checked: {summary['rows_total']:,} rows, {summary['rows_valid']:,} valid, "
        f"{summary['rows_invalid']:,} invalid." in shown
    )
    saved = request(ui.base + "/mapping.yaml", headers={"Cookie": ui.cookie}).body.decode()
    assert "timezone: Asia/Tehran" in saved and "hashedEmail: {from: email}" in saved
