"""Reports: the failure CSV and the run summary (text for people, JSON for machines)."""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from importer.edges.outputs import finish_partial, open_partial, output_error
from importer.errors import OutputError

# Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"'+[=+\-@\t\r]")
_LEADS = frozenset("'=+-@\t\r")


def neutralize(cell: str) -> str:
    """Make a cell inert in a spreadsheet by prefixing ``'`` (reversed by ``restore``).

    Cells that already start with quotes before a formula character get one more, so
    the mapping stays one-to-one and ``restore(neutralize(x)) == x`` for every text.
    """
    if not cell or cell[0] not in _LEADS:  # the common case, without the regex
        return cell
    return "'" + cell if _FORMULA.match(cell) else cell


def restore(cell: str) -> str:
    """Undo ``neutralize``."""
    return cell[1:] if _NEUTRALISED.match(cell) else cell


class FailureWriter:
    """The failure CSV: ``_row, _stage, _error[, _source]`` then the source's own columns.

    UTF-8 with BOM so Excel shows Persian text; opened on the first failure, so a run
    without failures leaves no file. Written to ``<path>.partial`` and renamed into place
    by ``close``; a write that fails (a full disk) raises ``OutputError`` naming the
    path, and the partial file is left as it is (``broken``), never renamed over a
    complete one.
    """

    def __init__(
        self,
        path: str | Path,
        header: list[str],
        with_source: bool = False,
        *,
        layouts: dict[str, list[int]] | None = None,
        row_prefixes: dict[str, str] | None = None,
        source_names: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self.with_source = with_source
        # Per input label: where each report column's cell is in that input's rows
        # (inputs whose header differs), "Sheet:" before row numbers, and file names.
        self._layouts = layouts or {}
        self._prefixes = row_prefixes or {}
        self._names = source_names or {}
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None
        self.partial: Path | None = None
        self.broken = False
        self.error: OutputError | None = None

    def _open(self) -> None:
        try:
            handle, self.partial = open_partial(self.path)
            self._file = open(handle, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            lead = ["_row", "_stage", "_error"] + (["_source"] if self.with_source else [])
            self._writer.writerow(lead + [neutralize(h) for h in self.header])
        except OSError as exc:
            raise self._fail(exc) from None

    def write(
        self, row: int | str, stage: str, error: str, cells: list[str], source: str = ""
    ) -> None:
        """Add one failed row with every reason it failed."""
        if self.error is not None:
            raise self.error
        if self._file is None:
            self._open()
        layout = self._layouts.get(source)
        if layout is not None:
            width = sum(1 for i in layout if i >= 0)
            cells = [cells[i] if 0 <= i < len(cells) else "" for i in layout] + cells[width:]
        shown_row = f"{self._prefixes[source]}{row}" if source in self._prefixes else row
        lead: list[Any] = [shown_row, stage, error]
        if self.with_source:
            lead.append(self._names.get(source, source))
        try:
            self._writer.writerow(lead + [neutralize(c) for c in cells])
        except OSError as exc:
            raise self._fail(exc) from None
        self.count += 1

    def _fail(self, exc: OSError) -> OutputError:
        self.broken = True
        self.error = output_error(self.path, exc, "the failure CSV")
        return self.error

    def flush(self) -> None:
        """Push written rows to disk (so a killed run leaves them readable)."""
        if self._file is not None and not self.broken:
            try:
                self._file.flush()
            except OSError as exc:
                raise self._fail(exc) from None

    def close(self) -> None:
        """Finish the file and rename it into place; remove a stale one from an earlier
        run when nothing failed. A broken file stays at its ``.partial`` name."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                if not self.broken:  # else the first error was already raised
                    raise self._fail(exc) from None
            finally:
                if not self.broken and self.partial is not None:
                    finish_partial(self.partial, self.path)
        elif not self.broken and _is_failure_csv(self.path):
            self.path.unlink()


def _is_failure_csv(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.readline().startswith("_row,_stage,_error")
    except (OSError, UnicodeDecodeError):
        return False


@dataclass
class Summary:
    """Counts for one run; ``rows_total == rows_sent + rows_failed + rows_skipped``."""

    mode: str = "validate"
    source: str = ""
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    rows_unread: int = 0
    rows_sent: int = 0
    rows_failed: int = 0
    rows_skipped: int = 0
    blank_rows: int = 0
    failures_path: str | None = None
    warnings_path: str | None = None
    duration_seconds: float = 0.0
    encoding: str | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``--summary-json``)."""
        data: dict[str, Any] = {
            "mode": self.mode,
            "source": self.source,
            "rows_total": self.rows_total,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "rows_unread": self.rows_unread,
            "rows_sent": self.rows_sent,
            "rows_failed": self.rows_failed,
            "rows_skipped": self.rows_skipped,
            "blank_rows": self.blank_rows,
            "failures_path": self.failures_path,
            "warnings_path": self.warnings_path,
            "duration_seconds": round(self.duration_seconds, 3),
            "encoding": self.encoding,
            "reasons": dict(self.reasons.most_common()),
            "skipped_reasons": dict(self.skipped.most_common()),
            "warnings": dict(self.warnings.most_common()),
        }
        data.update(self.extra)
        return data

    def write_json(self, path: str | Path) -> None:
        """Write the JSON summary atomically (a reader never sees half a file)."""
        text = json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n"
        try:
            write_atomic(Path(path), text)
        except OSError as exc:
            raise output_error(Path(path), exc, "the summary") from None

    def render(self, top: int = 8) -> str:
        """The short human summary."""
        lines = [f"{self.source}" if self.source else "summary"]
        width = len(f"{self.rows_total:,}")

        def line(label: str, count: int, note: str = "") -> None:
            lines.append(f"  {label:<9}{count:>{width},}{note}")

        line("rows", self.rows_total)
        if self.mode == "validate":
            line("valid", self.rows_valid)
            line("invalid", self.rows_invalid)
        else:
            line("sent", self.rows_sent)
            line("failed", self.rows_failed)
            line("skipped", self.rows_skipped)
        if self.blank_rows:
            lines.append(f"  ({self.blank_rows:,} blank rows ignored)")
        if self.rows_unread:
            lines.append(f"  ({self.rows_unread:,} rows never read: the run stopped first)")
        if self.reasons:
            lines.append("Most common problems:")
            for reason, count in self.reasons.most_common(top):
                lines.append(f"  {count:>{width},}  {reason}")
            if len(self.reasons) > top:
                lines.append(f"  … and {len(self.reasons) - top} more kinds (see the failure CSV)")
        if self.skipped and self.mode != "validate":
            lines.append("Skipped:")
            for reason, count in self.skipped.most_common(top):
                lines.append(f"  {count:>{width},}  {reason}")
        if self.mode != "validate" and "requests" in self.extra:
            extra = self.extra
            statuses = ", ".join(f"{k}: {v:,}" for k, v in extra.get("status_counts", {}).items())
            lines.append(
                f"Requests {extra['requests']:,} (retries {extra['retries']:,})"
                + (f"; responses {statuses}" if statuses else "")
            )
            speed = extra.get("users_per_second", 0)
            lines.append(f"Took {self.duration_seconds:,.1f} s, {speed:,.0f} users/s")
            pacing = extra.get("pacing")
            if pacing:
                lines.append(describe_pacing(pacing))
            if extra.get("aborted"):
                lines.append(f"Stopped early: {extra['aborted']}")
        lines += self._warnings_and_files(top)
        return "\n".join(lines)

    def _warnings_and_files(self, top: int) -> list[str]:
        lines = [f"Warning: {warning} ({count:,} rows)" for warning, count in
                 self.warnings.most_common(top)]  # fmt: skip
        if self.warnings_path:
            lines.append(f"Rows kept despite a warning, and why: {self.warnings_path}")
        if self.failures_path:
            lines.append(f"Failed rows and their reasons: {self.failures_path}")
        elif self.mode == "validate" or self.rows_failed == 0:
            lines.append("No failed rows, so no failure file was written.")
        if self.extra.get("failure_file_lacks"):
            lines.append(f"The failure CSV lacks {self.extra['failure_file_lacks']}.")
        return lines


def describe_pacing(pacing: dict[str, Any]) -> str:
    """The summary's pacing in one line (the console summary and the HTML report)."""
    text = f"Pacing: auto, ended at {pacing['limit']} in flight"
    if pacing.get("rate_per_second") is not None:
        text += f" and {pacing['rate_per_second']:,.0f} requests/s (a rate limit was met)"
    if pacing.get("latency_p50_ms") is not None:
        p50, p95 = pacing["latency_p50_ms"], pacing["latency_p95_ms"]
        text += f"; latency p50 {p50:,.0f} ms, p95 {p95:,.0f} ms"
    return text + f"; {pacing['rate_limited']:,} answered 429"


# `_stage` of the rows in the warnings file: kept (sent, or valid), with a warning.
STAGE_WARNING = "warning"


def warnings_path(failures: Path) -> Path:
    """Where the rows kept despite a warning are listed: beside the failure CSV
    (``x.failures.csv`` → ``x.warnings.csv``; ``f.csv`` → ``f.warnings.csv``)."""
    name = failures.name
    if name.endswith(".failures.csv"):
        return failures.with_name(name.removesuffix(".failures.csv") + ".warnings.csv")
    return failures.with_name(f"{failures.stem}.warnings{failures.suffix or '.csv'}")


def write_atomic(path: Path, text: str) -> None:
    """Write a file via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
