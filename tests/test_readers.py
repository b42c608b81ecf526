"""Reader quirks, each with a small fixture written by the test."""

from __future__ import annotations

import gzip
from datetime import date, datetime, time
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.edges.readers import (
    detect_encoding,
    excel_cell_text,
    make_header,
    open_source,
    sniff_delimiter,
)
from importer.errors import SourceError

# Windows-1256 has Arabic yeh (ي), not Persian yeh (ی): legacy exports use it.
PERSIAN = "نام,شهر\nعلي,تهران\nژاله,گرگان\nپريسا,چالوس\n"


def records(path: Path, **options: object) -> list[tuple[int, list[str], str | None]]:
    return list(open_source(path, **options).records)  # type: ignore[arg-type]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("encoding", "prefix", "expected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
        ("utf-16", b"", "utf-16"),  # Python's utf-16 writes a BOM
        ("cp1256", b"", "cp1256"),
    ],
)
def test_persian_text_is_read_in_every_supported_encoding(
    tmp_path: Path, encoding: str, prefix: bytes, expected: str
) -> None:
    path = write(tmp_path, "in.csv", prefix + PERSIAN.encode(encoding))
    source = open_source(path)
    assert source.encoding == expected
    assert source.encoding_detected
    assert source.header == ["نام", "شهر"]
    assert [cells for _, cells, _ in source.records] == [
        ["علي", "تهران"],
        ["ژاله", "گرگان"],
        ["پريسا", "چالوس"],
    ]


def test_western_legacy_export_is_windows_1252(tmp_path: Path) -> None:
    text = "name,city\nJosé,Málaga\nRenée,Zürich\n"
    path = write(tmp_path, "in.csv", text.encode("cp1252"))
    source = open_source(path)
    assert source.encoding == "cp1252"
    assert [c for _, c, _ in source.records] == [["José", "Málaga"], ["Renée", "Zürich"]]


def test_detect_encoding_prefers_cp1256_for_runs_of_arabic_letters() -> None:
    assert detect_encoding("سلام دنيا".encode("cp1256")) == "cp1256"
    assert detect_encoding("café au lait".encode("cp1252")) == "cp1252"


def test_explicit_encoding_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "a\nÀ\n".encode("latin-1"))
    source = open_source(path, encoding="latin-1")
    assert not source.encoding_detected
    assert [c for _, c, _ in source.records] == [["À"]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [["id", "name", "note"], ["1", "Ali", "a, b; c"], ["2", "Sara", ""]]
    text = "\n".join(delimiter.join(f'"{c}"' if "," in c else c for c in r) for r in rows)
    path = write(tmp_path, "in.txt", (text + "\n").encode())
    source = open_source(path)
    assert source.delimiter == delimiter
    assert [c for _, c, _ in source.records] == rows[1:]


def test_sniff_delimiter_ignores_delimiters_inside_text() -> None:
    assert sniff_delimiter(["a;b;c\n", "1;x, y;3\n"]) == ";"


@pytest.mark.parametrize("name", ["in.csv.gz", "in.tsv.gz", "no_suffix"])
def test_gzip_is_recognised_by_its_bytes(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, gzip.compress(b"id\tv\n1\tx\n2\ty\n"))
    assert [c for _, c, _ in open_source(path).records] == [["1", "x"], ["2", "y"]]


def test_header_is_trimmed_and_blank_or_repeated_names_are_made_unique() -> None:
    names, display = make_header(["\ufeff id ", "", "phone", "phone", "\u00a0phone"])
    assert names == ["id", "column_2", "phone", "phone#2", "phone#3"]
    assert display == ["id", "", "phone", "phone", "phone"]


def test_bom_does_not_break_header_matching(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"\xef\xbb\xbfid,email\n1,a@b.co\n")
    assert open_source(path).header == ["id", "email"]


def test_wrong_field_counts_become_failures_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"id,name\n1,Ali\n2,Sara,extra\n3\n4,Reza\n")
    got = records(path)
    assert [(n, c) for n, c, _ in got] == [
        (1, ["1", "Ali"]),
        (2, ["2", "Sara", "extra"]),
        (3, ["3"]),
        (4, ["4", "Reza"]),
    ]
    assert got[0][2] is None and got[3][2] is None
    assert (
        got[1][2]
        == "line 3: has 3 fields but the header has 2 (is a delimiter inside an unquoted cell?)"
    )
    assert got[2][2] == "line 4: has 1 fields but the header has 2"


