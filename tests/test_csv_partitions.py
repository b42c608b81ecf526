"""CSV byte-range partitions read exactly what one read of the whole file reads."""

from __future__ import annotations

import codecs
import gzip
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.edges.csv_partitions import (
    CsvPlan,
    line_offsets,
    open_partition,
    plan_csv,
    seekable_encoding,
)
from importer.edges.readers import Record, open_source

# Persian letters Windows-1256 has, so every generated file is writable in it too.
_CHARS = st.sampled_from([*"ab z01,;\t|\"'\n\r", "\r\n", "علي", "\ufeff", "ژ", " "])
_CELL = st.lists(_CHARS, max_size=6).map("".join)


def _quote(cell: str, delimiter: str) -> str:
    if any(c in cell for c in (delimiter, '"', "\n", "\r")) or cell != cell.strip():
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """(file bytes, delimiter option, encoding option): quoted line breaks, delimiters
    and doubled quotes in quotes, BOMs, CRLF/LF/CR, blank lines, short and long rows,
    broken lines (a bare quote, a quote never closed), a byte that is not text, and
    blank lines above the header."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    width = draw(st.integers(1, 4))
    lines = [delimiter.join(f"c{i}" for i in range(width))]
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "short", "long", "broken"]))
        if kind == "blank":
            lines.append("")
            continue
        if kind == "broken":
            lines.append(draw(st.sampled_from(['x,"open', 'a"b"c,d', '"x"y', '"', 'q,"p""'])))
            continue
        size = {"row": width, "short": max(width - 1, 0), "long": width + 1}[kind]
        cells = draw(st.lists(_CELL, min_size=size, max_size=size))
        lines.append(delimiter.join(_quote(c, delimiter) for c in cells))
    # Some exports start with blank lines above the header.
    text = end * draw(st.integers(0, 2)) + end.join(lines) + draw(st.sampled_from([end, ""]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1256"]))
    data = text.encode(encoding, errors="replace")
    damaged = draw(st.booleans())
    if damaged:  # a byte that is not UTF-8 (nor anything in cp1256)
        data = data.replace(b"z", b"\x81", 1)
    # Detection is tested elsewhere; here it must not refuse a generated file.
    option = encoding if damaged or encoding == "cp1256" else "auto"
    return data, draw(st.sampled_from(["auto", delimiter])), option


def _read_all(plan: CsvPlan) -> tuple[list[Record], int]:
    records: list[Record] = []
    blank = 0
    indexes: list[int | None] = list(range(len(plan.parts))) or [None]
    for index in indexes:
        source = open_partition(plan, index)
        records.extend(source.records)
        blank += source.stats.blank_rows
    return records, blank


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.integers(1, 4))
def test_partitions_read_exactly_what_one_read_reads(
    generated: tuple[bytes, str, str], every: int
) -> None:
    data, delimiter, encoding = generated
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.csv"
        path.write_bytes(data)
        whole = open_source(path, delimiter=delimiter, encoding=encoding)
        expected = list(whole.records)
        plan = plan_csv(path, delimiter=delimiter, encoding=encoding, rows_per_partition=every)
        got, blank = _read_all(plan)
    assert got == expected
    assert blank == whole.stats.blank_rows
    assert plan.rows == len(expected)
    for first, second in zip(plan.parts, plan.parts[1:], strict=False):
        assert first.end == second.start
        assert first.rows < second.rows


def _write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_plain_file_is_split_every_n_rows(tmp_path: Path) -> None:
    rows = "".join(f'{i},"line one\nline two",{i * 2}\n' for i in range(1, 101))
    path = _write(tmp_path, ("id,note,n\n" + rows).encode())
    plan = plan_csv(path, rows_per_partition=10)
    assert [part.rows for part in plan.parts] == list(range(0, 100, 10))
    assert [part.line for part in plan.parts] == list(range(2, 200, 20))
    assert plan.parts[-1].end is None
    first = list(open_partition(plan, 0).records)
    assert [row for row, _, _ in first] == list(range(1, 11))
    assert first[0][1] == ["1", "line one\nline two", "2"]
    last = list(open_partition(plan, 9).records)
    assert [row for row, _, _ in last] == list(range(91, 101))


def test_a_quote_never_closed_makes_the_rest_one_partition(tmp_path: Path) -> None:
    good = "".join(f"{i},x\n" for i in range(1, 21))
    bad = 'broken,"never closed\n' + "".join(f"{i},y\n" for i in range(21, 41))
    path = _write(tmp_path, ("id,v\n" + good + bad).encode())
    plan = plan_csv(path, rows_per_partition=5)
    # No start after the broken row is taken: the lines its open quote swallowed are
    # read again one by one, and nothing is cut while they are pending.
    assert [part.rows for part in plan.parts] == [0, 5, 10, 15, 20]
    tail = list(open_partition(plan, 4).records)
    assert tail[0] == (
        21,
        ['broken,"never closed'],
        'line 22: a quote (") is opened but never closed',
    )
    assert tail[-1][:2] == (41, ["40", "y"])
    assert len(tail) == 21


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        ("id\n1\n2\n3\n".encode("utf-16"), "in.csv", "encoding (utf-16)"),
        (gzip.compress(b"id\n1\n2\n3\n", mtime=0), "in.csv.gz", "compressed"),
        (b"id\n1\n", "in.csv", "fewer than 1 rows"),
    ],
)
def test_files_that_cannot_be_split_are_one_partition(
    tmp_path: Path, data: bytes, name: str, reason: str
) -> None:
    path = _write(tmp_path, data, name)
    plan = plan_csv(path, rows_per_partition=1)
    assert plan.parts == ()
    assert reason in plan.reason
    records, _ = _read_all(plan)
    assert records == list(open_source(path).records)


def test_a_byte_order_mark_is_stripped_only_at_the_start(tmp_path: Path) -> None:
    path = _write(tmp_path, codecs.BOM_UTF8 + "id\n1\n\ufeff2\n".encode())
    plan = plan_csv(path, rows_per_partition=1)
    assert plan.encoding == "utf-8-sig"
    assert list(open_partition(plan, 1).records) == [(2, ["\ufeff2"], None)]


@pytest.mark.parametrize(
    ("encoding", "safe"),
    [
        ("utf-8", True),
        ("utf-8-sig", True),
        ("cp1256", True),
        ("windows-1252", True),
        ("latin-1", True),
        ("utf-16", False),
        ("big5", False),
        ("shift_jis", False),
        ("iso2022_jp", False),
        ("utf-7", False),
        ("cp500", False),  # EBCDIC: a line end is not the byte 10
        ("no-such-codec", False),
    ],
)
def test_which_encodings_can_be_read_from_a_byte_offset(encoding: str, safe: bool) -> None:
    assert seekable_encoding(encoding) is safe


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "\n", "\r", "\r\n", "bc"]), max_size=30).map("".join),
       st.integers(1, 5))  # fmt: skip
def test_line_offsets_end_lines_as_text_streams_do(text: str, block: int) -> None:
    starts = [0] + [m.end() for m in re.finditer("\r\n|\r|\n", text)]
    wanted = list(range(1, len(starts) + 3))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lines.txt"
        path.write_bytes(text.encode())
        assert line_offsets(path, wanted, block) == starts
