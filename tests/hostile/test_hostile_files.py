"""Hostile input files, built on the fly: each ends with a clear message and a
documented exit code, in bounded time and memory (measured from the child process)."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, SAMPLE_CSV, SAMPLE_MAPPING, SAMPLE_XLSX, cli_measured

pytestmark = pytest.mark.e2e  # every test runs the CLI in a child process

# Generous: the machine is shared; a hang is minutes, these take seconds.
TIMEOUT_S = 120
MEMORY_MB = 400

HEADER = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()[0]
COLUMNS = HEADER.split(",")


@dataclass
class Child:
    code: int
    stdout: str
    stderr: str
    peak_mb: float


def validate(path: Path, *extra: str, env: dict[str, str] | None = None) -> Child:
    """``metrix-import validate PATH`` in a child, with its own peak memory."""
    result = cli_measured(
        "validate", path, "-m", SAMPLE_MAPPING, *extra, cwd=path.parent, env=env,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    child = Child(result.returncode, result.stdout, result.stderr, result.peak_rss_mb)
    assert "Traceback" not in child.stderr, child.stderr
    assert child.peak_mb < MEMORY_MB, f"peak RSS {child.peak_mb:.0f} MB"
    return child


def output(child: Child) -> str:
    return child.stdout + child.stderr


# --- workbooks built by hand -----------------------------------------------------------

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_RELS_NS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def _workbook(path: Path, sheet_xml: bytes, shared: bytes | None = None, level: int = 9) -> Path:
    """A minimal .xlsx holding one sheet (and shared strings when given)."""
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            b'2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
            b"</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ).encode(),
        "xl/workbook.xml": (
            f'<?xml version="1.0"?><workbook {_NS} {_RELS_NS}><sheets>'
            '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="worksheets/sheet1.xml"/>'
            + (
                f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
                if shared is not None
                else ""
            )
            + "</Relationships>"
        ).encode(),
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    if shared is not None:
        parts["xl/sharedStrings.xml"] = shared
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as book:
        for name, data in parts.items():
            book.writestr(name, data)
    return path


def _cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def _header_row() -> str:
    letters = [chr(65 + i) for i in range(len(COLUMNS))]
    return (
        '<row r="1">'
        + "".join(_cell(f"{c}1", n) for c, n in zip(letters, COLUMNS, strict=True))
        + "</row>"
    )


def _sheet(rows: str) -> bytes:
    return (
        f'<?xml version="1.0"?><worksheet {_NS}><sheetData>{rows}</sheetData></worksheet>'.encode()
    )


def test_zip_bomb_sheet_is_refused_from_the_zip_directory(tmp_path: Path) -> None:
    # ~60 MB of dense cells packed into a few hundred KB
    row = "<row>" + '<c t="n"><v>1</v></c>' * 50 + "</row>"
    sheet = _sheet(_header_row() + row * 50_000)
    path = _workbook(tmp_path / "bomb.xlsx", sheet)
    assert path.stat().st_size < 1_000_000
    child = validate(path)
    assert child.code == 3
    assert "unpacks" in output(child) and "METRIX_MAX_EXCEL_RATIO" in output(child)


def test_shared_strings_over_the_limit_are_refused(tmp_path: Path) -> None:
    strings = b'<?xml version="1.0"?><sst ' + _NS.encode() + b">"
    strings += b"<si><t>" + os.urandom(1024).hex().encode() + b"</t></si>" * 1
    strings += b"".join(
        b"<si><t>" + os.urandom(600).hex().encode() + b"</t></si>" for _ in range(2000)
    )
    strings += b"</sst>"
    path = _workbook(tmp_path / "strings.xlsx", _sheet(_header_row()), shared=strings)
    child = validate(path, env={"METRIX_MAX_SHARED_STRINGS_MB": "1"})
    assert child.code == 3
    assert "shared strings unpack to 2 MB" in output(child)
    assert "METRIX_MAX_SHARED_STRINGS_MB=4" in output(child)


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_a_cell_at_the_far_corner_is_refused_before_the_reader_allocates(
    tmp_path: Path, reader: str
) -> None:
    sheet = _sheet(_header_row() + '<row r="1048576">' + _cell("XFD1048576", "x") + "</row>")
    path = _workbook(tmp_path / "far.xlsx", sheet)
    child = validate(path, env={"METRIX_EXCEL_READER": reader})
    assert child.code == 3
    assert "XFD1048576" in output(child) and "METRIX_MAX_SHEET_CELLS" in output(child)


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_300k_empty_rows_cost_seconds_and_the_data_after_them_is_read(
    tmp_path: Path, reader: str
) -> None:
    data = "".join(_cell(f"{chr(65 + i)}{{n}}", "x") for i in range(len(COLUMNS)))
    empty = "".join(f'<row r="{n}"><c r="A{n}" s="0"/></row>' for n in range(3, 300_003))
    rows = _header_row() + f'<row r="2">{data.format(n=2)}</row>' + empty
    rows += f'<row r="300003">{data.format(n=300_003)}</row>'
    path = _workbook(tmp_path / "empty.xlsx", _sheet(rows))
    child = validate(path, "--summary-json", str(tmp_path / "s.json"),
                     env={"METRIX_EXCEL_READER": reader})  # fmt: skip
    summary = (tmp_path / "s.json").read_text(encoding="utf-8")
    assert child.code == 1  # both data rows are read (and fail validation: "x" is no date)
    assert '"rows_total": 2' in summary.replace("\n", "").replace("  ", " ") or (
        '"rows_total":2' in summary.replace(" ", "").replace("\n", "")
    )
    assert "empty rows" in summary


def test_a_truncated_sheet_is_a_failure_row_not_a_crash(tmp_path: Path) -> None:
    with zipfile.ZipFile(SAMPLE_XLSX) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet_name = next(n for n in parts if n.startswith("xl/worksheets/sheet"))
    parts[sheet_name] = parts[sheet_name][: len(parts[sheet_name]) // 2]
    path = tmp_path / "cut.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, data in parts.items():
            book.writestr(name, data)
    child = validate(path, "--failures", str(tmp_path / "f.csv"),
                     env={"METRIX_EXCEL_READER": "streaming"})  # fmt: skip
    assert child.code == 1
    failures = (tmp_path / "f.csv").read_text(encoding="utf-8-sig")
    assert "damaged or cut short" in failures


def test_a_workbook_cut_short_is_refused(tmp_path: Path) -> None:
    data = SAMPLE_XLSX.read_bytes()
    path = tmp_path / "half.xlsx"
    path.write_bytes(data[: len(data) // 2])
    child = validate(path)
    assert child.code == 3
    assert "damaged" in output(child)


# --- CSV -------------------------------------------------------------------------------


def test_a_header_longer_than_the_limit_is_exit_3_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("\n" + HEADER + "," + "h" * 2_000_000 + "\n", encoding="utf-8")
    child = validate(path)
    assert child.code == 3
    assert "line 2, the header" in output(child) and "METRIX_MAX_CSV_FIELD_KB" in output(child)


def test_a_field_longer_than_the_limit_is_a_failure_row(tmp_path: Path) -> None:
    good = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()[1]
    path = tmp_path / "long.csv"
    path.write_text(f"{HEADER}\n{good[:-5]}{'z' * 2_000_000}\n{good}\n", encoding="utf-8")
    child = validate(path, "--failures", str(tmp_path / "f.csv"))
    assert child.code == 1
    failures = (tmp_path / "f.csv").read_text(encoding="utf-8-sig")
    assert "line 2: has a field longer than the limit of 1,024 KB" in failures


# --- not spreadsheets at all -----------------------------------------------------------

PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Report</title></head><body><table>"
    + (b"<tr><td>1</td><td>Ali</td></tr>" * 20)
    + b"</table></body></html>\n"
)


@pytest.mark.parametrize(
    ("name", "data", "found"),
    [
        ("export.xls", PAGE, "this is an HTML page"),
        ("export.csv", PAGE, "this is an HTML page"),
        ("export.csv", b"\xef\xbb\xbf  <html><body>x</body></html>", "this is an HTML page"),
        ("report.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "this is a PDF document"),
        ("photo.xlsx", b"\x89PNG\r\n\x1a\n" + bytes(64), "this is a PNG image"),
        ("scan.csv", b"\xff\xd8\xff\xe0" + bytes(64), "this is a JPEG image"),
        (
            "book.xls",
            b'<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:'
            b'spreadsheet"></Workbook>',
            "this is an Excel 2003 XML spreadsheet",
        ),
        ("files.zip", b"", "holds no CSV file"),
    ],
)
def test_non_tabular_content_is_refused_with_what_was_found(
    tmp_path: Path, name: str, data: bytes, found: str
) -> None:
    path = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.md", "# nothing tabular")
    else:
        path.write_bytes(data)
    child = validate(path)
    assert child.code == 3
    assert found in output(child)


def test_the_sample_files_still_validate(tmp_path: Path) -> None:
    # The limits do not get in the way of ordinary files.
    for sample in (SAMPLE_CSV, SAMPLE_XLSX):
        child = validate(sample)
        assert child.code in (0, 1), output(child)
    assert ROOT.exists()
