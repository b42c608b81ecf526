"""validate and preview through the real command line: output, files, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, SAMPLE_XLSX, assert_no_traceback, cli


@pytest.mark.e2e
def test_validate_sample_reports_invalid_rows_and_exits_1(tmp_path: Path) -> None:
    result = cli(
        "validate",
        SAMPLE_CSV,
        "--mapping",
        SAMPLE_MAPPING,
        "--summary-json",
        "s.json",
        cwd=tmp_path,
    )
    assert_no_traceback(result)
    assert result.returncode == 1
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rows_total"] == summary["rows_valid"] + summary["rows_invalid"] == 300
    assert summary["rows_invalid"] > 0
    assert summary["rows_total"] == (
        summary["rows_sent"] + summary["rows_failed"] + summary["rows_skipped"]
    )
    failures = tmp_path / "customers.csv.failures.csv"
    assert summary["failures_path"] == "customers.csv.failures.csv"
    with open(failures, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary["rows_invalid"]
    assert {r["_stage"] for r in rows} == {"validate"}
    assert all(r["_error"] for r in rows)
    assert "Most common problems" in result.stdout
    assert "encoding UTF-8 (detected)" in result.stderr


@pytest.mark.e2e
def test_csv_and_xlsx_samples_give_the_same_messages(tmp_path: Path) -> None:
    from_csv = cli("preview", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--rows", "300", cwd=tmp_path)
    from_xlsx = cli("preview", SAMPLE_XLSX, "-m", SAMPLE_MAPPING, "--rows", "300", cwd=tmp_path)
    assert from_csv.returncode == from_xlsx.returncode == 0
    csv_bodies = [json.loads(line) for line in from_csv.stdout.splitlines()]
    xlsx_bodies = [json.loads(line) for line in from_xlsx.stdout.splitlines()]
    assert len(csv_bodies) == 290

    def without_ids(body: dict[str, object]) -> dict[str, object]:
        message = dict(body["messages"][0])  # type: ignore[index]
        message.pop("id")
        return {"user": body["customUserId"], **message}

    assert [without_ids(b) for b in csv_bodies] == [without_ids(b) for b in xlsx_bodies]


@pytest.mark.e2e
def test_all_valid_file_exits_0_and_writes_no_failure_file(tmp_path: Path) -> None:
    data = tmp_path / "ok.csv"
    data.write_text("id,email\n1,A@B.co\n2,c@d.org\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    result = cli("validate", data, "-m", mapping, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "No failed rows" in result.stdout
    assert not list(tmp_path.glob("*.failures.csv"))


@pytest.mark.e2e
def test_preview_prints_exact_bodies_then_invalid_rows(tmp_path: Path) -> None:
    result = cli("preview", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "-n", "3", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    body = json.loads(lines[0])
    assert set(body) == {"customUserId", "messages"}
    assert body["messages"][0]["type"] == "user"
    assert "invalid rows" in result.stderr and "row " in result.stderr


@pytest.mark.e2e
def test_bad_mapping_exits_2_with_every_problem(tmp_path: Path) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(
        "user_id: id\ncustom:\n  a: {column: a, type: integer}\n  b: {column: b, type: flaot}\n"
    )
    result = cli("validate", SAMPLE_CSV, "-m", mapping, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 2
    assert "custom.a.type: unknown type 'integer'" in result.stderr
    assert "custom.b.type: unknown type 'flaot' (did you mean 'float'?)" in result.stderr
    assert "2 problems" in result.stderr


@pytest.mark.e2e
def test_mapping_naming_missing_columns_exits_2_with_a_hint(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: customer_no\nfields: {email: mail}\n")
    result = cli("validate", SAMPLE_CSV, "-m", mapping, cwd=tmp_path)
    assert result.returncode == 2
    assert "the closest header is 'customer_id'" in result.stderr
    assert "the closest header is 'email'" in result.stderr
    loose = tmp_path / "loose.yaml"
    loose.write_text("user_id: Customer ID\nfields: {email: E-Mail}\n")
    assert cli("validate", SAMPLE_CSV, "-m", loose, cwd=tmp_path).returncode == 1


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("missing.csv", None, "does not exist"),
        ("empty.csv", b"", "the file is empty"),
        ("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "password-protected"),
        ("photo.csv", bytes(range(256)) * 20, "binary data"),
    ],
)
def test_unreadable_input_exits_3(
    tmp_path: Path, name: str, data: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    result = cli("validate", path, "-m", SAMPLE_MAPPING, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 3
    assert message in result.stderr


@pytest.mark.e2e
def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = cli("validate", SAMPLE_CSV, cwd=tmp_path)
    assert result.returncode == 2
    assert "--mapping" in result.stderr
    bad = cli("validate", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--delimiter", ":", cwd=tmp_path)
    assert bad.returncode == 2
    assert_no_traceback(bad)


@pytest.mark.e2e
def test_help_lists_exit_codes() -> None:
    result = cli("validate", "--help")
    assert "Exit codes: 0" in result.stdout and "130 interrupted" in result.stdout


@pytest.mark.e2e
def test_worker_processes_give_exactly_the_same_results(tmp_path: Path) -> None:
    from benchmarks.datagen import write_csv

    data = tmp_path / "export.csv"
    write_csv(data, 4500, seed=12, invalid_rate=0.03)
    outputs = {}
    for workers in ("0", "2"):
        result = cli("validate", data, "-m", SAMPLE_MAPPING, "--workers", workers,
                     "--failures", f"f{workers}.csv", "--summary-json", f"s{workers}.json",
                     cwd=tmp_path)  # fmt: skip
        assert result.returncode == 1, result.stderr
        summary = json.loads((tmp_path / f"s{workers}.json").read_text())
        summary.pop("duration_seconds")
        summary.pop("failures_path")
        outputs[workers] = (summary, (tmp_path / f"f{workers}.csv").read_bytes())
    assert outputs["0"] == outputs["2"]
    assert outputs["0"][0]["rows_invalid"] > 50


def test_cells_holding_the_packing_separators_still_reach_workers_intact() -> None:
    from importer.engine.parallel import _pack, _unpack

    plain = [["a", "b"], ["", "c d"]]
    assert isinstance(_pack(plain), str) and _unpack(_pack(plain)) == plain
    tricky = [["a\x1fb", "c"], ["d\x1e", ""]]
    assert _pack(tricky) == tricky and _unpack(_pack(tricky)) == tricky
    assert _unpack(_pack([])) == []
    assert _unpack(_pack([[""]])) == [[""]]
