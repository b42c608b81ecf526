"""Legacy CRM migration: duplicates, several sheets and files, plan, odd encodings.
The real CLI against the real sandbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest

from tests.cli_helpers import assert_no_traceback, cli
from tests.e2e import failure_rows, run_cli, stored_ids, summary
from tests.sandbox_helpers import Sandbox

pytestmark = pytest.mark.e2e  # every test here runs the CLI or the sandbox as a process

MAPPING = "user_id: id\nfields: {email: email}\n"
TIMED = "user_id: id\ntime: {column: t}\nfields: {email: email}\n"
ROWS = [
    ("C1", "first@x.co", "2024-01-01T00:00:00Z"),
    ("C2", "c2@x.co", "2024-01-01T00:00:00Z"),
    ("C1", "second@x.co", "2024-01-02T00:00:00Z"),
    ("C3", "c3@x.co", "2024-01-01T00:00:00Z"),
    ("C1", "third@x.co", "2024-01-03T00:00:00Z"),
]


def export(tmp_path: Path, rows: Sequence[tuple[str, ...]] = ROWS, name: str = "crm.csv") -> Path:
    path = tmp_path / name
    path.write_text("id,email,t\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def mapping(tmp_path: Path, text: str = MAPPING) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def email_of(sb: Sandbox, user: str) -> str:
    stored = sb.user(user)
    assert stored is not None
    return str(stored["profile"]["email"])


@pytest.mark.parametrize(("policy", "kept"), [("last", "third@x.co"), ("first", "first@x.co")])
def test_duplicates_keep_one_row_and_skip_the_others(
    sandbox: Sandbox, tmp_path: Path, policy: str, kept: str
) -> None:
    result = run_cli(
        sandbox, tmp_path, export(tmp_path), "-m", mapping(tmp_path), "--duplicates", policy
    )
    assert result.returncode == 0, result.stderr
    assert len(stored_ids(sandbox)) == 3
    assert email_of(sandbox, "C1") == kept
    data = summary(tmp_path)
    assert (data["rows_sent"], data["rows_skipped"]) == (3, 2)
    assert data["skipped_reasons"] == {"duplicate": 2}
    assert data["duplicates"]["examples"] == [{"customUserId": "C1", "rows": 3}]
    assert "duplicate" in result.stdout


def test_duplicates_all_needs_a_time_column(sandbox: Sandbox, tmp_path: Path) -> None:
    refused = run_cli(
        sandbox, tmp_path, export(tmp_path), "-m", mapping(tmp_path), "--duplicates", "all"
    )
    assert_no_traceback(refused)
    assert refused.returncode == 2
    assert "time:" in refused.stderr and stored_ids(sandbox) == []
    sent = run_cli(
        sandbox, tmp_path, export(tmp_path), "-m", mapping(tmp_path, TIMED), "--duplicates", "all"
    )
    assert sent.returncode == 0, sent.stderr
    assert len(stored_ids(sandbox)) == 5
    assert email_of(sandbox, "C1") == "third@x.co"  # the greatest time wins


def test_duplicates_error_fails_every_row_of_a_duplicated_user(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_cli(
        sandbox, tmp_path, export(tmp_path), "-m", mapping(tmp_path), "--duplicates", "error"
    )
    assert result.returncode == 1
    failures = failure_rows(tmp_path / "failures.csv")
    assert [f["_row"] for f in failures] == ["1", "3", "5"]
    assert all("is on 3 rows" in f["_error"] for f in failures)
    assert sandbox.user("C1") is None and len(stored_ids(sandbox)) == 2


def test_every_sheet_of_a_workbook_is_one_run(sandbox: Sandbox, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Tehran"
    first.append(["id", "email"])
    first.append(["T1", "t1@x.co"])
    first.append(["D1", "old@x.co"])
    second = book.create_sheet("Shiraz")
    second.append(["id", "email"])
    second.append(["S1", "s1@x.co"])
    second.append(["S2", "not-an-email"])
    second.append(["D1", "new@x.co"])
    path = tmp_path / "crm.xlsx"
    book.save(path)
    result = run_cli(sandbox, tmp_path, path, "-m", mapping(tmp_path), "--sheet", "all")
    assert result.returncode == 1, result.stderr
    assert {u for u in ("T1", "S1", "D1") if sandbox.user(u)} == {"T1", "S1", "D1"}
    assert email_of(sandbox, "D1") == "new@x.co"  # last in file order, across sheets
    failures = failure_rows(tmp_path / "failures.csv")
    assert [(f["_row"], f["email"]) for f in failures] == [("Shiraz:2", "not-an-email")]
    data = summary(tmp_path)
    assert (data["rows_total"], data["rows_sent"], data["rows_failed"], data["rows_skipped"]) == (
        5,
        3,
        1,
        1,
    )


def test_several_files_by_glob_are_one_run_with_a_source_column(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(folder, [("A1", "a1@x.co", "")], "a.csv")
    export(folder, [("B1", "b1@x.co", ""), ("B2", "bad", "")], "b.csv")
    result = run_cli(sandbox, tmp_path, str(folder / "*.csv"), "-m", mapping(tmp_path))
    assert result.returncode == 1, result.stderr
    assert len(stored_ids(sandbox)) == 2
    failures = failure_rows(tmp_path / "failures.csv")
    assert [(f["_source"], f["_row"], f["id"]) for f in failures] == [
        (str(folder / "b.csv"), "2", "B2")
    ]
    assert summary(tmp_path)["rows_total"] == 3


def test_plan_reports_without_sending_and_knows_the_state(sandbox: Sandbox, tmp_path: Path) -> None:
    data = export(tmp_path, [("U1", "u1@x.co", ""), ("U2", "u2@x.co", ""), ("U3", "bad", "")])
    state = tmp_path / "state.db"
    first = run_cli(sandbox, tmp_path, data, "-m", mapping(tmp_path), "--state", state)
    assert first.returncode == 1
    sent_before = len(stored_ids(sandbox))
    export(tmp_path, [("U1", "u1@x.co", ""), ("U2", "changed@x.co", ""), ("U3", "bad", ""),
                      ("U4", "u4@x.co", ""), ("U4", "u4b@x.co", "")])  # fmt: skip
    result = cli(
        "plan",
        data,
        "-m",
        mapping(tmp_path),
        "--state",
        state,
        "--concurrency",
        "10",
        "--summary-json",
        tmp_path / "plan.json",
        cwd=tmp_path,
    )
    assert_no_traceback(result)
    assert result.returncode == 1
    assert "automation" in result.stdout
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert (plan["rows_total"], plan["rows_valid"], plan["rows_invalid"]) == (5, 4, 1)
    assert (plan["users_new"], plan["users_changed"], plan["users_unchanged"]) == (1, 1, 1)
    assert plan["duplicates"]["rows"] == 1
    assert plan["estimate"]["users_per_second"] == 200.0
    assert len(stored_ids(sandbox)) == sent_before


def test_legacy_windows_1256_export_with_solar_hijri_dates(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Windows-1256 has no Persian yeh (ی) nor Persian digits: legacy exports write
    # Arabic yeh (ي) and ASCII digits. The mapping below is typed with Persian yeh.
    text = (
        "کد مشتري,نام,موبايل,تاريخ تولد\n"
        "1001,علي,09121122333,1370/05/12\n"
        "1002,رضا,+98 935 000 1122,1369/10/11\n"
    )
    path = tmp_path / "legacy.csv"
    path.write_bytes(text.encode("cp1256"))
    spec = tmp_path / "legacy.yaml"
    spec.write_text(
        "user_id: کد مشتری\n"
        "fields:\n"
        "  firstName: نام\n"
        "  phoneNumber: {column: موبایل, phone_format: national, region: IR}\n"
        "  birthday: {column: تاریخ تولد, format: 'jalali:%Y/%m/%d'}\n",
        encoding="utf-8",
    )
    result = run_cli(sandbox, tmp_path, path, "-m", spec)
    assert result.returncode == 0, result.stderr
    assert "Windows-1256" in result.stderr
    first = sandbox.user("1001")
    assert first is not None
    assert first["profile"]["phoneNumber"] == "09121122333"
    assert first["profile"]["birthday"] == 681177600000  # 1991-08-03T00:00:00Z
    assert first["profile"]["firstName"] == "علي"  # text is sent as written
    second = sandbox.user("1002")
    assert second is not None and second["profile"]["birthday"] == 662688000000  # 1991-01-01
