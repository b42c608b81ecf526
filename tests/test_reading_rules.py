"""The reading rules of the README's "Reading files", one test per rule."""

from __future__ import annotations

import zipfile
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.edges import encoding, excel
from importer.edges.excel import excel_cell_text
from importer.edges.paths import expand_paths
from importer.edges.readers import list_sheets, open_source
from importer.errors import SourceError
from tests.cli_helpers import SAMPLE_MAPPING, assert_no_traceback, cli


def records(path: Path, **options: object) -> list[tuple[int, list[str], str | None]]:
    return list(open_source(path, **options).records)  # type: ignore[arg-type]


# --- encoding by evidence --------------------------------------------------------------

PERSIAN_ROWS = "".join(f"{i},علي رضايي,تهران\n" for i in range(2000))


def test_utf8_with_one_damaged_byte_stays_utf8_and_fails_only_that_row(tmp_path: Path) -> None:
    rows = [f"{i},José Ñandú,تهران" for i in range(500)]
    data = ("id,name,city\n" + "\n".join(rows) + "\n").encode("utf-8")
    cut = data.index(b"\n250,") + 5
    path = tmp_path / "in.csv"
    path.write_bytes(data[:cut] + b"\xe9" + data[cut:])
    source = open_source(path)
    assert source.encoding == "utf-8" and "damaged" in source.describe()
    got = list(source.records)
    assert [n for n, _, problem in got if problem] == [251]
    assert got[0][1] == ["0", "José Ñandú", "تهران"]


