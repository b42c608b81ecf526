"""init-mapping through the CLI: the drafts it writes are accepted by validate unchanged."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from importer.core.config import load_mapping
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_XLSX, assert_no_traceback, cli

pytestmark = pytest.mark.e2e  # every test here runs the CLI or the sandbox as a process


@pytest.mark.parametrize("source", [SAMPLE_CSV, SAMPLE_XLSX])
def test_drafts_for_the_bundled_samples_validate_unchanged(tmp_path: Path, source: Path) -> None:
    draft = tmp_path / "draft.yaml"
    made = cli("init-mapping", source, "-o", draft, cwd=tmp_path)
    assert_no_traceback(made)
    assert made.returncode == 0, made.stderr
    assert "CHECK" in made.stderr and "Next: metrix-import validate" in made.stderr
    mapping = load_mapping(draft)
    assert mapping.user_id.column == "customer_id"
    assert {k: s.column for k, s in mapping.fields.items()} == {
        "firstName": "first_name", "lastName": "last_name", "email": "email",
        "phoneNumber": "mobile", "gender": "sex", "birthday": "dob", "city": "city",
    }  # fmt: skip
    assert mapping.fields["birthday"].formats == ("%d/%m/%Y",)
    assert mapping.fields["phoneNumber"].phone_format == "national"
    assert mapping.custom["orders"].kind == "int"
    assert mapping.custom["prefs"].kind == "json"
    assert mapping.custom["last_login"].kind == "datetime"
    checked = cli("validate", source, "-m", draft, cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr  # the samples' bad rows, not the draft
    assert "rows     300" in checked.stdout


def test_a_persian_headed_excel_export(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "مشتریان"
    sheet.append(["کد مشتری", "نام", "نام خانوادگی", "موبایل", "تاریخ تولد", "جنسیت", "شهر",
                  "استان", "امتیاز", "تاریخ عضویت"])  # fmt: skip
    names = ["علی", "زهرا", "رضا", "مریم"]
    persian = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
    for i in range(200):
        sheet.append([
            f"{1000 + i}", names[i % 4], "محمدی", f"0912{i:07d}".translate(persian),
            f"13{60 + i % 20}/{1 + i % 12:02d}/{1 + i % 28:02d}", "مرد" if i % 2 else "زن",
            "تهران", "البرز", i * 3, f"14{i % 3:02d}/0{1 + i % 9}/1{i % 9}",
        ])  # fmt: skip
    path = tmp_path / "crm.xlsx"
    book.save(path)
    draft = tmp_path / "crm.yaml"
    made = cli("init-mapping", path, "-o", draft, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    mapping = load_mapping(draft)
    assert mapping.user_id.column == "کد مشتری"
    fields = {k: s.column for k, s in mapping.fields.items()}
    assert fields == {
        "firstName": "نام", "lastName": "نام خانوادگی", "phoneNumber": "موبایل",
        "birthday": "تاریخ تولد", "gender": "جنسیت", "city": "شهر", "region": "استان",
    }  # fmt: skip
    assert mapping.fields["birthday"].formats == ("jalali:%Y/%m/%d",)
    joined = next(s for s in mapping.custom.values() if s.column == "تاریخ عضویت")
    assert (joined.kind, joined.formats) == ("date", ("jalali:%Y/%m/%d",))
    assert all(key.isascii() for key in mapping.custom)
    assert mapping.source.sheet == "مشتریان"
    checked = cli("validate", path, "-m", draft, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ambiguous_dates_are_flagged_and_validate_then_reports_contradictions(
    tmp_path: Path,
) -> None:
    data = tmp_path / "in.csv"
    rows = "".join(f"{i},0{1 + i % 9}/0{1 + i % 9}/2021\n" for i in range(50))
    data.write_text("id,joined\n" + rows, encoding="utf-8")
    draft = tmp_path / "m.yaml"
    made = cli("init-mapping", data, "-o", draft, cwd=tmp_path)
    assert made.returncode == 0
    assert "day first" in draft.read_text() or "day-first" in draft.read_text()
    assert "CHECK" in made.stderr
    with open(data, "a", encoding="utf-8") as more:
        more.write("99,12/25/2021\n")  # month first: contradicts the drafted format
    checked = cli("validate", data, "-m", draft, cwd=tmp_path)
    assert checked.returncode == 1
    assert "joined: not a real date" in checked.stdout or "joined:" in checked.stdout


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "m.yaml"
    target.write_text("mine")
    result = cli("init-mapping", SAMPLE_CSV, "-o", target, cwd=tmp_path)
    assert result.returncode == 2 and "--force" in result.stderr
    assert target.read_text() == "mine"
