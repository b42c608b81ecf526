"""Readers: CSV/TSV/TXT (optionally gzip-compressed) and Excel, as streams of text rows.

Every cell is text. Nothing here guesses a type: Excel numbers, dates and booleans are
turned into text one documented way (see ``excel_cell_text``). A row that cannot be read
properly (wrong number of fields, an unterminated quote, undecodable bytes) is yielded
with a reason instead of aborting the read, so no row silently vanishes.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import io
import os
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any, cast

from importer.core.convert import WHITESPACE
from importer.core.messages import REPORT_COLUMNS
from importer.edges.report import restore
from importer.errors import SourceError

# (data row number, cells, read problem or None). Data rows are numbered from 1 after
# the header; blank rows take a number too, so the number plus the header's row is the
# spreadsheet's own row number.
Record = tuple[int, list[str], str | None]

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
SAMPLE_BYTES = 256 * 1024
# Whole-sheet (fast) Excel reading is used up to this file size; larger workbooks are
# streamed row by row with openpyxl so memory stays bounded.
FAST_EXCEL_MAX_BYTES = 40 * 1024 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
_ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (with BOM)",
    "utf-16": "UTF-16",
    "cp1256": "Windows-1256",
    "cp1252": "Windows-1252",
    "latin-1": "Latin-1",
}


@dataclass
class ReadStats:
    """What the reader saw besides data rows."""

    blank_rows: int = 0


@dataclass
class Source:
    """An opened input: its header and a one-shot stream of its records."""

    path: str
    kind: str  # "csv" | "excel"
    header: list[str]  # unique names used by the mapping ("name", "name#2")
    display_header: list[str]  # the header cells as written, for the failure CSV
    records: Iterator[Record]
    encoding: str | None = None
    encoding_detected: bool = False
    delimiter: str | None = None
    sheet: str | None = None
    size_bytes: int = 0
    total_rows: int | None = None  # known up front for Excel
    is_failure_file: bool = False
    stats: ReadStats = field(default_factory=ReadStats)
    bytes_read: Callable[[], int] = lambda: 0

    def describe(self) -> str:
        """One line a person can check: what was read, and how."""
        if self.kind == "excel":
            return f"{self.path}: Excel, sheet '{self.sheet}'"
        name = _ENCODING_NAMES.get(self.encoding or "", self.encoding or "?")
        how = "detected" if self.encoding_detected else "given"
        shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
        return (
            f"{self.path}: CSV, encoding {name} ({how}), "
            f"delimiter {shown.get(self.delimiter or '', repr(self.delimiter))}"
        )


def open_source(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    encoding: str = "auto",
    delimiter: str = "auto",
    header_row: int = 1,
) -> Source:
    """Open a CSV-like or Excel file; raises SourceError when it cannot be read at all."""
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
            head = probe.read(8)
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
    if head.startswith(b"PK\x03\x04") or file.suffix.lower() in EXCEL_SUFFIXES:
        return _open_excel(file, name, size, sheet, header_row)
    return _open_csv(file, name, size, encoding, delimiter, header_row)


# --- CSV -----------------------------------------------------------------------------


def _open_binary(file: Path) -> tuple[IO[bytes], IO[bytes]]:
    """The byte stream (decompressed if gzip) and the raw file (for progress)."""
    raw: IO[bytes] = open(file, "rb")  # noqa: SIM115 - closed by the records generator
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        unzipped = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        return unzipped, raw
    raw.seek(0)
    return raw, raw


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM), Windows-1256 or Windows-1252.

    Legacy Persian exports are Windows-1256; Western ones Windows-1252. They share no
    reliable marker, so the bytes decide: Persian letters come in runs of high bytes
    and include bytes Windows-1252 does not define (پ چ ژ گ), while Western text has
    isolated accented letters between ASCII ones.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    high = [i for i, byte in enumerate(sample) if byte >= 0x80]
    if any(sample[i] in (0x81, 0x8D, 0x8E, 0x90) for i in high):
        return "cp1256"
    positions = set(high)
    paired = sum(1 for i in high if i - 1 in positions or i + 1 in positions)
    return "cp1256" if paired > len(high) / 2 else "cp1252"


def sniff_delimiter(lines: list[str]) -> str:
    """The candidate (, ; tab |) that splits the first lines most consistently."""
    best, best_score = ",", 0
    for candidate in (",", ";", "\t", "|"):
        counts = [len(row) - 1 for row in csv.reader(lines, delimiter=candidate) if row]
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
    file: Path, name: str, size: int, encoding: str, delimiter: str, header_row: int
) -> Source:
    stream, raw = _open_binary(file)
    try:
        sample = stream.read(SAMPLE_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raw.close()
        raise SourceError(name, f"cannot read the compressed file ({exc})") from None
    detected = encoding == "auto"
    if detected:
        encoding = detect_encoding(sample)
    if b"\x00" in sample[:4096] and not encoding.startswith("utf-16"):
        raw.close()
        raise SourceError(
            name,
            "this is not a text spreadsheet (it contains binary data)",
            "Give a CSV, TSV or Excel (.xlsx) file.",
        )
    head_lines = sample.decode(encoding, errors="replace").splitlines(keepends=True)
    raw.close()
    if delimiter == "auto":
        sample_lines = head_lines[header_row - 1 : header_row + 50]
        delimiter = sniff_delimiter(sample_lines[:-1] if len(sample_lines) > 1 else sample_lines)
    header_cells, header_lines = _read_header(file, name, encoding, delimiter, header_row)
    header, display = make_header(header_cells)
    if _SURROGATE.search("".join(header_cells)):
        raise SourceError(
            name,
            f"the header is not valid {_ENCODING_NAMES.get(encoding, encoding)} text",
            "Give the right encoding with --encoding (for example windows-1256 or utf-8).",
        )
    failure_file = is_failure_header(header)
    position = _Position()
    source = Source(
        path=name,
        kind="csv",
        header=header,
        display_header=display,
        records=iter(()),
        encoding=encoding,
        encoding_detected=detected,
        delimiter=delimiter,
        size_bytes=size,
        is_failure_file=failure_file,
        bytes_read=position.tell,
    )
    dialect = _Dialect(file, encoding, delimiter, len(header), source.stats, position)
    records = _csv_records(dialect, header_lines + 1)
    if failure_file:
        source.header, source.display_header, records = _strip_report_columns(
            header, display, records
        )
    source.records = records
    return source


# Decoding errors, counted by our codec error handler (it otherwise behaves like
# surrogateescape): the fast reader checks the count instead of scanning every row.
_DECODE_ERRORS = [0]


def _count_and_escape(error: UnicodeError) -> tuple[str | bytes, int]:
    _DECODE_ERRORS[0] += 1
    return _SURROGATE_ESCAPE(error)


_SURROGATE_ESCAPE = codecs.lookup_error("surrogateescape")


codecs.register_error("metrix-escape", _count_and_escape)


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

    file: Path
    encoding: str
    delimiter: str
    width: int
    stats: ReadStats
    position: _Position

    def open_text(self, first_line: int) -> tuple[IO[str], IO[bytes]] | None:
        """The text from physical line ``first_line`` on; None when the file ends first."""
        stream, raw = _open_binary(self.file)
        self.position.raw = raw
        text = io.TextIOWrapper(stream, encoding=self.encoding, errors="metrix-escape", newline="")
        for _ in range(first_line - 1):
            if not text.readline():
                raw.close()
                return None
        return text, raw


def _read_header(
    file: Path, name: str, encoding: str, delimiter: str, header_row: int
) -> tuple[list[str], int]:
    """The header row's cells and how many physical lines it and the lines above take."""
    stream, raw = _open_binary(file)
    try:
        text = io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline="")
        reader = csv.reader(text, delimiter=delimiter, strict=False)
        cells: list[str] | None = None
        for _ in range(header_row):
            try:
                cells = next(reader)
            except StopIteration:
                raise SourceError(
                    name,
                    f"the file has fewer than {header_row} lines, so there is no header row",
                    "Check `header_row:` in the mapping (or --header-row).",
                ) from None
            except csv.Error as exc:
                raise SourceError(name, f"the header line cannot be read ({exc})") from None
        assert cells is not None
        return cells, reader.line_num
    finally:
        raw.close()


