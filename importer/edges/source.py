"""What every reader produces: a Source with its header and a stream of records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from importer.core.convert import WHITESPACE
from importer.core.messages import REPORT_COLUMNS
from importer.edges.report import restore

# (data row number, cells, read problem or None). Data rows are numbered from 1 after
# the header; blank rows take a number too, so the number plus the header's row is the
# spreadsheet's own row number.
Record = tuple[int, list[str], str | None]

ENCODING_NAMES = {
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
    # Things read but worth a word in the summary ("cells in unlabelled columns
    # ignored": count), added to the run's warnings.
    warnings: Counter[str] = field(default_factory=Counter)


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
    encoding_note: str = ""  # what the detection saw worth saying
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
        name = ENCODING_NAMES.get(self.encoding or "", self.encoding or "?")
        how = "detected" if self.encoding_detected else "given"
        shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
        note = f"; {self.encoding_note}" if self.encoding_note else ""
        return (
            f"{self.path}: CSV, encoding {name} ({how}{note}), "
            f"delimiter {shown.get(self.delimiter or '', repr(self.delimiter))}"
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


def strip_report_columns(
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