def test_windows_1256_after_a_long_ascii_head_is_detected_again(tmp_path: Path) -> None:
    head = "id,name,city\n" + "".join(f"{i},ascii,x\n" for i in range(40_000))
    path = tmp_path / "in.csv"
    path.write_bytes(head.encode() + PERSIAN_ROWS.encode("cp1256"))
    source = open_source(path)
    assert source.encoding == "cp1256"
    assert "line 40,002" in source.describe()
    rows = list(source.records)
    assert all(problem is None for _, _, problem in rows)
    assert rows[-1][1] == ["1999", "علي رضايي", "تهران"]


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Καλημέρα κόσμε, ελληνικά γράμματα\n" * 50, "iso-8859-7"),
        ("中文字符測試，繁體中文\n" * 50, "big5"),
        ("Привет мир, кириллица\n" * 50, "cp1251"),
    ],
)
def test_encodings_nothing_supports_are_refused_with_the_option(
    tmp_path: Path, text: str, codec: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(("name\n" + text).encode(codec))
    with pytest.raises(SourceError, match="--encoding"):
        open_source(path)
    assert open_source(path, encoding=codec).header == ["name"]


def test_detector_scores() -> None:
    assert encoding.cp1256_score("سلام دنيا پژوهش".encode("cp1256")) == 1.0
    assert encoding.cp1252_score("Zürich, Málaga, Renée".encode("cp1252")) == 1.0
    assert encoding.cp1252_score("Καλημέρα".encode("iso-8859-7")) < 0.5


# --- CSV quoting and limits --------------------------------------------------------------


def test_a_bare_quote_inside_a_quoted_field_fails_the_row_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('id,shop\n1,"The "Best" Shop"\n2,"A ""quoted"" word"\n', encoding="utf-8")
    got = records(path)
    assert got[0][1] == ['1,"The "Best" Shop"'] and got[0][2] is not None
    assert "not doubled" in got[0][2]
    assert got[1] == (2, ["2", 'A "quoted" word'], None)


def test_blank_lines_above_the_header_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("\n\n  \nid,name\n1,a\n", encoding="utf-8")
    source = open_source(path)
    assert source.header == ["id", "name"]
    assert [c for _, c, _ in source.records] == [["1", "a"]]


# --- Excel text forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (18.364620000000002, "18.36462"),
        (274.65999999999997, "274.66"),
        (0.1 + 0.2, "0.3"),
        (9121122333.0, "9121122333"),
        (1e20, "1e+20"),
        (1.5e-7, "1.5e-07"),
        (-2.0, "-2"),
        (timedelta(days=10, seconds=54610), "255:10:10"),
        (timedelta(days=-2, hours=19, minutes=12), "-28:48:00"),
        (timedelta(hours=10, minutes=10, seconds=10, microseconds=100000), "10:10:10.100"),
        (time(10, 10, 10), "10:10:10"),
        (time(10, 10, 10, 500000), "10:10:10.500"),
    ],
)
def test_excel_text_forms(value: object, text: str) -> None:
    assert excel_cell_text(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_read_as_at_most_15_significant_digits(value: float) -> None:
    text = excel_cell_text(value)
    assert float(text) == float(f"{value:.15g}")
    digits = text.lstrip("-").split("e")[0].replace(".", "").strip("0")
    assert len(digits) <= 15


@given(st.datetimes(timezones=st.sampled_from([None, timezone(timedelta(hours=3, minutes=30))])))
def test_date_times_read_as_iso_8601_dates_at_midnight(value: datetime) -> None:
    text = excel_cell_text(value)
    if value.time() == time(0):
        assert text == value.date().isoformat()
    else:
        assert text == value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def _book(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_unlabelled_excel_cells_are_ignored_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    monkeypatch.setenv("METRIX_EXCEL_READER", reader)
    excel._calamine_sheet.cache_clear()
    path = _book(tmp_path / "b.xlsx", [["id", "name"], [1, "a", "note"], [2, "b"]])
    source = open_source(path)
    assert list(source.records) == [(1, ["1", "a"], None), (2, ["2", "b"], None)]
    assert source.stats.warnings == {excel.UNLABELLED: 1}


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_error_cells_fail_the_row_even_when_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    monkeypatch.setenv("METRIX_EXCEL_READER", reader)
    excel._calamine_sheet.cache_clear()
    path = _book(tmp_path / "b.xlsx", [["id", "total"], [1, 2], [3, 4]])
    # Replace the values with error cells, as Excel stores a formula's error result.
    with zipfile.ZipFile(path) as book:
        parts = {name: book.read(name) for name in book.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    xml = parts[sheet].decode()
    start, end = xml.index("<sheetData>"), xml.index("</sheetData>")
    rows = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>total</t></is></c></row>'
        '<row r="2"><c r="A2"><v>1</v></c><c r="B2" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>'
        '<row r="3"><c r="A3" t="e"><v>#N/A</v></c><c r="B3" t="e"><v>#N/A</v></c></row>'
    )
    parts[sheet] = (xml[: start + len("<sheetData>")] + rows + xml[end:]).encode()
    with zipfile.ZipFile(path, "w") as book:
        for name, data in parts.items():
            book.writestr(name, data)
    got = records(path)
    assert [(n, c) for n, c, _ in got] == [(1, ["1", "#DIV/0!"]), (2, ["#N/A", "#N/A"])]
    assert got[0][2] is not None and "Excel error #DIV/0! in column 'total'" in got[0][2]
    assert got[1][2] is not None and "#N/A in column 'id'" in got[1][2]


def test_an_empty_sheet_says_so(tmp_path: Path) -> None:
    path = _book(tmp_path / "b.xlsx", [])
    with pytest.raises(SourceError, match="is empty"):
        open_source(path)


# --- zip archives and paths ------------------------------------------------------------


def test_zip_of_several_csvs_is_several_inputs(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "id,name\n1,x\n")
        archive.writestr("b.csv", "id,name\n2,y\n")
    assert list_sheets(path) == ["a.csv", "b.csv"]
    with pytest.raises(SourceError, match="--sheet all"):
        open_source(path)
    assert [c for _, c, _ in records(path, sheet="b.csv")] == [["2", "y"]]


def test_an_existing_path_is_never_a_pattern(tmp_path: Path) -> None:
    for name in ("[table].csv", "data[1].csv", "data1.csv"):
        (tmp_path / name).write_text("id\n1\n", encoding="utf-8")
    assert expand_paths([str(tmp_path / "[table].csv")]) == [str(tmp_path / "[table].csv")]
    assert expand_paths([str(tmp_path / "data[1].csv")]) == [str(tmp_path / "data[1].csv")]
    assert expand_paths([str(tmp_path / "data?.csv")]) == [str(tmp_path / "data1.csv")]
    with pytest.raises(SourceError, match="matches no file"):
        expand_paths([str(tmp_path / "nothing*.csv")])


@pytest.mark.e2e
def test_a_bracketed_file_name_validates_end_to_end(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "sample_data" / "customers.csv"
    named = tmp_path / "[customers].csv"
    named.write_bytes(source.read_bytes())
    result = cli("validate", named, "-m", SAMPLE_MAPPING, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode in (0, 1)
    assert "[customers].csv" in result.stdout


@pytest.mark.e2e
def test_init_mapping_reads_past_blank_lines_above_the_header(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("\n\n\ncustomer_id,first_name,email\nC1,Ali,a@b.co\n", encoding="utf-8")
    result = cli("init-mapping", path, "-o", tmp_path / "m.yaml", cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 0
    assert 'user_id: "customer_id"' in (tmp_path / "m.yaml").read_text(encoding="utf-8")


STRICT = {
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main": (
        "http://purl.oclc.org/ooxml/spreadsheetml/main"
    ),
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships": (
        "http://purl.oclc.org/ooxml/officeDocument/relationships"
    ),
}


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_strict_ooxml_workbooks_read_like_transitional_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    path = _book(tmp_path / "b.xlsx", [["id", "joined"], [1, "x"]])
    with zipfile.ZipFile(path) as book:
        parts = {name: book.read(name) for name in book.namelist()}
    for name, data in parts.items():
        text = data.decode("utf-8")
        for old, new in STRICT.items():
            text = text.replace(old, new)
        parts[name] = text.encode("utf-8")
    with zipfile.ZipFile(path, "w") as book:
        for name, data in parts.items():
            book.writestr(name, data)
    monkeypatch.setenv("METRIX_EXCEL_READER", reader)
    excel._calamine_sheet.cache_clear()
    source = open_source(path)
    assert source.header == ["id", "joined"]
    assert list(source.records) == [(1, ["1", "x"], None)]
