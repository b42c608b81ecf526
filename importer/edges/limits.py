"""Reading limits: defaults that fit real work, each raised by an environment variable.

A file from a stranger can be built to take unbounded memory or time (a zip bomb, a
cell at the far corner of the sheet, millions of empty rows, a header line of 1 GB).
Every limit here fails with the file, what was found, the limit and how to raise it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from importer.errors import SourceError


@dataclass(frozen=True)
class Limit:
    env: str
    default: int
    what: str

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env, "").replace("_", "").replace(",", "")
        if raw.isdigit() and int(raw) > 0:
            return int(raw)
        return self.default

    def hint(self) -> str:
        return f"If the file is genuine, raise the limit: {self.env}={self.value * 4}"

    def refuse(self, name: str, found: str) -> SourceError:
        return SourceError(
            name,
            f"{found}; the limit is {self.value:,} {self.what}",
            self.hint(),
        )


# Uncompressed size of any one part of a workbook (a sheet's XML, the shared strings).
EXCEL_PART_BYTES = Limit("METRIX_MAX_EXCEL_PART_MB", 2048, "MB unpacked per workbook part")
# Shared strings are held in memory by both Excel readers.
EXCEL_SHARED_STRINGS_BYTES = Limit(
    "METRIX_MAX_SHARED_STRINGS_MB", 128, "MB of unpacked shared strings"
)
# Unpacked size / packed size of a part above a few MB: real sheets stay well under it.
EXCEL_RATIO = Limit("METRIX_MAX_EXCEL_RATIO", 200, "times compression")
# Rows x columns of a sheet's used range (the last cell's row times its column).
EXCEL_CELLS = Limit("METRIX_MAX_SHEET_CELLS", 50_000_000, "cells (rows x columns)")
# A run of empty rows this long ends the reading of a sheet.
EXCEL_EMPTY_ROWS = Limit("METRIX_MAX_EMPTY_ROWS", 100_000, "empty rows in a row")
# One CSV line (a header or a record): bytes in a single field or line.
CSV_FIELD_BYTES = Limit("METRIX_MAX_CSV_FIELD_KB", 1024, "KB in one CSV field")

ALL = (EXCEL_PART_BYTES, EXCEL_SHARED_STRINGS_BYTES, EXCEL_RATIO, EXCEL_CELLS,
       EXCEL_EMPTY_ROWS, CSV_FIELD_BYTES)  # fmt: skip


def settings() -> str:
    """Every limit's value now (a raised limit can make an unreadable row readable)."""
    return ",".join(f"{limit.env}={limit.value}" for limit in ALL)


# Parts smaller than this are not judged by their compression ratio.
RATIO_MIN_BYTES = 8 * 1024 * 1024
MB = 1024 * 1024
