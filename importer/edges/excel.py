"""Excel workbooks as streams of text rows, by one of two readers that agree cell by cell.

calamine reads a whole sheet at once (fast, memory grows with the sheet); the streaming
reader (``xlsx.stream_rows``) keeps one row in memory. Which one reads a sheet depends
on its size and content, never on what the result looks like: both give the same text
for the same workbook (the reading test suite compares them on every test workbook).
Before either parses anything, the zip directory and a byte scan of the sheet are
checked against the limits, so a zip bomb or a cell at the far corner of the sheet is
refused with a message instead of taking the process down.
"""

from __future__ import annotations

import functools
import math
import os
import zipfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from importer.core.convert import WHITESPACE
from importer.edges import limits, xlsx
from importer.edges.source import (
    ReadStats,
    Record,
    Source,
    is_failure_header,
    make_header,
    strip_report_columns,
)
from importer.errors import SourceError

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
# Whole-sheet (fast) reading is used up to this file size and this many cells in the
# used range; larger sheets are streamed so memory stays bounded.
FAST_EXCEL_MAX_BYTES = 40 * 1024 * 1024
FAST_EXCEL_MAX_CELLS = 8_000_000
UNLABELLED = "values in columns with no header were ignored"

# (1-based row number in the sheet, values from column A on)
Rows = Iterator[tuple[int, list[Any]]]


# --- one text form per cell type ---------------------------------------------------