def _csv_records(dialect: _Dialect, first_line: int) -> Iterator[Record]:
    """Records from ``first_line`` on: the fast reader while the file is plain, the
    careful one from the first record that is not (spans lines, does not parse, has
    undecodable bytes) to the end."""
    handoff = yield from _fast_records(dialect, first_line)
    if handoff is not None:
        line, number = handoff
        yield from _careful_records(dialect, line, number)


def _fast_records(
    dialect: _Dialect, first_line: int
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
    reader = csv.reader(text, delimiter=dialect.delimiter, strict=False)
    number = 0
    seen = 0  # lines consumed so far
    try:
        while True:
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
    try:
        while True:
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
                if not any(row):
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
    name = _ENCODING_NAMES.get(encoding, encoding)
    return (
        f"line {line}: has bytes that are not valid {name} text; "
        "fix the encoding with --encoding if many rows show this"
    )


def make_header(cells: list[str]) -> tuple[list[str], list[str]]:
    """Unique, trimmed header names; blank ones become ``column_N``, repeats ``name#2``."""
    display = [cell.strip(WHITESPACE) for cell in cells]
    seen: dict[str, int] = {}
    names: list[str] = []
    for position, cell in enumerate(display, start=1):
        name = cell or f"column_{position}"
        count = seen.get(name, 0) + 1
        seen[name] = count
        names.append(name if count == 1 else f"{name}#{count}")
    return names, display


def is_failure_header(header: list[str]) -> bool:
    """Whether a header is that of a failure CSV written by this tool."""
    return header[:3] == ["_row", "_stage", "_error"]


def _strip_report_columns(
    header: list[str], display: list[str], records: Iterator[Record]
) -> tuple[list[str], list[str], Iterator[Record]]:
    """Read a failure CSV back as the original data: drop report columns, undo neutralising."""
    keep = [i for i, name in enumerate(header) if name not in REPORT_COLUMNS]

    def restored() -> Iterator[Record]:
        for number, cells, problem in records:
            if problem is None:
                yield number, [restore(cells[i]) for i in keep], None
            else:
                yield number, [restore(c) for c in cells], problem

    return [restore(header[i]) for i in keep], [restore(display[i]) for i in keep], restored()


# --- Excel ---------------------------------------------------------------------------


def excel_cell_text(value: Any) -> str:
    """One documented text form per Excel cell type.

    Numbers keep their exact text (9121122333, not 9121122333.0; 0.1, not
    0.1000000001); dates become ISO text (date-only when the time is midnight);
    booleans become true/false; empty cells become "".
    """
    convert = _CELL_TEXT.get(type(value))
    if convert is not None:
        return convert(value)
    if value is None:
        return ""
    return str(value)


def _float_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _datetime_text(value: datetime) -> str:
    if value.time() == time(0):
        return value.date().isoformat()
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


# By exact type: one dictionary look-up per cell instead of a chain of isinstance.
_CELL_TEXT: dict[type, Callable[[Any], str]] = {
    str: str,
    float: _float_text,
    int: str,
    bool: lambda value: "true" if value else "false",
    datetime: _datetime_text,
    date: date.isoformat,
    time: time.isoformat,
    timedelta: str,
}


def list_sheets(path: str | Path) -> list[str]:
    """The worksheet names of a workbook, in order (for ``--sheet all``)."""
    name = str(path)
    file = Path(path)
    if not file.exists():
        raise SourceError(name, "the file does not exist", "Check the path and try again.")
    if file.suffix.lower() not in EXCEL_SUFFIXES and not zipfile.is_zipfile(file):
        raise SourceError(name, "--sheet all needs an Excel workbook (.xlsx)")
    import python_calamine as calamine

    try:
        book = calamine.CalamineWorkbook.from_path(name)
        names = [meta.name for meta in book.sheets_metadata if _is_worksheet(meta)]
    except Exception as exc:  # calamine raises several unrelated types for broken files
        raise SourceError(
            name, f"this Excel file cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    return names or list(book.sheet_names)


def _open_excel(
    file: Path, name: str, size: int, sheet: str | int | None, header_row: int
) -> Source:
    if not zipfile.is_zipfile(file):
        raise SourceError(
            name,
            "this is not a valid Excel workbook (the .xlsx container is damaged)",
            "Open it in Excel and save it again as .xlsx, or export it as CSV.",
        )
    if size <= FAST_EXCEL_MAX_BYTES and os.environ.get("METRIX_EXCEL_READER") != "streaming":
        rows, sheet_name, total = _calamine_rows(file, name, sheet)
    else:
        rows, sheet_name, total = _openpyxl_rows(file, name, sheet)
    header_cells: list[Any] | None = None
    for _ in range(header_row):
        header_cells = next(rows, None)
        if header_cells is None:
            raise SourceError(
                name,
                f"sheet '{sheet_name}' has fewer than {header_row} rows, so there is no header",
                "Check the sheet (--sheet) and `header_row:`.",
            )
    assert header_cells is not None
    header, display = make_header([excel_cell_text(v) for v in header_cells])
    while header and header[-1].startswith("column_") and not display[-1]:
        header.pop()
        display.pop()
    if not header:
        raise SourceError(name, f"the header row of sheet '{sheet_name}' is empty")
    source = Source(
        path=name,
        kind="excel",
        header=header,
        display_header=display,
        records=iter(()),
        sheet=sheet_name,
        size_bytes=size,
        total_rows=None if total is None else max(total - header_row, 0),
        is_failure_file=is_failure_header(header),
    )
    records = _excel_records(rows, len(header), source.stats)
    if source.is_failure_file:
        source.header, source.display_header, records = _strip_report_columns(
            header, display, records
        )
    source.records = records
    return source


def _excel_records(rows: Iterator[Any], width: int, stats: ReadStats) -> Iterator[Record]:
    number = 0
    for values in rows:
        number += 1
        cells = [excel_cell_text(v) for v in values]
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))
        elif len(cells) > width:
            extra = cells[width:]
            cells = cells[:width]
            if any(extra):
                yield (
                    number,
                    cells + extra,
                    (
                        f"has values in {len(extra)} column(s) to the right of the header's "
                        "last column"
                    ),
                )
                continue
        if not any(cell.strip(WHITESPACE) for cell in cells):
            stats.blank_rows += 1
            continue
        yield number, cells, None


