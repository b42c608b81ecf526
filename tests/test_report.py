"""The failure CSV and the summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from importer.edges.readers import open_source
from importer.edges.report import FailureWriter, Summary, neutralize, restore


@given(st.text())
def test_restore_undoes_neutralize(text: str) -> None:
    assert restore(neutralize(text)) == text


@given(st.text())
def test_neutralized_cells_never_start_a_formula(text: str) -> None:
    assert not neutralize(text).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_failure_csv_has_bom_report_columns_and_original_cells(tmp_path: Path) -> None:
    path = tmp_path / "out" / "f.csv"
    writer = FailureWriter(path, ["id", "نام", "=formula"])
    writer.write(3, "validate", "id: is empty", ["", "علی", "=HYPERLINK(1)"])
    writer.close()
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["_row", "_stage", "_error", "id", "نام", "'=formula"],
        ["3", "validate", "id: is empty", "", "علی", "'=HYPERLINK(1)"],
    ]
    source = open_source(path)
    assert source.header == ["id", "نام", "=formula"]
    assert [c for _, c, _ in source.records] == [["", "علی", "=HYPERLINK(1)"]]


def test_no_failures_no_file_and_a_stale_report_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("_row,_stage,_error,id\n1,validate,x,1\n", encoding="utf-8")
    FailureWriter(path, ["id"]).close()
    assert not path.exists()
    other = tmp_path / "data.csv"
    other.write_text("id\n1\n")
    FailureWriter(other, ["id"]).close()
    assert other.exists()  # never delete a file the importer did not write


def test_summary_json_keys(tmp_path: Path) -> None:
    summary = Summary(rows_total=3, rows_valid=2, rows_invalid=1, encoding="utf-8")
    summary.reasons["email: not an email address"] += 1
    summary.write_json(tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    for key in (
        "rows_total",
        "rows_valid",
        "rows_invalid",
        "rows_sent",
        "rows_failed",
        "rows_skipped",
        "failures_path",
        "duration_seconds",
        "encoding",
        "reasons",
    ):
        assert key in data
    assert data["reasons"] == {"email: not an email address": 1}
