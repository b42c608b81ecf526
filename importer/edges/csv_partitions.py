"""Splitting a CSV file into byte ranges that separate readers can read on their own.

A partition is a ``Span``: a byte range starting and ending where the whole-file read
starts a record with nothing read ahead. Reading it (``open_partition``) yields exactly
the records, row numbers and read failures included, that one read of the whole file
yields for that range; the partitions' records, in order, are the whole file's.

Record starts are found by the real reader, never by scanning for newlines: while it
reads, it notes every ``rows_per_partition`` rows the physical line where the next
record starts, but only when nothing is pending (a quoted field spanning lines is
never cut, and after an unclosed quote the lines it swallowed are read again before
another start is noted). One scan of the bytes then turns those line numbers into
offsets. The read can be the one the duplicate check already makes: open the input
with ``open_source(..., marks=Marks(n))``, feed its records to the id pass, and give
the same ``Marks`` to ``plan_from_marks`` (``run --engine dask`` does).

A file is one partition (``Span(0, None, 1, 0)`` is never used: ``parts`` is empty
and ``reason`` says why) when it is compressed or inside a zip archive, when its
encoding's byte offsets are not safe to start decoding at (UTF-16, multi-byte legacy
encodings), or when it has fewer rows than one partition.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from importer.edges.readers import Marks, Source, Span, open_source

__all__ = ["CsvPlan", "Marks", "Span", "open_partition", "plan_csv", "plan_from_marks"]

_BLOCK = 1 << 20
_EOL = re.compile(rb"\r\n|\r|\n")  # the line ends of a text stream opened with newline=""


@dataclass(frozen=True)
class CsvPlan:
    """How one CSV file is read in pieces: the resolved reading options and the spans.

    ``parts`` is empty when the file is one partition; ``reason`` then says why.
    """

    path: str
    encoding: str
    delimiter: str
    header_row: int
    rows: int  # records of the whole file (blank rows are not records)
    parts: tuple[Span, ...] = field(default_factory=tuple)
    reason: str = ""


def plan_csv(
    path: str | Path,
    *,
    encoding: str = "auto",
    delimiter: str = "auto",
    header_row: int = 1,
    rows_per_partition: int = 100_000,
) -> CsvPlan:
    """Read the file once and plan its partitions (see the module docstring)."""
    marks = Marks(rows_per_partition)
    source = open_source(
        path, encoding=encoding, delimiter=delimiter, header_row=header_row, marks=marks
    )
    rows = sum(1 for _ in source.records)
    return plan_from_marks(Path(path), source, marks, header_row, rows)


def plan_from_marks(
    path: Path, source: Source, marks: Marks, header_row: int, rows: int
) -> CsvPlan:
    """The plan of ``path``, opened as ``source`` whose ``rows`` records have all been
    read with ``marks``."""
    encoding, delimiter = source.encoding or "utf-8", source.delimiter or ","
    plan = CsvPlan(str(path), encoding, delimiter, header_row, rows)
    why = _unsplittable(path, source)
    if why:
        return _single(plan, why)
    starts = [(marks.first_line, 0), *marks.points]
    offsets = line_offsets(path, [line for line, _ in starts])
    # A start noted just before the end of the file has no bytes after it.
    found = [(at, line, before) for at, (line, before) in zip(offsets, starts, strict=False)]
    found = [item for item in found if item[0] < source.size_bytes]
    if len(found) < 2:
        return _single(plan, f"it has fewer than {marks.every:,} rows to split")
    parts = tuple(
        Span(at, found[i + 1][0] if i + 1 < len(found) else None, line, before)
        for i, (at, line, before) in enumerate(found)
    )
    return CsvPlan(plan.path, encoding, delimiter, header_row, rows, parts)


def _single(plan: CsvPlan, reason: str) -> CsvPlan:
    return CsvPlan(plan.path, plan.encoding, plan.delimiter, plan.header_row, plan.rows,
                   (), reason)  # fmt: skip


def _unsplittable(path: Path, source: Source) -> str:
    if source.kind != "csv":
        return "it is a workbook"
    with open(path, "rb") as probe:
        head = probe.read(4)
    if head.startswith(b"\x1f\x8b"):
        return "it is compressed"
    if head.startswith(b"PK\x03\x04"):
        return "it is inside a zip archive"
    if not seekable_encoding(source.encoding or "utf-8"):
        return f"its encoding ({source.encoding}) cannot be decoded from a byte offset"
    return ""


def seekable_encoding(encoding: str) -> bool:
    """Whether decoding can start at any line start of a file in this encoding and read
    the same text: UTF-8 (a line end byte is never part of a character), and single-byte
    encodings whose line ends are the ASCII bytes; not UTF-16 nor multi-byte legacy
    encodings (Big5, Shift-JIS), nor stateful ones (ISO-2022, UTF-7)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    if name in ("utf-8", "utf-8-sig"):
        return True
    text = []
    for byte in range(256):
        # A fresh incremental decoder must give one character per byte, holding none
        # back: then no byte depends on the bytes before it.
        decoded = codecs.getincrementaldecoder(name)("replace").decode(bytes([byte]))
        if len(decoded) != 1:
            return False
        text.append(decoded)
    ends = [i for i, char in enumerate(text) if char in "\r\n"]
    return ends == [10, 13] and text[10] == "\n" and text[13] == "\r"


def line_offsets(path: Path, lines: list[int], block: int = _BLOCK) -> list[int]:
    """The byte offsets of the starts of the given physical lines (increasing, 1-based),
    with lines ended as a text stream opened with ``newline=""`` ends them (CRLF, CR or
    LF). Lines past the end of the file are left out."""
    offsets: list[int] = []
    wanted = iter(lines)
    want = next(wanted, None)
    while want == 1:
        offsets.append(0)
        want = next(wanted, None)
    line, base, carry = 1, 0, b""
    with open(path, "rb") as file:
        while want is not None:
            chunk = file.read(block)
            data, carry = carry + chunk, b""
            if not data:
                break
            if chunk and data.endswith(b"\r"):  # maybe the first half of a CRLF
                data, carry = data[:-1], b"\r"
            ends = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
            if line + ends < want:
                line += ends
            else:
                for match in _EOL.finditer(data):
                    line += 1
                    while want == line:
                        offsets.append(base + match.end())
                        want = next(wanted, None)
                    if want is None:
                        break
            base += len(data)
    return offsets


def open_partition(plan: CsvPlan, index: int | None) -> Source:
    """The records of one partition (``index`` into ``plan.parts``), or of the whole
    file when ``index`` is None."""
    span = None if index is None else plan.parts[index]
    return open_source(
        plan.path,
        encoding=plan.encoding,
        delimiter=plan.delimiter,
        header_row=plan.header_row,
        span=span,
    )
