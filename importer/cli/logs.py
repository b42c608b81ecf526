"""Logging for the commands: warnings (or progress lines) on stderr, everything in
--log-file, and the API key masked everywhere."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from importer.core.delivery import mask
from importer.edges.outputs import output_error


class MaskingFilter(logging.Filter):
    """Keeps the API key out of every log line, whatever put it there."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            record.msg = mask(record.getMessage(), self.secret)
            record.args = None
        return True


class _Shown(logging.Filter):
    """stderr's level, except that progress lines of long phases always pass."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or record.name == "metrix_importer.progress"


def setup_logging(
    verbose: bool,
    log_file: str | None,
    secret: str,
    progress_bar: bool,
    *,
    phase_lines: bool = False,
) -> None:
    """stderr gets warnings (or progress lines when it is not a terminal); --log-file
    gets everything at INFO (DEBUG with -v). The key is masked everywhere.
    ``phase_lines``: commands that show only warnings (validate, plan: pass
    ``progress_bar=True``) still show the progress lines of their long phases."""
    root = logging.getLogger("metrix_importer")
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    masking = MaskingFilter(secret)
    stderr = logging.StreamHandler(sys.stderr)
    level = logging.DEBUG if verbose else (logging.WARNING if progress_bar else logging.INFO)
    if phase_lines:
        stderr.addFilter(_Shown(level))
        level = logging.INFO
    stderr.setLevel(level)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    stderr.addFilter(masking)
    root.addHandler(stderr)
    # A log line that cannot be written (a full disk under --log-file) must not print
    # a traceback in the middle of a run; the run's own outputs report a full disk.
    logging.raiseExceptions = False
    if log_file:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise output_error(Path(log_file), exc, "the log file") from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.addFilter(masking)
        root.addHandler(handler)
