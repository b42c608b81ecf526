"""Files nobody here wrote, from other projects' test suites (tests/data/PROVENANCE.md).

Every workbook is read by both Excel readers and the two must agree cell by cell; every
file is either read exactly — checked against the values its own suite states, in our
documented text forms (README "Reading files") — or refused with a clear reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importer.edges import excel
from importer.edges.readers import open_source
from importer.errors import SourceError

DATA = Path(__file__).parent / "data"
WORKBOOKS = sorted(p for p in (DATA / "xlsx").iterdir() if p.suffix in (".xlsx", ".xlsm"))
CSVS = sorted((DATA / "csv").iterdir())
UNLABELLED = {"values in columns with no header were ignored": 1}


def read(path: Path, **options: Any) -> Any:
    """Header, records and reader warnings, or the refusal's message."""
    try:
        source = open_source(path, **options)
        records = [(n, cells, problem) for n, cells, problem in source.records]
        return source.header, records, dict(source.stats.warnings)
    except SourceError as exc:
        return f"refused: {exc}"


def read_with(reader: str, path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    monkeypatch.setenv("METRIX_EXCEL_READER", reader)
    excel._calamine_sheet.cache_clear()
    return read(path, **options)


def test_the_corpus_is_here() -> None:
    assert len(WORKBOOKS) >= 40 and len(CSVS) >= 25
    producers = (DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    for producer in ("Microsoft Excel", "LibreOffice", "Google"):
        assert producer in producers


@pytest.mark.parametrize("path", WORKBOOKS, ids=[p.name for p in WORKBOOKS])
def test_both_excel_readers_give_the_same_text(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = read_with("fast", path, monkeypatch)
    streaming = read_with("streaming", path, monkeypatch)
    assert fast == streaming
    if isinstance(fast, str):  # refused: by both, for a reason a person can act on
        assert "Excel" in fast or "sheet" in fast


# Values as each file's own suite states them, in our text forms: numbers as Excel
# shows them, dates ISO 8601, durations [h]:mm:ss, booleans true/false.
WORKBOOK_VALUES: dict[str, tuple[list[str], list[list[str]]]] = {
    # calamine tests/test.rs date_xlsx: 2021-01-01, then a 255:10:10 duration
    "calamine_date.xlsx": (["2021-01-01", "15"], [["2021-01-02", "16"], ["255:10:10", "17"]]),
    "calamine_date_1904.xlsx": (
        ["2021-01-01", "15"],
        [["2021-01-02", "16"], ["255:10:10", "17"]],
    ),
    # calamine date_iso: date, datetime and time cells written as ISO text (t="d")
    "calamine_date_iso.xlsx": (["2021-01-01"], [["2021-01-01T10:10:10"], ["10:10:10"]]),
    # calamine unescape_excel_xml: "ABC\r\nDEF" from _x000D_, shared and inline
    "calamine_has_x000D_.xlsx": (["ABC\r\nDEF"], []),
    "calamine_has_x000D_inline.xlsx": (["ABC\r\nDEF"], []),
    # calamine skip_phonetic_text
    "calamine_rph.xlsx": (["課きく\u3000毛こ"], []),
    # python-calamine test_xlsx_read: String, 1, 1.1, True, False, date, datetime, time,
    # timedelta(10:10:10.1), timedelta(255:10:10)
    "pycalamine_base.xlsx": (
        [
            "String",
            "1",
            "1.1",
            "true",
            "false",
            "2010-10-10",
            "2010-10-10T10:10:10",
            "10:10:10",
            "10:10:10.100",
            "255:10:10",
        ],
        [],
    ),
    # frictionless adjust_floating_point_error: 274.66, not 274.65999999999997
    "frictionless_adjust-floating-point-error.xlsx": (
        ["Sample Name", "peak PO4", "actual PO4 (formula)", "actual PO4 (values)"],
        [
            ["P-1-94-AR P21 16-20cm Pi split 3", "60.565", "242.26", "242.26"],
            ["W-2-98-NC TF1 0-4cm Total P split 1", "68.665", "274.66", "274.66"],
        ],
    ),
    # xlsx2csv expected outputs
    "xlsx2csv_formatted_inline_string.xlsx": (["Regular Bold"], []),
    "xlsx2csv_float_formatting.xlsx": (["colx", "coly"], [["1.5", "a"], ["-2", ""], ["0", "c"]]),
    "xlsx2csv_utf8.xlsx": (
        ["สวัสดี ครับ", "Thai language"],
        [
            ["こんにちは", "Japanese language"],
            ["Здравствуйте", "Russian language"],
            ["नमस्ते", "Hindi"],
            ["السلام عليكم", "Arabic"],
        ],
    ),
    "xlsx2csv_datetime.xlsx": (["2011-09-15T15:22:00"], []),
    # tealeg TestReadWorkbookWithTypes: string, 日本語, 12345, 1.024, date, true, 30, #DIV/0!
    "tealeg_testcelltypes.xlsx": (
        ["hello world", "string"],
        [
            ["日本語", "string"],
            ["12345", "int"],
            ["1.024", "float"],
            ["2015-01-01", "date"],
            ["true", "bool"],
            ["30", "formula"],
            ["#DIV/0!", "error"],
        ],
    ),
    # tealeg googleDocsTest (Google Sheets)
    "tealeg_googleDocsTest.xlsx": (
        ["This is a test spreadsheet", "It has a couple of columns"],
        [["as well as a couple of rows", "hello hello"]],
    ),
    # calamine nonstandard_xml_ns_prefix: a b / 1 3 / 2 4
    "calamine_nonstandard-xml-ns-prefix.xlsx": (["a", "b"], [["1", "3"], ["2", "4"]]),
    # tealeg testchartsheet: the chart sheet is skipped, the worksheet read
    "tealeg_testchartsheet.xlsx": (["Value"], [["1"], ["2"], ["3"], ["4"]]),
    # csvkit testxlsx_converted.csv (booleans and dates in our forms; the value under
    # the unnamed 8th column is ignored and counted)
    "csvkit_test.xlsx": (
        ["text", "date", "integer", "boolean", "float", "datetime", "empty_column"],
        [
            ["Chicago Reader", "1971-01-01", "40", "true", "1", "1971-01-01T04:14:00", ""],
            ["Chicago Sun-Times", "1948-01-01", "63", "true", "1.27", "1948-01-01T14:57:13", ""],
            ["Chicago Tribune", "1920-01-01", "164", "false", "41800000.01", "1920-01-01", ""],
            ["This row has blanks", "", "", "", "", "", ""],
            ["Unicode! Σ", "", "", "", "", "", ""],
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(WORKBOOK_VALUES))
@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_workbook_reads_as_its_suite_states(
    name: str, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    header, rows = WORKBOOK_VALUES[name]
    got = read_with(reader, DATA / "xlsx" / name, monkeypatch)
    assert not isinstance(got, str), got
    assert got[0] == header
    read_rows = [cells for _, cells, _ in got[1]]
    assert read_rows[: len(rows)] == rows


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_error_cells_fail_their_row_naming_the_error(
    reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # calamine error_file: #DIV/0!, #NAME?, #VALUE!, #NULL!, #REF!, #NUM!, #N/A
    got = read_with(reader, DATA / "xlsx" / "calamine_errors.xlsx", monkeypatch)
    assert got[0] == ["#DIV/0!"]  # a header cell is only a name
    assert [cells for _, cells, _ in got[1]] == [
        ["#NAME?"], ["#VALUE!"], ["#NULL!"], ["#REF!"], ["#NUM!"], ["#N/A"]
    ]  # fmt: skip
    for _, cells, problem in got[1]:
        assert problem is not None and f"Excel error {cells[0]}" in problem


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_a_far_away_cell_is_refused_before_any_reader_allocates(
    reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # calamine issue_174: a workbook whose used range reaches XFD1048576
    got = read_with(reader, DATA / "xlsx" / "calamine_issue_174.xlsx", monkeypatch)
    assert isinstance(got, str)
    assert "XFD1048576" in got and "METRIX_MAX_SHEET_CELLS" in got


def test_macro_workbook_reads_its_worksheets(monkeypatch: pytest.MonkeyPatch) -> None:
    # calamine vba.xlsm holds a VBA project: its (empty) worksheets are still found
    assert excel.list_sheets(DATA / "xlsx" / "calamine_vba.xlsm") == [
        "Sheet1", "Sheet2", "Sheet3"
    ]  # fmt: skip


def test_sheet_order_is_the_workbooks() -> None:
    # calamine issue_127: sheets listed in workbook order, not file order
    names = excel.list_sheets(DATA / "xlsx" / "calamine_issue127.xlsx")
    assert names == [f"Sheet{i}" for i in range(1, 9)]


# --- CSV ------------------------------------------------------------------------------

SPECTRUM = sorted((DATA / "csv").glob("spectrum_*.csv"))


@pytest.mark.parametrize("path", SPECTRUM, ids=[p.name for p in SPECTRUM])
def test_csv_spectrum_reads_exactly(path: Path) -> None:
    expected = json.loads((DATA / "expected" / f"{path.stem}.json").read_text(encoding="utf-8"))
    got = read(path)
    assert not isinstance(got, str), got
    header, records, _ = got
    assert [dict(zip(header, cells, strict=True)) for _, cells, _ in records] == expected
    assert all(problem is None for _, _, problem in records)


CSV_VALUES: dict[str, tuple[list[str], list[list[str]]]] = {
    # csvkit test_simple (csvclean): the good row; the ragged ones are failure rows below
    "csvkit_optional_quote_characters.csv": (["a", "b", "c"], [["1", "2", "3"]]),
    "csvkit_test_utf8_bom.csv": (["foo", "bar", "baz"], [["1", "2", "3"], ["4", "5", "ʤ"]]),
    "csvkit_test_utf16_big.csv": (["a", "b", "c"], [["1", "2", "3"], ["4", "5", "ʤ"]]),
    "csvkit_test_utf16_little.csv": (["a", "b", "c"], [["1", "2", "3"], ["4", "5", "ʤ"]]),
    # frictionless latin1: id/name, english, ©
    "frictionless_latin1.csv": (["id", "name"], [["1", "english"], ["2", "©"]]),
    "csvkit_test_latin1.csv": (["a", "b", "c"], [["1", "2", "3"], ["4", "5", "©"]]),
    "frictionless_bom.csv": (["id", "name"], [["1", "english"], ["2", "中国人"]]),
    "frictionless_delimiter.csv": (["id", "name"], [["1", "english"], ["2", "中国人"]]),
    "frictionless_table.tsv": (["id", "name"], [["1", "english"], ["2", "中国人"], ["3", "\\N"]]),
    # frictionless blank-headers: the blank header cell gets a name
    "frictionless_blank-headers.csv": (
        ["id", "column_2", "age"],
        [["1101", "John", "30"], ["1102", "Julie", "26"]],
    ),
    "csvkit_blanks.csv": (
        ["a", "b", "c", "d", "e", "f"],
        [["", "NA", "N/A", "NONE", "NULL", "."]],
    ),
}


@pytest.mark.parametrize("name", sorted(CSV_VALUES))
def test_csv_reads_as_its_suite_states(name: str) -> None:
    header, rows = CSV_VALUES[name]
    got = read(DATA / "csv" / name)
    assert not isinstance(got, str), got
    assert got[0] == header
    assert [cells for _, cells, problem in got[1] if problem is None] == rows


def test_table_with_accents_is_windows_1252() -> None:
    # frictionless test_package_infer_non_utf8_file: b"\xe9" must read as "é"
    source = open_source(DATA / "csv" / "frictionless_table-with-accents.csv")
    assert source.encoding == "cp1252"
    assert "Année" in source.header


def test_ragged_rows_are_failure_rows_with_their_line() -> None:
    # csvkit test_simple: line 1 too long, line 2 too short, the third row good
    header, records, _ = read(DATA / "csv" / "csvkit_bad.csv")
    assert header == ["column_a", "column_b", "column_c"]
    problems = [problem for _, _, problem in records]
    assert problems[0] is not None and "has 4 fields but the header has 3" in problems[0]
    assert problems[1] is not None and "has 2 fields but the header has 3" in problems[1]
    assert records[2] == (3, ["0", "mixed types.... uh oh", "17"], None)


CSV_REFUSED = {
    # frictionless table-infer-iso-8859-7: Greek fits none of the detected encodings
    "frictionless_table-infer-iso-8859-7.csv": "--encoding",
    # csvkit null_byte: a NUL byte in a text file
    "csvkit_null_byte.csv": "binary data",
}


@pytest.mark.parametrize("name", sorted(CSV_REFUSED))
def test_csv_refused_with_a_reason(name: str) -> None:
    got = read(DATA / "csv" / name)
    assert isinstance(got, str) and CSV_REFUSED[name] in got


def test_greek_reads_with_the_encoding_given() -> None:
    path = DATA / "csv" / "frictionless_table-infer-iso-8859-7.csv"
    _, records, _ = read(path, encoding="iso-8859-7")
    assert any("Ε" in cell or "α" in cell for _, cells, _ in records for cell in cells)


def test_zip_holding_one_csv_is_read() -> None:
    # frictionless table.csv.zip: the zipped table.csv (id, name)
    header, records, _ = read(DATA / "zip" / "frictionless_table.csv.zip")
    assert header == ["id", "name"]
    assert [cells for _, cells, _ in records] == [["1", "english"], ["2", "中国人"]]


@pytest.mark.parametrize("path", CSVS, ids=[p.name for p in CSVS])
def test_every_csv_is_read_or_refused_clearly(path: Path) -> None:
    got = read(path)
    if isinstance(got, str):
        assert path.name in CSV_REFUSED, got
        return
    header, records, _ = got
    assert header and all(isinstance(cell, str) for _, cells, _ in records for cell in cells)
    for _, _, problem in records:
        assert problem is None or problem.startswith("line ")