def test_unterminated_quote_fails_one_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b'id,name\n1,"Ali\n2,Sara\n3,Reza\n')
    got = records(path)
    assert [(n, c, p) for n, c, p in got] == [
        (1, ['1,"Ali'], 'line 2: a quote (") is opened but never closed'),
        (2, ["2", "Sara"], None),
        (3, ["3", "Reza"], None),
    ]


def test_unterminated_quote_longer_than_the_field_limit_still_recovers(tmp_path: Path) -> None:
    body = "".join(f"{i},name{i}\n" for i in range(2, 30000))
    path = write(tmp_path, "in.csv", ('id,name\n1,"Ali\n' + body).encode())
    got = records(path)
    assert got[0][2] == 'line 2: a quote (") is opened but never closed'
    assert len(got) == 1 + 29998
    assert got[-1][1] == ["29999", "name29999"] and got[-1][2] is None


def test_quoted_multiline_cell_is_one_row(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b'id,note\n1,"two\nlines"\n2,x\n')
    assert [(c, p) for _, c, p in records(path)] == [
        (["1", "two\nlines"], None),
        (["2", "x"], None),
    ]


def test_undecodable_bytes_fail_only_their_row(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"id,name\n1,Ali\n2,Sa\xffra\n3,Reza\n")
    got = records(path, encoding="utf-8")
    assert got[1][2] is not None and "not valid UTF-8" in got[1][2]
    assert got[1][1] == ["2", "Sa\ufffdra"]
    assert got[0][2] is None and got[2][2] is None


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"id,name\n1,Ali\n\n,\n2,Sara\n\n")
    source = open_source(path)
    got = list(source.records)
    assert [(n, c) for n, c, _ in got] == [(1, ["1", "Ali"]), (4, ["2", "Sara"])]
    assert source.stats.blank_rows == 3


def test_header_row_option_skips_preamble(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"Exported by CRM\n\nid,name\n1,Ali\n")
    source = open_source(path, header_row=3)
    assert source.header == ["id", "name"]
    assert [c for _, c, _ in source.records] == [["1", "Ali"]]


def test_leading_zeros_and_text_stay_exactly_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"id,phone,flag\n007,09121122333,1\n")
    assert [c for _, c, _ in records(path)] == [["007", "09121122333", "1"]]


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old-style .xls"),
        ("broken.xlsx", b"PK\x03\x04garbage", "not a valid Excel workbook"),
        ("binary.csv", b"\x00\x01\x02\x03" * 100, "binary data"),
    ],
)
def test_unreadable_inputs_raise_source_error(
    tmp_path: Path, name: str, data: bytes, problem: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(SourceError, match=problem):
        open_source(path)


def test_missing_file_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (9121122333, "9121122333"),
        (9121122333.0, "9121122333"),
        (0.1, "0.1"),
        (12.5, "12.5"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ("007", "007"),
        (date(1990, 5, 1), "1990-05-01"),
        (datetime(1990, 5, 1), "1990-05-01"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (datetime(2024, 1, 2, 3, 4, 5, 250000), "2024-01-02T03:04:05.250"),
        (time(8, 30), "08:30:00"),
    ],
)
def test_excel_cell_text(value: object, text: str) -> None:
    assert excel_cell_text(value) == text


def _workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Notes"
    first.append(["nothing here"])
    sheet = book.create_sheet("Customers")
    sheet.append(["id", "phone", "joined", "score", None])
    sheet.append(["007", 9121122333, date(2020, 1, 2), 0.1])
    sheet.append([None, None, None, None])
    sheet.append([2, "0912", datetime(2021, 3, 4, 5, 6, 7), 3])
    sheet.append([3, "x", None, None, None, "stray"])
    book.save(path)
    return path


@pytest.mark.parametrize("reader", ["fast", "streaming"])
def test_excel_sheet_by_name_or_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    if reader == "streaming":
        monkeypatch.setenv("METRIX_EXCEL_READER", "streaming")
    path = _workbook(tmp_path / "book.xlsx")
    for sheet in ("Customers", 1, "1"):
        source = open_source(path, sheet=sheet)
        assert source.sheet == "Customers"
        assert source.header == ["id", "phone", "joined", "score"]
        got = list(source.records)
        assert [(n, c, p) for n, c, p in got[:2]] == [
            (1, ["007", "9121122333", "2020-01-02", "0.1"], None),
            (3, ["2", "0912", "2021-03-04T05:06:07", "3"], None),
        ]
        # A note in a column with no header is not a damaged row: read, ignored, counted.
        assert got[2] == (4, ["3", "x", "", ""], None)
        assert source.stats.warnings == {"values in columns with no header were ignored": 1}
        assert source.stats.blank_rows == 1


def test_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "book.xlsx")
    with pytest.raises(SourceError, match="'Notes', 'Customers'"):
        open_source(path, sheet="Clients")