def _pick_sheet(name: str, names: list[str], sheet: str | int | None) -> str:
    if sheet is None:
        return names[0]
    if isinstance(sheet, int) or (
        isinstance(sheet, str) and sheet.isdigit() and sheet not in names
    ):
        index = int(sheet)
        if index < len(names):
            return names[index]
    elif sheet in names:
        return sheet
    listed = ", ".join(f"'{n}'" for n in names)
    raise SourceError(
        name,
        f"the workbook has no sheet {sheet!r}",
        f"Its sheets are: {listed} (or use a 0-based index with --sheet).",
    )


def _calamine_rows(
    file: Path, name: str, sheet: str | int | None
) -> tuple[Iterator[Any], str, int | None]:
    """Whole-sheet reader: fast (~60k rows/s) but holds the sheet in memory."""
    info = file.stat()
    data, chosen = _calamine_sheet(str(file.resolve()), info.st_mtime_ns, info.st_size, name, sheet)
    return iter(data.iter_rows()), chosen, data.total_height


@functools.lru_cache(maxsize=1)
def _calamine_sheet(
    path: str, mtime_ns: int, size: int, name: str, sheet: str | int | None
) -> tuple[Any, str]:
    """The loaded sheet, kept for the next open of the same unchanged file.

    A run opens each input twice or three times (to check its header against the
    mapping, to find duplicates, to read it); loading a big sheet is most of the cost
    of reading it, so it happens once.
    """
    import python_calamine as calamine

    try:
        book = calamine.CalamineWorkbook.from_path(path)
        names = [meta.name for meta in book.sheets_metadata if _is_worksheet(meta)]
        chosen = _pick_sheet(name, names or list(book.sheet_names), sheet)
        return book.get_sheet_by_name(chosen), chosen
    except SourceError:
        raise
    except calamine.PasswordError:
        raise SourceError(
            name, "the workbook is password-protected", "Remove the password and save it again."
        ) from None
    except Exception as exc:  # calamine raises several unrelated types for broken files
        raise SourceError(
            name,
            f"this Excel file cannot be read ({type(exc).__name__}: {exc})",
            "Open it in Excel and save it again as .xlsx, or export it as CSV.",
        ) from None


def _is_worksheet(meta: Any) -> bool:
    return "WorkSheet" in str(getattr(meta, "typ", "WorkSheet"))


def _openpyxl_rows(
    file: Path, name: str, sheet: str | int | None
) -> tuple[Iterator[Any], str, int | None]:
    """Streaming reader for big workbooks: flat memory, slower."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise SourceError(
            name,
            f"this Excel file cannot be read ({type(exc).__name__}: {exc})",
            "Open it in Excel and save it again as .xlsx, or export it as CSV.",
        ) from None
    chosen = _pick_sheet(name, list(book.sheetnames), sheet)
    worksheet = book[chosen]

    def rows() -> Iterator[Any]:
        try:
            yield from worksheet.iter_rows(values_only=True)
        finally:
            book.close()

    return rows(), chosen, worksheet.max_row
