"""A whole import run: wire the edges around the runner and turn the result into an
exit code. The CLI calls ``run_job``; tests can call it too."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from importer.config import Mapping
from importer.delivery import mask
from importer.errors import ExitCode
from importer.messages import RowMapper
from importer.pipeline import Outcome, open_mapped, outcomes, run_start_millis
from importer.progress import choose_progress
from importer.report import FailureWriter, Summary
from importer.runner import Runner, RunOptions, install_signal_handlers
from importer.transport import HttpTransport

log = logging.getLogger("metrix_importer")


@dataclass(frozen=True)
class Outputs:
    """Where a run writes what it has to say."""

    failures: Path
    summary_json: Path | None = None
    progress: bool = True
    progress_interval: float = 10.0


def run_job(
    source_path: str, mapping: Mapping, options: RunOptions, outputs: Outputs
) -> tuple[Summary, ExitCode, str]:
    """Import one source; returns the summary, the exit code it earns, and advice."""
    started = time.monotonic()
    source = open_mapped(source_path, mapping)
    log.info("reading %s", source.describe())
    mapper = RowMapper(mapping, source.header, run_start_millis())
    summary = Summary(
        mode="dry-run" if options.dry_run else "run", source=source_path, encoding=source.encoding
    )
    failures = FailureWriter(outputs.failures, source.display_header)
    progress = choose_progress(outputs.progress, source.total_rows, log, outputs.progress_interval)

    def fraction() -> float | None:
        if source.size_bytes and source.kind == "csv":
            return min(1.0, source.bytes_read() / source.size_bytes)
        return None

    def rest() -> Iterator[tuple[str, int, list[str]]]:
        for row, cells, _ in source.records:
            yield "", row, cells

    runner = Runner(options, summary, failures, progress=progress)
    try:
        asyncio.run(_run(runner, outcomes(source, mapper), rest(), fraction))
    finally:
        progress.close()
        failures.close()
    summary.blank_rows = source.stats.blank_rows
    summary.warnings.update(mapper.warnings)
    summary.failures_path = str(outputs.failures) if failures.count else None
    summary.duration_seconds = time.monotonic() - started
    state = runner.state
    summary.extra.update(
        requests=state.requests,
        retries=state.retries,
        status_counts=dict(sorted(state.status_counts.items())),
        users_per_second=round(summary.rows_sent / max(summary.duration_seconds, 1e-9), 1),
        aborted=None if runner.abort is None else runner.abort.reason,
    )
    if outputs.summary_json is not None:
        summary.write_json(outputs.summary_json)
    return summary, exit_code(summary, runner), advice(runner, summary, mapping)


async def _run(
    runner: Runner,
    stream: Iterator[Outcome],
    rest: Iterator[tuple[str, int, list[str]]],
    fraction: Callable[[], float | None],
) -> None:
    install_signal_handlers(asyncio.get_running_loop(), runner)
    options = runner.options
    if options.dry_run:
        await runner.run(stream, rest, fraction)
        return
    async with HttpTransport(
        options.endpoint, options.app_id, options.api_key, options.concurrency, options.timeout
    ) as transport:
        runner.transport = transport
        await runner.run(stream, rest, fraction)


def advice(runner: Runner, summary: Summary, mapping: Mapping) -> str:
    """What a person should do after a run that stopped early ("" otherwise)."""
    abort = runner.abort
    if abort is None:
        return ""
    rerun = ""
    if summary.failures_path:
        rerun = (
            f" Rows not sent are in {summary.failures_path} (_stage not_sent); once fixed, "
            f"re-run that file: metrix-import run {summary.failures_path} --mapping {mapping.path}"
        )
    if abort.code == "credentials":
        return (
            f"{abort.reason}. Check METRIX_APP_ID and METRIX_API_KEY (the key may have been "
            "revoked or rotated), and that this machine's IP address is on the app's "
            "allow-list in the Metrix panel." + rerun
        )
    if abort.code == "endpoint":
        return (
            f"{abort.reason}. Check the endpoint URL and this machine's network, or wait "
            "for the service to recover." + rerun
        )
    return f"{abort.reason}." + rerun


def exit_code(summary: Summary, runner: Runner) -> ExitCode:
    """4 aborted, 130 interrupted, 1 some rows failed, else 0."""
    if runner.abort is not None:
        return ExitCode.INTERRUPTED if runner.abort.code == "interrupted" else ExitCode.ABORTED
    return ExitCode.ROWS_FAILED if summary.rows_failed else ExitCode.OK


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


def setup_logging(verbose: bool, log_file: str | None, secret: str, progress_bar: bool) -> None:
    """stderr gets warnings (or progress lines when it is not a terminal); --log-file
    gets everything at INFO (DEBUG with -v). The key is masked everywhere."""
    root = logging.getLogger("metrix_importer")
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    masking = MaskingFilter(secret)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(
        logging.DEBUG if verbose else (logging.WARNING if progress_bar else logging.INFO)
    )
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    stderr.addFilter(masking)
    root.addHandler(stderr)
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.addFilter(masking)
        root.addHandler(handler)
