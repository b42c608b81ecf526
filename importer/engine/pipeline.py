"""The read → map stage shared by validate, preview, plan and run.

It turns a source's records into outcomes, one per data row, in file order: either a
mapped row ready to send or a failure with every reason. It never raises for a bad
row, which is what lets every command account for every row.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

from importer.core.messages import MappedRow
from importer.edges.readers import Source
from importer.engine.parallel import VALID, MappedRecords


@dataclass(slots=True)
class Outcome:
    """One data row after reading and mapping."""

    row: int
    cells: list[str]
    mapped: MappedRow | None
    stage: str = ""  # "read" | "validate" when mapped is None
    error: str = ""  # every reason, for the failure CSV
    keys: tuple[str, ...] = ()  # short reasons, for the summary's counts
    source: str = ""  # which input, when a run reads several
    raw: bytes = b""  # fingerprint of the raw cells, when a state file keeps it


UNCHANGED_REASON = "unchanged since the last run"


def run_start_millis() -> int:
    """The run's start time in epoch ms: the default message ``time``, fixed once per run."""
    return time.time_ns() // 1_000_000


def mapped_outcomes(mapped: MappedRecords, label: str = "") -> Iterator[Outcome]:
    """Every data row as an Outcome, in file order, from records mapped in chunks
    (inline or by worker processes). Rows found unchanged since the last delivery come
    out as skipped, unmapped; it never raises for a bad row."""
    for number, cells, problem, result, raw, unchanged in mapped:
        if problem is not None:
            yield Outcome(number, cells, None, "read", problem, (_read_key(problem),), label)
        elif unchanged:
            yield Outcome(number, cells, None, "skip", UNCHANGED_REASON, (), label, raw)
        elif result is None:
            yield Outcome(number, cells, VALID, source=label, raw=raw)
        elif isinstance(result, MappedRow):
            yield Outcome(number, cells, result, source=label, raw=raw)
        elif isinstance(result, tuple):
            user_id, moment, content = result
            row = MappedRow.from_content(user_id, moment, content)
            yield Outcome(number, cells, row, source=label, raw=raw)
        else:
            yield Outcome(number, cells, None, "validate", result[0], result[1], label, raw)


def sample_rows(source: Source, size: int, seed: int = 0) -> list[list[str]]:
    """Up to ``size`` readable rows spread through the whole file (reservoir sampling,
    reproducible), in file order: the top of an export is rarely typical of it."""
    rng = random.Random(seed)
    sample: list[tuple[int, list[str]]] = []
    seen = 0
    for number, cells, problem in source.records:
        if problem is not None:
            continue
        seen += 1
        if len(sample) < size:
            sample.append((number, cells))
        else:
            slot = rng.randrange(seen)
            if slot < size:
                sample[slot] = (number, cells)
    return [cells for _, cells in sorted(sample, key=lambda item: item[0])]


def _read_key(problem: str) -> str:
    # "line 12: has 5 fields but the header has 6" -> "has 5 fields but the header has 6"
    text = problem.split(": ", 1)[-1]
    return "unreadable row: " + text.split(";", 1)[0]