def test_failure_csv_read_back_drops_report_columns_and_restores_cells(tmp_path: Path) -> None:
    text = '\ufeff_row,_stage,_error,id,phone\r\n3,validate,"bad",1,\'+98 912\r\n'
    path = write(tmp_path, "f.csv", text.encode())
    source = open_source(path)
    assert source.is_failure_file
    assert source.header == ["id", "phone"]
    assert [c for _, c, _ in source.records] == [["1", "+98 912"]]


# --- the fast reader hands over to the careful one without losing or shifting rows ---


def _careful_only(path: Path) -> list[tuple[int, list[str], str | None]]:
    from importer.edges import readers

    source = open_source(path, encoding="utf-8", delimiter=",")
    dialect = readers._Dialect(
        path, "utf-8", ",", len(source.header),
        readers.ReadStats(), readers._Position(),
    )  # fmt: skip
    return list(readers._careful_records(dialect, 2, 0))


def test_anomalies_deep_in_a_big_file_are_found_and_every_row_kept(tmp_path: Path) -> None:
    lines = [b"id,name,note"]
    for i in range(1, 12001):
        if i == 5000:
            lines.append(b'5000,multi,"two\nlines"')
        elif i == 8000:
            lines.append(b"8000,bad\xffbyte,x")
        elif i == 11000:
            lines.append(b'11000,"open quote,x')
        else:
            lines.append(b"%d,name%d,note" % (i, i))
    path = write(tmp_path, "big.csv", b"\n".join(lines) + b"\n")
    got = records(path, encoding="utf-8")
    assert got == _careful_only(path)
    problems = {n: p for n, _, p in got if p is not None}
    assert set(problems) == {8000, 11000}
    assert "line 8002" in problems[8000] and "line 11002" in problems[11000]
    assert got[4999][1] == ["5000", "multi", "two\nlines"]
    assert got[-1][:2] == (12000, ["12000", "name12000", "note"])


row_text = st.text(alphabet='ab,"\n\r\xe9', max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(row_text, min_size=1, max_size=4), max_size=30), st.booleans())
def test_fast_and_careful_readers_agree_on_any_input(rows: list[list[str]], bad_byte: bool) -> None:
    import csv as csv_module
    import io
    import tempfile

    buffer = io.StringIO()
    writer = csv_module.writer(buffer)
    writer.writerow(["a", "b", "c"])
    for row in rows:
        buffer.write(",".join(row) + "\n")  # raw, so quotes may be unbalanced
    data = buffer.getvalue().encode("utf-8")
    if bad_byte and len(data) > 10:
        data = data[:-5] + b"\xff" + data[-5:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.csv"
        path.write_bytes(data)
        assert records(path, encoding="utf-8", delimiter=",") == _careful_only(path)
