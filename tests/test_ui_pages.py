"""What the page shows for a file, over HTTP: detected settings, sheets, escaping."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from openpyxl import Workbook

from tests.test_ui_runs import open_path
from tests.ui_helpers import Ui, request
from tests.ui_helpers import ui as ui


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
