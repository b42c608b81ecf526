"""The read → map stage shared by validate, preview, plan and run.

It turns a source's records into outcomes, one per data row, in file order: either a
mapped row ready to send or a failure with every reason. It never raises for a bad
row, which is what lets every command account for every row.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from importer.core.messages import MappedRow
from importer.core.outcome import Outcome, SkipReason, Stage, skipped
from importer.edges.readers import Source
from importer.engine.parallel import VALID, MappedRecords


def run_start_millis() -> int:
    """The run's start time in epoch ms: the default message ``time``, fixed once per run."""
    return time.time_ns() // 1_000_000


def mapped_outcomes(mapped: MappedRecords, label: str = "") -> Iterator[Outcome]:
    """Every data row as an Outcome, in file order, from records mapped in chunks
    (inline or by worker processes). Rows found unchanged since the last delivery come
    out as skipped, unmapped; it never raises for a bad row."""
    for number, cells, problem, result, raw, unchanged in mapped:
        if problem is not None:
            yield Outcome(number, cells, None, Stage.READ, problem, (_read_key(problem),), label)
        elif unchanged:
            yield skipped(number, cells, SkipReason.UNCHANGED, label, raw)
        elif result is None:
            yield Outcome(number, cells, VALID, source=label, raw=raw)
        elif isinstance(result, str):
            yield Outcome(number, cells, VALID, source=label, raw=raw, warning=result)
        elif isinstance(result, MappedRow):
            warning = "; ".join(result.notes)
            yield Outcome(number, cells, result, source=label, raw=raw, warning=warning)
        elif isinstance(result, tuple):
            user_id, time, content, warning, body = result
            row = MappedRow.from_content(user_id, time, content, body=body)
            yield Outcome(number, cells, row, source=label, raw=raw, warning=warning)
        else:
            yield Outcome(number, cells, None, Stage.VALIDATE, result[0], result[1], label, raw)


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
