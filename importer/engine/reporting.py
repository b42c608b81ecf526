"""The HTML run report's data, gathered from a finished run or validation."""

from __future__ import annotations

import time
from pathlib import Path

from importer import __version__
from importer.core.config import Mapping
from importer.edges.html_report import ReportData, write_report
from importer.edges.progress import Sample
from importer.edges.report import Summary


def save_report(
    path: Path,
    summary: Summary,
    mapping: Mapping,
    inputs: list[str],
    timeline: list[Sample] | None = None,
) -> None:
    """Write the report of ``summary`` (just finished) to ``path``."""
    finished = time.time()
    options = mapping.source
    settings = {"header row": str(options.header_row), "time zone": options.timezone}
    if options.sheet is not None:
        settings["sheet"] = str(options.sheet)
    data = ReportData(
        summary=summary.as_dict(),
        started=finished - summary.duration_seconds,
        finished=finished,
        version=__version__,
        inputs=inputs,
        settings=settings,
        mapping_name=mapping.path,
        mapping_text=_text(mapping.path),
        timeline=timeline or [],
    )
    write_report(path, data)


def _text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