def excel_cell_text(value: Any) -> str:
    """One documented text form per Excel cell type (the README's "Reading files").

    Numbers as Excel shows them: at most 15 significant digits, no ``.0`` on whole
    numbers (``9121122333``; ``18.36462``, not ``18.364620000000002``). Dates in ISO
    8601 (date only at midnight); times ``HH:MM:SS``; elapsed time ``[h]:mm:ss`` as
    Excel shows it (``255:10:10``); fractions of a second as ``.mmm`` when not zero.
    Booleans ``true``/``false``; error cells their code (``#N/A``); empty cells "".
    """
    return _CELL_TEXT.get(type(value), str)(value)


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        return repr(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if len(text) <= 16 and "e" not in text:
        return text  # at most 15 digits: already what 15 significant digits show
    shown = float(f"{value:.15g}")
    if shown.is_integer() and abs(shown) < 1e16:
        return str(int(shown))
    return repr(shown)


def _fraction(micro: int) -> str:
    millis = (micro + 500) // 1000
    return f".{min(millis, 999):03d}" if millis else ""


def _datetime_text(value: datetime) -> str:
    if value.microsecond:
        return value.isoformat(timespec="milliseconds")
    if value.hour or value.minute or value.second:
        return value.isoformat()  # to the second, as there is no fraction
    return value.date().isoformat()


def _time_text(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}" + _fraction(value.microsecond)


def _duration_text(value: timedelta) -> str:
    total_ms = round(value.total_seconds() * 1000)
    sign = "-" if total_ms < 0 else ""
    seconds, millis = divmod(abs(total_ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}:{minutes:02d}:{seconds:02d}" + (f".{millis:03d}" if millis else "")


# By exact type: one dictionary look-up per cell instead of a chain of isinstance.
_CELL_TEXT: dict[type, Callable[[Any], str]] = {
    str: str,
    float: _float_text,
    int: str,
    bool: lambda value: "true" if value else "false",
    datetime: _datetime_text,
    date: date.isoformat,
    time: _time_text,
    timedelta: _duration_text,
    xlsx.ExcelError: str,
    type(None): lambda _: "",
}


# --- opening ---------------------------------------------------------------------------


def _zip(file: Path, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SourceError(
            name,
            f"this is not a valid Excel workbook (the .xlsx container is damaged: {exc})",
            "Open it in Excel and save it again as .xlsx, or export it as CSV.",
        ) from None


def _package(book: zipfile.ZipFile, name: str) -> xlsx.Package:
    if "[Content_Types].xml" not in book.NameToInfo:
        raise SourceError(
            name,
            "this zip file is not an Excel workbook",
            "Give an .xlsx file, or unzip the archive and give the files inside.",
        )
    return xlsx.open_package(book, name)


def list_sheets(path: str | Path) -> list[str]:
    """The worksheet names of a workbook, in order (for ``--sheet all``): charts and
    macro sheets are left out."""
    name = str(path)
    file = Path(path)
    if not file.exists():
        raise SourceError(name, "the file does not exist", "Check the path and try again.")
    if file.suffix.lower() not in EXCEL_SUFFIXES and not zipfile.is_zipfile(file):
        raise SourceError(name, "--sheet all needs an Excel workbook (.xlsx)")
    with _zip(file, name) as book:
        return [sheet.name for sheet in _package(book, name).worksheets()]


def _pick_sheet(name: str, package: xlsx.Package, sheet: str | int | None) -> xlsx.SheetInfo:
    sheets = package.worksheets()
    if not sheets:
        raise SourceError(
            name,
            "the workbook has no worksheet (only charts or macro sheets)",
            "Give a workbook whose data is on a worksheet, or export it as CSV.",
        )
    names = [s.name for s in sheets]
    if sheet is None:
        return sheets[0]
    if isinstance(sheet, int) or (
        isinstance(sheet, str) and sheet.isdigit() and sheet not in names
    ):
        index = int(sheet)
        if index < len(names):
            return sheets[index]
    elif sheet in names:
        return sheets[names.index(sheet)]
    listed = ", ".join(f"'{n}'" for n in names)
    raise SourceError(
        name,
        f"the workbook has no sheet {sheet!r}",
        f"Its sheets are: {listed} (or use a 0-based index with --sheet).",
    )


def _check_size(name: str, sheet: str, scan: xlsx.SheetScan) -> None:
    if scan.cells > limits.EXCEL_CELLS.value:
        raise limits.EXCEL_CELLS.refuse(
            name,
            f"sheet '{sheet}' has a cell at {scan.far_cell} — a used range of "
            f"{scan.rows:,} rows x {scan.columns:,} columns = {scan.cells:,} cells "
            "(a stray cell far from the data? delete it in Excel)",
        )


def open_excel(
    file: Path, name: str, size: int, sheet: str | int | None, header_row: int
) -> Source:
    """Check the workbook against the limits, pick its sheet and reader, read the header."""
    with _zip(file, name) as book:
        package = _package(book, name)
        chosen = _pick_sheet(name, package, sheet)
    info = file.stat()
    scan, loose = _scan(str(file.resolve()), info.st_mtime_ns, info.st_size, name, chosen.part,
                        package.shared_strings_part)  # fmt: skip
    _check_size(name, chosen.name, scan)
    forced = os.environ.get("METRIX_EXCEL_READER", "")
    fast = (
        forced != "streaming"
        and (forced == "fast" or size <= FAST_EXCEL_MAX_BYTES)
        and not scan.errors  # calamine reads error cells as empty
        and not loose  # calamine trims text that has spaces at its ends
        and scan.cells <= FAST_EXCEL_MAX_CELLS
        and scan.dimension_cells <= max(FAST_EXCEL_MAX_CELLS, scan.cells)
    )
    rows: Rows | None = None
    if fast:
        rows = _calamine_rows(file, name, chosen.name)
    if rows is None:
        rows = _streaming_rows(file, name, package, chosen)
    return _source(name, size, chosen.name, rows, header_row, scan.rows, scan.errors)


@functools.lru_cache(maxsize=4)
def _scan(
    path: str, mtime_ns: int, size: int, name: str, part: str, strings_part: str
) -> tuple[xlsx.SheetScan, bool]:
    """The byte scan of a sheet (and whether its text could be trimmed), kept for the
    next open of the same unchanged file: a run opens each input two or three times,
    and the scan unpacks the whole sheet."""
    with _zip(Path(path), name) as book:
        scan = xlsx.scan_sheet(book, part, name)
        return scan, scan.loose_text or xlsx.has_loose_text(book, strings_part)


def _source(
    name: str,
    size: int,
    sheet: str,
    rows: Rows,
    header_row: int,
    last_row: int,
    errors_possible: bool,
) -> Source:
    header_cells: list[Any] = []
    header_number = 0
    target = 0
    for number, values in rows:
        if not target:
            if not any(excel_cell_text(v).strip(WHITESPACE) for v in values):
                continue  # rows above the first one with data are not counted
            target = number + header_row - 1
        if number >= target:
            header_cells, header_number = (values if number == target else []), target
            break
    if not target:
        raise SourceError(
            name,
            f"sheet '{sheet}' is empty",
            "Choose the sheet that holds the data with --sheet (--sheet all reads every one).",
        )
    if not header_number:
        raise SourceError(
            name,
            f"sheet '{sheet}' has fewer than {header_row} rows, so there is no header",
            "Check the sheet (--sheet) and `header_row:`.",
        )
    header, display = make_header([excel_cell_text(v) for v in header_cells])
    while header and header[-1].startswith("column_") and not display[-1]:
        header.pop()
        display.pop()
    if not header:
        raise SourceError(name, f"the header row of sheet '{sheet}' is empty")
    source = Source(
        path=name,
        kind="excel",
        header=header,
        display_header=display,
        records=iter(()),
        sheet=sheet,
        size_bytes=size,
        total_rows=max(last_row - header_number, 0) if last_row else None,
        is_failure_file=is_failure_header(header),
    )
    records = excel_records(rows, header, header_number, source.stats, errors_possible)
    if source.is_failure_file:
        source.header, source.display_header, records = strip_report_columns(
            header, display, records
        )
    source.records = records
    return source


def excel_records(
    rows: Rows,
    header: list[str],
    header_number: int,
    stats: ReadStats,
    errors_possible: bool = True,
) -> Iterator[Record]:
    """Data rows numbered from 1 after the header (a gap in the sheet's rows counts as
    blank rows); values beyond the header's last column are ignored and counted."""
    width = len(header)
    previous = header_number
    empty_limit = limits.EXCEL_EMPTY_ROWS.value
    run = 0
    text_of = _CELL_TEXT.get
    try:
        for row_number, values in rows:
            gap = row_number - previous - 1
            previous = row_number
            number = row_number - header_number
            if gap > 0:
                stats.blank_rows += gap
                run += gap
            # Most cells are text already: only the others need their text form.
            cells = [v if type(v) is str else text_of(type(v), str)(v) for v in values[:width]]
            if len(values) > width and any(
                excel_cell_text(v).strip(WHITESPACE) for v in values[width:]
            ):
                stats.warnings[UNLABELLED] += 1
            # One strip of the joined cells: blank exactly when every cell is.
            if not "".join(cells).strip(WHITESPACE):
                stats.blank_rows += 1
                run += 1
                continue
            if run > empty_limit:
                _skipped(stats, run, row_number)
            run = 0
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            if errors_possible and (
                errors := [
                    (header[i], v)
                    for i, v in enumerate(values[:width])
                    if type(v) is xlsx.ExcelError
                ]
            ):
                yield number, cells, _error_problem(errors)
            else:
                yield number, cells, None
        if run > empty_limit:
            _skipped(stats, run, previous + 1)
    except xlsx.TruncatedSheet as exc:
        yield (
            previous - header_number + 1,
            [],
            f"row {previous + 1}: the sheet is damaged or cut short from here on ({exc}); "
            "the rows after this point could not be read. Save or copy the workbook again",
        )


def _skipped(stats: ReadStats, run: int, next_row: int) -> None:
    """A long run of empty rows (often formatting down to the sheet's last row)."""
    first, last = next_row - run, next_row - 1
    stats.warnings[f"{run:,} empty rows in a row were skipped (sheet rows {first:,}-{last:,})"] += 1


def _error_problem(errors: list[tuple[str, Any]]) -> str:
    shown = ", ".join(f"{value} in column '{column}'" for column, value in errors[:3])
    more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
    return (
        f"the sheet shows the Excel error {shown}{more}; "
        "fix the formula or clear the cell in the workbook"
    )


# --- the two readers -------------------------------------------------------------------


def _calamine_rows(file: Path, name: str, sheet: str) -> Rows | None:
    """Whole-sheet reader: fast (~60k rows/s) but holds the sheet in memory. None when
    calamine cannot read the workbook (the streaming reader then tries)."""
    info = file.stat()
    loaded = _calamine_sheet(str(file.resolve()), info.st_mtime_ns, info.st_size, name, sheet)
    if loaded is None:
        return None
    start_row, start_column = loaded.start or (0, 0)
    if not start_column:
        return enumerate(loaded.iter_rows(), start=start_row + 1)
    pad = [None] * start_column
    return (
        (number, pad + values)
        for number, values in enumerate(loaded.iter_rows(), start=start_row + 1)
    )


@functools.lru_cache(maxsize=1)
def _calamine_sheet(path: str, mtime_ns: int, size: int, name: str, sheet: str) -> Any:
    """The loaded sheet, kept for the next open of the same unchanged file.

    A run opens each input twice or three times (to check its header against the
    mapping, to find duplicates, to read it); loading a big sheet is most of the cost
    of reading it, so it happens once.
    """
    import python_calamine as calamine

    try:
        book = calamine.CalamineWorkbook.from_path(path)
        return book.get_sheet_by_name(sheet)
    except calamine.PasswordError:
        raise SourceError(
            name, "the workbook is password-protected", "Remove the password and save it again."
        ) from None
    except Exception:  # calamine raises several unrelated types; the other reader decides
        return None


def _streaming_rows(file: Path, name: str, package: xlsx.Package, sheet: xlsx.SheetInfo) -> Rows:
    """Streaming reader: one row in memory at a time (plus the shared strings)."""
    book = _zip(file, name)
    try:
        strings = xlsx.shared_strings(book, package)
    except BaseException:
        book.close()
        raise

    def rows() -> Rows:
        try:
            yield from xlsx.stream_rows(book, package, sheet, strings)
        finally:
            book.close()

    return rows()
