"""What becomes of a row: the words every part of a run uses for it.

A row read from an input ends in exactly one bucket: **sent**, **failed** (with a stage
and every reason) or **skipped** (with a ``SkipReason``). The pipeline, the duplicates
plan, the state file and the reports share these names, so one text cannot drift away
from another. The values are stored in state files and printed in summaries: they are
part of the file formats and must not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from importer.core.messages import MappedRow


class SkipReason(StrEnum):
    """Why a row was deliberately not sent (the summary's ``skipped_reasons`` keys)."""

    UNCHANGED = "unchanged since the last run"
    DUPLICATE = "duplicate"
    DRY_RUN = "dry run: would have been sent"
    VALIDATED = "validated only, not sent"
    PLANNED = "plan only, not sent"


class Stage(StrEnum):
    """Where a row stopped (the failure CSV's ``_stage``)."""

    READ = "read"  # the reader could not read it
    VALIDATE = "validate"  # the mapping rejected a cell
    SEND = "send"  # Metrix rejected it
    # Not delivered (the run stopped, or retries ran out): not a verdict on the row,
    # so a resumed run or the failure file sends it again.
    NOT_SENT = "not_sent"
    SKIP = "skip"  # not a failure: the outcome is skipped, ``error`` holds the reason


class Fate(Enum):
    """Which way an outcome goes after reading and mapping."""

    SEND = "send"  # valid: to be sent (or counted as would-be-sent)
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(slots=True)
class Outcome:
    """One data row after reading and mapping."""

    row: int
    cells: list[str]
    mapped: MappedRow | None
    stage: str = ""  # a Stage when mapped is None
    error: str = ""  # every reason, for the failure CSV (the SkipReason when skipped)
    keys: tuple[str, ...] = ()  # short reasons, for the summary's counts
    source: str = ""  # which input, when a run reads several
    raw: bytes = b""  # fingerprint of the raw cells, when a state file keeps it
    warning: str = ""  # a valid row's warnings (values left out, ambiguous phones)

    @property
    def fate(self) -> Fate:
        if self.mapped is not None:
            return Fate.SEND
        return Fate.SKIPPED if self.stage == Stage.SKIP else Fate.FAILED


def skipped(
    row: int, cells: list[str], reason: SkipReason, source: str, raw: bytes = b""
) -> Outcome:
    """An outcome skipped for ``reason``."""
    return Outcome(row, cells, None, Stage.SKIP, reason, (), source, raw)
