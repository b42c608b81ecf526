"""``validate``: read and map every row without sending; failures go to a CSV."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from importer.core.config import Mapping
from importer.core.outcome import SkipReason
from importer.edges.outputs import check_outputs
from importer.edges.progress import PhaseProgress
from importer.edges.report import Summary, warnings_path
from importer.edges.tables import TableInput
from importer.engine.inputs import Job, expand_inputs
from importer.engine.inputs import named as source_names
from importer.engine.pipeline import run_start_millis
from importer.engine.reading import tracked
from importer.engine.tally import Tally


def validate_job(
    source: str | TableInput,
    mapping: Mapping,
    failures_path: Path,
    workers: int | None,
    summary_json: Path | None = None,
    progress: Callable[[int, float | None], None] | None = None,
) -> tuple[Summary, list[str]]:
    """Read and map every row without sending; failures go to ``failures_path``.
    Returns the summary and a description of each input read. ``summary_json`` (written
    by the caller) is only checked here, with the failure path, before reading.
    ``progress`` hears the rows read so far (and the share of the input) now and then."""
    started = time.monotonic()
    inputs = expand_inputs([source], mapping)
    named = [("--failures", failures_path), ("the warnings file", warnings_path(failures_path))]
    if summary_json is not None:
        named.append(("--summary-json", summary_json))
    check_outputs(named, sorted({item.path for item in inputs if item.table is None}))
    job = Job(inputs, mapping, run_start_millis())
    summary = Summary(mode="validate", source=source_names([source]), encoding=job.encoding)
    writer = job.failure_writer(failures_path)
    listed = job.failure_writer(warnings_path(failures_path))
    tally = Tally(summary, writer, warnings=listed)
    job.start_workers(workers, encode=False)
    reading = job.reading()
    valid = 0
    shown = PhaseProgress("validating")
    try:
        admit = tally.admit
        for read, outcome in enumerate(tracked(reading, shown, reading.overall), start=1):
            if admit(outcome) is not None:
                valid += 1
            if tally.output_error is not None:
                raise tally.output_error
            if progress is not None and read % 4096 == 0:
                progress(read, reading.fraction())
        # Before close: the pool holds the warnings of the rows it mapped.
        summary.warnings.update(job.warnings())
    finally:
        shown.close()
        writer.close()
        listed.close()
        job.close()
    tally.skipped_unrecorded(SkipReason.VALIDATED, valid)
    summary.blank_rows = reading.blank_rows
    summary.failures_path = str(failures_path) if writer.count else None
    summary.warnings_path = str(listed.path) if listed.count else None
    summary.duration_seconds = time.monotonic() - started
    return summary, job.descriptions
