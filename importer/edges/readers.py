"""Readers: CSV/TSV/TXT (optionally gzip-compressed) and Excel, as streams of text rows.

Every cell is text. Nothing here guesses a type: Excel numbers, dates and booleans are
turned into text one documented way (see ``excel_cell_text``). A row that cannot be read
properly (wrong number of fields, an unterminated quote, undecodable bytes) is yielded
with a reason instead of aborting the read, so no row silently vanishes.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from importer.core.convert import WHITESPACE
from importer.edges import encoding as encodings
from importer.edges import excel, limits, sniff, xlsx
from importer.edges.excel import EXCEL_SUFFIXES, excel_cell_text, open_excel
from importer.edges.source import (
    ENCODING_NAMES,
    ReadStats,
    Record,
    Source,
    is_failure_header,
    make_header,
    strip_report_columns,
)
from importer.errors import SourceError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "Marks",
    "ReadStats",
    "Record",
    "Source",
    "Span",
    "detect_encoding",
    "excel_cell_text",
    "is_failure_header",
    "list_sheets",
    "make_header",
    "open_source",
    "sniff_delimiter",
]

SAMPLE_BYTES = 256 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
csv.field_size_limit(limits.CSV_FIELD_BYTES.value * 1024)


def open_source(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    encoding: str = "auto",
    delimiter: str = "auto",
    header_row: int = 1,
    span: Span | None = None,
    marks: Marks | None = None,
) -> Source:
    """Open a CSV-like or Excel file; raises SourceError when it cannot be read at all.

    For a plain CSV file (not compressed, not in a zip archive): ``span`` reads only the
    records of one byte range (see ``importer.edges.csv_partitions``), and ``marks``
    records clean record starts as the records are read.
    """
    name = str(path)
    file = Path(path)
    if not file.exists():
        raise SourceError(name, "the file does not exist", "Check the path and try again.")
    if file.is_dir():
        raise SourceError(
            name, "this is a folder, not a file", "Give the path of a CSV or Excel file."
        )
    try:
        size = file.stat().st_size
        with open(file, "rb") as probe:
            head = probe.read(4096)
    except OSError as exc:
        raise SourceError(name, f"cannot open the file ({exc.strerror})") from None
    if size == 0:
        raise SourceError(
            name, "the file is empty", "Export the data again; the file has no bytes."
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise SourceError(
            name,
            "this is an old-style .xls workbook or a password-protected Excel file",
            "Remove the password, or save it as .xlsx or CSV (UTF-8) and try again.",
        )
    sniff.refuse_non_tabular(name, head)
    if head.startswith(b"PK\x03\x04"):
        member = _csv_member(file, name, sheet)
        if member is not None:
            return _open_csv(file, name, size, encoding, delimiter, header_row, member)
        return open_excel(file, name, size, sheet, header_row)
    if file.suffix.lower() in EXCEL_SUFFIXES:
        return open_excel(file, name, size, sheet, header_row)
    if span is not None and head.startswith(b"\x1f\x8b"):
        raise SourceError(name, "a compressed file cannot be read from a byte offset")
    return _open_csv(file, name, size, encoding, delimiter, header_row, span=span, marks=marks)


def list_sheets(path: str | Path) -> list[str]:
    """The worksheets of a workbook, or the CSV files of a zip archive (``--sheet all``)."""
    file = Path(path)
    if file.is_file() and zipfile.is_zipfile(file):
        members = zip_members(file, str(path))
        if members is not None:
            return members
    return excel.list_sheets(path)


# --- zip archives of CSV files ---------------------------------------------------------

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def zip_members(file: Path, name: str) -> list[str] | None:
    """The CSV files inside a zip archive, or None when the zip is a workbook."""
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            if "[Content_Types].xml" in names:
                return None
            xlsx.check_zip(archive, name)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    files = [n for n in names if not n.endswith("/") and not n.startswith("__MACOSX/")]
    tabular = [n for n in files if n.lower().endswith(CSV_SUFFIXES)]
    if not tabular:
        shown = ", ".join(files[:5]) or "nothing"
        raise SourceError(
            name,
            f"this zip archive is not an Excel workbook and holds no CSV file (it holds {shown})",
            "Unzip it and give the CSV or Excel files inside.",
        )
    return tabular


def _csv_member(file: Path, name: str, sheet: str | int | None) -> str | None:
    members = zip_members(file, name)
    if members is None:
        return None
    if sheet is None and len(members) == 1:
        return members[0]
    if isinstance(sheet, str) and sheet in members:
        return sheet
    numeric = isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdigit())
    if numeric and sheet is not None and int(sheet) < len(members):
        return members[int(sheet)]
    listed = ", ".join(f"'{m}'" for m in members[:10])
    raise SourceError(
        name,
        f"this zip archive holds {len(members)} CSV files ({listed})",
        "Read them all with --sheet all, or one with --sheet NAME.",
    )


# --- CSV -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """A file in object storage: ``open`` streams it (see ``edges.remote``)."""

    url: str
    open: Callable[[], IO[bytes]]


def open_stored_csv(
    url: str,
    opener: Callable[[], IO[bytes]],
    size: int,
    *,
    encoding: str = "auto",
    delimiter: str = "auto",
    header_row: int = 1,
) -> Source:
    """A CSV (gzip or not) in object storage, streamed through ``opener`` and read
    exactly as a local one: the same sniffing, malformed rows and line numbers."""
    with opener() as probe:
        head = probe.read(4096)
    if size == 0:
        raise SourceError(url, "the object is empty", "Export the data again; it has no bytes.")
    if head.startswith((b"\xd0\xcf\x11\xe0", b"PK\x03\x04")):
        raise SourceError(
            url,
            "Excel workbooks and zip archives are read from local disk only",
            "Copy the file locally, or store the data as CSV, Parquet or JSON Lines.",
        )
    sniff.refuse_non_tabular(url, head)
    return _open_csv(_Stored(url, opener), url, size, encoding, delimiter, header_row)


def _open_binary(file: Path | _Stored, member: str | None = None) -> tuple[IO[bytes], IO[bytes]]:
    """The byte stream (decompressed if gzip or zipped) and the stream progress is
    measured on."""
    raw: IO[bytes]
    if isinstance(file, _Stored):
        raw = file.open()
    elif member is not None:
        archive = zipfile.ZipFile(file)  # closed with the member stream below
        raw = archive.open(member)
        archive.close()  # the member stream keeps the file open until it is closed
    else:
        raw = open(file, "rb")  # noqa: SIM115 - closed by the records generator
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        unzipped = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        return unzipped, raw
    raw.seek(0)
    return raw, raw


def detect_encoding(sample: bytes, name: str = "") -> str:
    """The encoding a sample is in (see ``importer.edges.encoding``)."""
    return encodings.detect(sample, name, at_end=False).encoding


def _later_sample(stream: IO[bytes], first: bytes) -> tuple[bytes, int]:
    """After a pure-ASCII first sample: a sample from the first line holding a byte
    above 127 (and that line's number), or (b"", 0) when the whole file is ASCII."""
    consumed = first.count(b"\n")  # newlines before ``carry`` (which holds none)
    carry = first[first.rfind(b"\n") + 1 :]
    while True:
        try:
            chunk = stream.read(4 * 1024 * 1024)
        except _DAMAGED:  # the reader reports it as a failure row where it happens
            return b"", 0
        if not chunk:
            return b"", 0
        block = carry + chunk
        if block.isascii():
            consumed += chunk.count(b"\n")
            carry = block[block.rfind(b"\n") + 1 :][-65536:]  # a long line: keep its end
            continue
        index = next(i for i, byte in enumerate(block) if byte >= 0x80)
        start = block.rfind(b"\n", 0, index) + 1
        line = consumed + block.count(b"\n", 0, start)
        try:
            sample = block[start:] + stream.read(SAMPLE_BYTES)
        except _DAMAGED:
            sample = block[start:]
        return sample[:SAMPLE_BYTES], line + 1


def sniff_delimiter(lines: list[str]) -> str:
    """The candidate (, ; tab |) that splits the first lines most consistently."""
    best, best_score = ",", 0
    for candidate in (",", ";", "\t", "|"):
        try:
            counts = [len(row) - 1 for row in csv.reader(lines, delimiter=candidate) if row]
        except csv.Error:  # a field over the limit: the header reader reports it
            continue
        if not counts:
            continue
        score = min(counts)
        if score > best_score:
            best, best_score = candidate, score
    return best


class _Lines:
    """Physical lines for csv.reader, remembering the ones each record consumed.

    The memory lets a record that swallowed following lines through an unterminated
    quote be taken apart again: the bad line is reported, the rest are read anew.
    """

    def __init__(self, text: IO[str]) -> None:
        self._lines = iter(text)
        self.pending: deque[str] = deque()
        self.consumed: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.pending.popleft() if self.pending else next(self._lines)
        self.consumed.append(line)
        return line


def _open_csv(
    file: Path | _Stored,
    name: str,
    size: int,
    encoding: str,
    delimiter: str,
    header_row: int,
    member: str | None = None,
    span: Span | None = None,
    marks: Marks | None = None,
) -> Source:
    stream, raw = _open_binary(file, member)
    note = ""
    try:
        sample = stream.read(SAMPLE_BYTES)
        if member is not None and isinstance(file, Path):
            size = max(size, _member_size(file, member))
        sniff.refuse_non_tabular(name, sample[:4096])
        _refuse_binary(name, sample, encoding)
        detected = encoding == "auto"
        if detected:
            encoding, note = _detect(stream, sample, name)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SourceError(name, f"cannot read the compressed file ({exc})") from None
    finally:
        raw.close()
    head_lines = sample.decode(encoding, errors="replace").splitlines(keepends=True)
    dialect = _Dialect(file, encoding, ",", 0, ReadStats(), _Position(), member)
    if delimiter == "auto":
        first = _first_line_with_data(head_lines)
        sample_lines = head_lines[first + header_row - 1 : first + header_row + 50]
        delimiter = sniff_delimiter(sample_lines[:-1] if len(sample_lines) > 1 else sample_lines)
    dialect.delimiter = delimiter
    header_cells, header_lines = _read_header(dialect, name, header_row)
    header, display = make_header(header_cells)
    if _SURROGATE.search("".join(header_cells)):
        raise SourceError(
            name,
            f"the header is not valid {ENCODING_NAMES.get(encoding, encoding)} text",
            "Give the right encoding with --encoding (for example windows-1256 or utf-8).",
        )
    failure_file = is_failure_header(header)
    source = Source(
        path=name if member is None else f"{name}:{member}",
        kind="csv",
        header=header,
        display_header=display,
        records=iter(()),
        encoding=encoding,
        encoding_detected=detected,
        encoding_note=note,
        delimiter=delimiter,
        size_bytes=size,
        is_failure_file=failure_file,
        bytes_read=dialect.position.tell,
    )
    dialect.width, dialect.stats = len(header), source.stats
    dialect.marks = marks
    if marks is not None:
        marks.first_line = header_lines + 1
    if span is None:
        records = _csv_records(dialect, header_lines + 1)
    else:
        dialect.span = span
        records = _csv_records(dialect, span.line, span.rows)
    if failure_file:
        source.header, source.display_header, records = strip_report_columns(
            header, display, records
        )
    source.records = records
    return source


def _refuse_binary(name: str, sample: bytes, encoding: str) -> None:
    utf16 = encoding.lower().startswith("utf-16") or sample.startswith(
        (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    )
    if b"\x00" in sample[:4096] and not utf16:
        raise SourceError(
            name,
            "this is not a text spreadsheet (it contains binary data)",
            "Give a CSV, TSV or Excel (.xlsx) file.",
        )


def _member_size(file: Path, member: str) -> int:
    with zipfile.ZipFile(file) as archive:
        return archive.getinfo(member).file_size


def _detect(stream: IO[bytes], sample: bytes, name: str) -> tuple[str, str]:
    """The encoding by evidence; a pure-ASCII head is judged again at its first
    non-ASCII line so a legacy export is not read as UTF-8 on the strength of its
    first 256 KB alone."""
    at_end = len(sample) < SAMPLE_BYTES
    if at_end or not sample.isascii():
        verdict = encodings.detect(sample, name, at_end=at_end)
        return verdict.encoding, verdict.note
    later, line = _later_sample(stream, sample)
    if not later:
        return "utf-8", ""
    verdict = encodings.detect(later, name, at_end=len(later) < SAMPLE_BYTES)
    shown = ENCODING_NAMES.get(verdict.encoding, verdict.encoding)
    note = f"the first non-ASCII text is on line {line:,}; it reads as {shown}"
    return verdict.encoding, "; ".join(filter(None, (note, verdict.note)))


def _first_line_with_data(lines: list[str]) -> int:
    """Blank lines above the header (some exports start with them) do not count."""
    for index, line in enumerate(lines):
        if line.strip(WHITESPACE):
            return index
    return 0


# Decoding errors, counted by our codec error handler (it otherwise behaves like
# surrogateescape): the fast reader checks the count instead of scanning every row.
_DECODE_ERRORS = [0]


def _count_and_escape(error: UnicodeError) -> tuple[str | bytes, int]:
    _DECODE_ERRORS[0] += 1
    return _SURROGATE_ESCAPE(error)


_SURROGATE_ESCAPE = codecs.lookup_error("surrogateescape")


codecs.register_error("metrix-escape", _count_and_escape)


@dataclass(frozen=True)
class Span:
    """A byte range of a plain CSV file, read on its own.

    ``start`` is the offset of physical line ``line``, where the whole-file read starts
    a record with ``rows`` data rows before it and nothing read ahead; ``end`` is such
    an offset too (None: the end of the file). Reading the range then yields exactly
    the records, with the same row numbers, that the whole-file read yields there.
    """

    start: int
    end: int | None
    line: int
    rows: int


class Marks:
    """Clean record starts seen by the record readers, every ``every`` data rows:
    (physical line, data rows before it), where no line has been read ahead."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.due = every  # the row count at which the next start is recorded
        self.first_line = 1  # the first data line (set when the header is read)
        self.points: list[tuple[int, int]] = []

    def add(self, line: int, rows: int) -> int:
        if not self.points or line > self.points[-1][0]:
            self.points.append((line, rows))
        self.due = rows + self.every
        return self.due


_NEVER = 1 << 62  # no marks wanted: a row count never reached


def _mark(marks: Marks | None, line: int, rows: int, due: int, clean: bool = True) -> int:
    """Note a record start if one is due and it is clean; the row count to try next at."""
    if rows < due or marks is None or not clean:
        return due
    return marks.add(line, rows)


class _Range(io.RawIOBase):
    """The bytes of a file up to a span's end, then end of file."""

    def __init__(self, raw: IO[bytes], span: Span) -> None:
        self._raw = raw
        self._left = (span.end or 0) - span.start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._left <= 0:
            return 0
        with memoryview(buffer) as view:
            got = self._raw.readinto(view[: self._left])  # type: ignore[attr-defined]
        got = int(got or 0)
        self._left -= got
        return got


class _Position:
    """Bytes read of the file being read (for progress), across reader switches."""

    def __init__(self) -> None:
        self.raw: IO[bytes] | None = None

    def tell(self) -> int:
        try:
            return self.raw.tell() if self.raw is not None and not self.raw.closed else 0
        except (OSError, ValueError):
            return 0


@dataclass
class _Dialect:
    """What both CSV record readers need to know."""

    file: Path | _Stored
    encoding: str
    delimiter: str
    width: int
    stats: ReadStats
    position: _Position
    member: str | None = None  # the CSV inside a zip archive
    span: Span | None = None  # read only this byte range
    marks: Marks | None = None  # record clean record starts here

    def open_text(
        self, first_line: int, errors: str = "metrix-escape"
    ) -> tuple[IO[str], IO[bytes]] | None:
        """The text from physical line ``first_line`` on; None when the file ends first."""
        span, encoding, skip = self.span, self.encoding, first_line - 1
        if span is None:
            stream, raw = _open_binary(self.file, self.member)
        else:
            assert isinstance(self.file, Path), "spans are planned for local files only"
            raw = open(self.file, "rb")  # noqa: SIM115 - closed by the records generator
            raw.seek(span.start)
            stream = raw if span.end is None else io.BufferedReader(_Range(raw, span))
            # Past the first bytes a BOM is not stripped: U+FEFF opening a line is text.
            encoding = "utf-8" if encoding == "utf-8-sig" else encoding
            skip = first_line - span.line
        self.position.raw = raw
        text = io.TextIOWrapper(stream, encoding=encoding, errors=errors, newline="")
        for _ in range(skip):
            if not text.readline():
                raw.close()
                return None
        return text, raw


def _too_long(exc: csv.Error) -> bool:
    return "field limit" in str(exc)


class _LineTooLong(csv.Error):
    """A line past the field limit, stopped before it is read whole."""


def _bounded_lines(text: IO[str]) -> Iterator[str]:
    """Lines, never reading one longer than the field limit into memory: past it, the
    csv module's own "field larger than field limit" is raised."""
    limit = limits.CSV_FIELD_BYTES.value * 1024
    while line := text.readline(limit + 2):
        if len(line) > limit and not line.endswith(("\n", "\r")):
            raise _LineTooLong(f"field larger than field limit ({limit})")
        yield line


def _read_header(dialect: _Dialect, name: str, header_row: int) -> tuple[list[str], int]:
    """The header row's cells and how many physical lines it and the lines above take.

    Blank lines above the first line with data are skipped (some exports start so)."""
    opened = dialect.open_text(1, errors="surrogateescape")
    assert opened is not None
    text, raw = opened
    try:
        reader = csv.reader(_bounded_lines(text), delimiter=dialect.delimiter, strict=False)
        cells: list[str] | None = None
        counted = 0
        while counted < header_row:
            try:
                cells = next(reader)
            except StopIteration:
                raise SourceError(
                    name,
                    f"the file has fewer than {header_row} lines, so there is no header row",
                    "Check `header_row:` in the mapping (or --header-row).",
                ) from None
            except csv.Error as exc:
                line = reader.line_num + isinstance(exc, _LineTooLong)
                if _too_long(exc):
                    raise limits.CSV_FIELD_BYTES.refuse(
                        name, f"line {line}, the header, has a field too long to be a column name"
                    ) from None
                raise SourceError(name, f"line {line}: the header cannot be read ({exc})") from None
            if counted or any(cell.strip(WHITESPACE) for cell in cells):
                counted += 1
        assert cells is not None
        return cells, reader.line_num
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(name, f"cannot read the file ({exc})") from None
    finally:
        raw.close()


def _csv_records(dialect: _Dialect, first_line: int, rows: int = 0) -> Iterator[Record]:
    """Records from ``first_line`` on (``rows`` data rows before it): the fast reader
    while the file is plain, the careful one from the first record that is not (spans
    lines, does not parse, has undecodable bytes) to the end."""
    handoff = yield from _fast_records(dialect, first_line, rows)
    if handoff is not None:
        line, number = handoff
        yield from _careful_records(dialect, line, number)


def _fast_records(
    dialect: _Dialect, first_line: int, rows: int
) -> Generator[Record, None, tuple[int, int] | None]:
    """csv.reader straight over the file: one C call per record.

    Returns (line, row number so far) where the careful reader must take over, or None
    at the end of the file. Nothing is yielded for the record it hands over.
    """
    errors_before = _DECODE_ERRORS[0]  # before opening: skipping lines decodes too
    opened = dialect.open_text(first_line)
    if opened is None:
        return None
    text, raw = opened
    width, stats = dialect.width, dialect.stats
    # strict: a bare quote inside a quoted field hands the record to the careful
    # reader, which reports it instead of reading it changed.
    reader = csv.reader(text, delimiter=dialect.delimiter, strict=True)
    number = rows
    seen = 0  # lines consumed so far
    marks = dialect.marks
    due = _NEVER if marks is None else marks.due
    try:
        while True:
            if number >= due:
                due = _mark(marks, first_line + seen, number, due)
            try:
                row = next(reader)
            except StopIteration:
                return None
            except csv.Error:
                return first_line + seen, number
            except _DAMAGED as exc:
                yield number + 1, [], _damaged(first_line + seen, exc)
                return None
            used = reader.line_num - seen
            if used != 1 or _DECODE_ERRORS[0] != errors_before:
                return first_line + seen, number
            seen += 1
            number += 1
            if len(row) == width:
                if any(row):
                    yield number, row, None
                else:
                    stats.blank_rows += 1
            elif not row or (len(row) < width and not any(c.strip(WHITESPACE) for c in row)):
                stats.blank_rows += 1
            else:
                yield number, row, _width_problem(first_line + seen - 1, len(row), width)
    finally:
        raw.close()


# What a truncated or corrupt compressed file raises part-way through.
_DAMAGED = (OSError, EOFError, zlib.error)


def _damaged(line: int, exc: BaseException) -> str:
    return (
        f"line {line}: the file is damaged or cut short from here on "
        f"({type(exc).__name__}: {exc}); the rows after this point could not be read. "
        "Export or copy the file again"
    )


def _width_problem(line: int, found: int, width: int) -> str:
    return f"line {line}: has {found} fields but the header has {width}" + (
        " (is a delimiter inside an unquoted cell?)" if found > width else ""
    )


def _careful_records(dialect: _Dialect, first_line: int, number: int) -> Iterator[Record]:
    """Line-aware reading: recovers from unterminated quotes and reports bad bytes."""
    opened = dialect.open_text(first_line)
    if opened is None:
        return
    text, raw = opened
    lines = _Lines(text)
    reader = csv.reader(lines, delimiter=dialect.delimiter, strict=False)
    width, stats, encoding, delimiter = (
        dialect.width,
        dialect.stats,
        dialect.encoding,
        dialect.delimiter,
    )
    line_no = first_line - 1  # physical line of the last line consumed
    marks = dialect.marks
    due = _NEVER if marks is None else marks.due
    try:
        while True:
            # A start is noted only where no line is pending: none is read ahead.
            due = _mark(marks, line_no + 1, number, due, clean=not lines.pending)
            lines.consumed.clear()
            start = line_no + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except _DAMAGED as exc:
                yield number + 1, [], _damaged(start, exc)
                return
            except csv.Error as exc:
                number += 1
                consumed = list(lines.consumed)
                line_no += len(consumed)
                if _too_long(exc):
                    yield number, [_shortened(consumed)], _field_too_long(start)
                    continue
                if len(consumed) > 1:  # an open quote swallowed the lines after it
                    lines.pending.extendleft(reversed(consumed[1:]))
                    line_no = start
                    reason = f'line {start}: a quote (") is opened but never closed'
                else:
                    reason = f"line {start}: cannot be read as CSV ({exc})"
                yield number, _split_plain(consumed[:1]), reason
                continue
            consumed = lines.consumed
            line_no += len(consumed)
            number += 1
            multiline = len(consumed) > 1
            if len(row) == width and not (multiline and _quote_left_open(consumed, delimiter)):
                if not multiline and '"' in consumed[0] and _quote_left_open(consumed, delimiter):
                    yield number, _split_plain(consumed), _bare_quote(start)
                elif not any(row):
                    stats.blank_rows += 1
                elif _SURROGATE.search(consumed[0]) or (
                    multiline and _SURROGATE.search("".join(consumed))
                ):
                    yield number, _unescape(row), _undecodable(start, encoding)
                else:
                    yield number, row, None
                continue
            if not row or (len(row) < width and not any(c.strip(WHITESPACE) for c in row)):
                stats.blank_rows += 1
                continue
            if multiline and '"' in consumed[0]:
                # The record spans lines and has the wrong width: the likeliest cause is
                # a quote never closed. Report its first line, read the rest again.
                lines.pending.extendleft(reversed(consumed[1:]))
                line_no = start
                reason = f'line {start}: a quote (") is opened but never closed'
                yield number, _split_plain(consumed[:1]), reason
                continue
            if _SURROGATE.search("".join(consumed)):
                row = _unescape(row)
            yield number, row, _width_problem(start, len(row), width)
    finally:
        raw.close()


def _bare_quote(line: int) -> str:
    return (
        f'line {line}: a quote (") inside a quoted field is not doubled, so the field '
        'cannot be read exactly; write it as "" (as in "The ""Best"" Shop")'
    )


def _field_too_long(line: int) -> str:
    limit = limits.CSV_FIELD_BYTES
    return (
        f"line {line}: has a field longer than the limit of {limit.value:,} KB; "
        f"if it is genuine, raise the limit: {limit.env}={limit.value * 4}"
    )


def _shortened(lines: list[str]) -> str:
    text = "".join(lines).rstrip("\r\n")
    return text if len(text) <= 200 else text[:200] + "…"


def _quote_left_open(lines: list[str], delimiter: str) -> bool:
    """Whether a record spanning several lines ended inside quotes (at the end of file).

    The lenient reader returns such a record as if the quote had closed; a strict
    re-read of its few lines tells the two apart. Multi-line records are rare, so
    the cost stays off the common path.
    """
    try:
        for _ in csv.reader(lines, delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        return True
    return False


def _split_plain(lines: list[str]) -> list[str]:
    return ["".join(lines).rstrip("\r\n")]


def _unescape(row: list[str]) -> list[str]:
    # Undecodable bytes show as U+FFFD in the failure report, not as lone surrogates
    # that would make the report itself unwritable.
    return [_SURROGATE.sub("\ufffd", cell) for cell in row]


def _undecodable(line: int, encoding: str) -> str:
    name = ENCODING_NAMES.get(encoding, encoding)
    return (
        f"line {line}: has bytes that are not valid {name} text; "
        "fix the encoding with --encoding if many rows show this"
    )
