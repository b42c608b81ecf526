"""``run``: check everything, then send every valid row and account for every row.

Wires the edges (state file, failure CSV, progress, HTTP transport) around the
``Runner`` and turns what happened into a summary, an exit code and advice.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.core.config import Mapping
from importer.core.pacing import PacingStats
from importer.edges.duplicates import DuplicatePlan, plan_from_text, plan_to_text
from importer.edges.outputs import check_outputs
from importer.edges.progress import Progress, Sample, Snapshot, Timeline, choose_progress
from importer.edges.report import Summary, warnings_path
from importer.edges.state import StateStore
from importer.edges.tables import TableInput
from importer.edges.transport import HttpTransport
from importer.engine.inputs import Input, Job, expand_inputs, inputs_fingerprint, named
from importer.engine.pipeline import run_start_millis
from importer.engine.reading import Reading
from importer.engine.reporting import save_report
from importer.engine.runner import Runner, SendOptions, install_signal_handlers
from importer.engine.sending import Abort, AbortCode, RetryPolicy
from importer.engine.tally import Tally
from importer.engine.usage import check_run
from importer.errors import ExitCode, ImporterError, Interrupted, OutputError, SourceError

log = logging.getLogger("metrix_importer")


@dataclass(frozen=True)
class Outputs:
    """Where a run writes what it has to say."""

    failures: Path
    summary_json: Path | None = None
    progress: bool = True
    progress_interval: float = 10.0
    report: Path | None = None  # the HTML run report
    watch: Callable[[Snapshot, Sample], None] | None = None  # sees every progress tick

    def named(self, state_path: str | None = None) -> list[tuple[str, Path]]:
        """(option, path) of every file the run writes, for ``check_outputs``."""
        named = [
            ("--failures", self.failures),
            ("the warnings file", warnings_path(self.failures)),
        ]
        if self.summary_json is not None:
            named.append(("--summary-json", self.summary_json))
        if self.report is not None:
            named.append(("--report", self.report))
        if state_path:
            named.append(("--state", Path(state_path)))
        return named


@dataclass
class JobResult:
    """What a command produced: the summary, the exit code it earns, advice, notes."""

    summary: Summary
    exit_code: ExitCode
    advice: str = ""
    notes: list[str] = field(default_factory=list)


def run_job(
    patterns: Sequence[str | TableInput],
    mapping: Mapping,
    options: SendOptions,
    outputs: Outputs,
    *,
    retry: RetryPolicy | None = None,
    duplicates: str = "last",
    state_path: str | None = None,
    restart: bool = False,
    workers: int | None = None,
    allow_insecure: bool = False,
    signals: bool = True,
) -> JobResult:
    """Import the inputs; returns the summary, the exit code it earns, and advice.

    With ``signals`` (the command line) Ctrl-C and SIGTERM stop the run gracefully; a
    library caller keeps its own signal handling."""
    started = time.monotonic()
    check_run(options, mapping, duplicates=duplicates, state_path=state_path,
              allow_insecure=allow_insecure)  # fmt: skip
    holder: list[_Run] = []
    # Before the event loop takes over signals, SIGTERM stops the run as Ctrl-C does
    # (with a message) instead of killing it silently.
    if signals and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_job(patterns, mapping, options, outputs, retry, duplicates, state_path,
                        restart, workers, started, holder, signals)  # fmt: skip
    except KeyboardInterrupt:
        # Until the event loop starts (reading the inputs, the duplicate check), Ctrl-C
        # is a plain KeyboardInterrupt: no request has been made by this run. Another
        # Ctrl-C must not cut the message short.
        if signals:
            _hold_signals()
        if holder and holder[0].runner is not None:
            raise
        raise Interrupted(
            "interrupted before the first request: this run sent nothing"
            + (f" (what earlier runs did is kept in {state_path})" if state_path else "")
            + "; run the same command again to start"
        ) from None


def _run_job(
    patterns: Sequence[str | TableInput],
    mapping: Mapping,
    options: SendOptions,
    outputs: Outputs,
    retry: RetryPolicy | None,
    duplicates: str,
    state_path: str | None,
    restart: bool,
    workers: int | None,
    started: float,
    holder: list[_Run],
    signals: bool,
) -> JobResult:
    inputs = expand_inputs(patterns, mapping)
    # Every output must be creatable, and none may be an input, before anything is sent.
    check_outputs(
        outputs.named(state_path), sorted({item.path for item in inputs if item.table is None})
    )
    state = StateStore(state_path) if state_path else None
    try:
        run_time = run_start_millis()
        if state is not None:
            run_time = begin_state(state, inputs, mapping, restart, state_path)
        job = Job(inputs, mapping, run_time)
        try:
            if state is not None:
                if options.only_changed:
                    job.remember_raw(state.unchanged_raw, state.raw_lookup())
                else:
                    job.remember_raw(None)
            # Workers are forked before the event loop starts: forking a running loop
            # (and the resolver's threads) is not safe.
            job.start_workers(workers, encode=not options.dry_run)
            run = _Run(job, options, retry or RetryPolicy(), outputs, state,
                       state_path=state_path, signals=signals)  # fmt: skip
            holder.append(run)
            return run.go(duplicates, started, patterns)
        finally:
            job.close()
    finally:
        if state is not None:
            state.close()


def begin_state(
    state: StateStore, inputs: list[Input], mapping: Mapping, restart: bool, where: str | None
) -> int:
    """Start (or resume) the state file's run; its fixed start time."""
    info = state.begin(
        [item.label for item in inputs],
        inputs_fingerprint(inputs),
        mapping.fingerprint,
        run_start_millis(),
        restart,
        sorted({item.path for item in inputs}),
    )
    if info.resumed:
        log.warning("resuming the unfinished run from %s", where)
    return info.run_time_ms


@dataclass
class _Run:
    job: Job
    options: SendOptions
    retry: RetryPolicy
    outputs: Outputs
    state: StateStore | None
    runner: Runner | None = None
    state_path: str | None = None
    signals: bool = True

    def go(
        self, duplicates: str, started: float, patterns: Sequence[str | TableInput]
    ) -> JobResult:
        job, outputs, state = self.job, self.outputs, self.state
        plan = duplicate_plan(job, state, duplicates, outputs.progress)
        mode = "dry-run" if self.options.dry_run else "run"
        summary = Summary(mode=mode, source=named(patterns), encoding=job.encoding)
        failures = job.failure_writer(outputs.failures)
        listed = job.failure_writer(warnings_path(outputs.failures))
        tally = Tally(summary, failures, state, listed)
        notes = self._resume(tally)
        progress = Timeline(
            choose_progress(outputs.progress, plan.rows or None, log, outputs.progress_interval),
            listener=outputs.watch,
        )
        # Before a resume nothing is done: no per-row look-up at all.
        skip = state.is_done if state is not None and state.has_done else None
        reading = job.reading(skip, plan)
        # An output that cannot be written (a full disk) or an input that cannot be read
        # to its end (a truncated file): the run stops, keeping what was acknowledged.
        error: ImporterError | None = None
        try:
            asyncio.run(self._drive(tally, progress, reading))
        except (OutputError, SourceError) as exc:
            error = exc
        finally:
            # The loop is over: what is left is writing the reports, a matter of
            # milliseconds. A Ctrl-C now must not leave them half-written.
            if self.signals:
                _hold_signals()
            progress.close()
            try:
                failures.close()
            except OutputError as exc:
                error = error or exc
            try:
                listed.close()
            except OutputError as exc:
                error = error or exc
        runner = self.runner
        if runner is None:
            assert error is not None
            raise error
        summary.blank_rows = reading.blank_rows
        if failures.broken and failures.partial is not None:
            summary.failures_path = str(failures.partial)
        else:
            summary.failures_path = str(outputs.failures) if failures.count else None
        summary.warnings_path = str(listed.path) if listed.count else None
        notes += self._conclude(summary, runner, plan, started, error)
        if outputs.report is not None and error is None:
            save_report(outputs.report, summary, job.mapping, job.descriptions, progress.samples)
        abort = runner.abort
        code = exit_code(summary, abort) if error is None else error.exit_code
        return JobResult(summary, code, advice(abort, summary, job.mapping, error, runner,
                                                  self.state_path),
                         notes)  # fmt: skip

    def _resume(self, tally: Tally) -> list[str]:
        state = self.state
        if state is None or state.run is None or not state.run.resumed:
            return []
        restored = state.restored()
        tally.restore(restored, state.prior_failures())
        return [f"resumed: {restored.total:,} rows were already done before"]

    async def _drive(self, tally: Tally, progress: Progress, reading: Reading) -> None:
        options = self.options
        tick = min(self.outputs.progress_interval, 1.0)
        if options.dry_run:
            runner = self.runner = Runner(options, tally, None, progress=progress,
                                          tick_seconds=tick)  # fmt: skip
            if self.signals:
                install_signal_handlers(asyncio.get_running_loop(), runner)
            await runner.run(reading, reading.leftovers(), reading.fraction)
            return
        async with HttpTransport(
            options.endpoint, options.app_id, options.api_key, options.senders,
            options.timeout,
        ) as transport:  # fmt: skip
            runner = self.runner = Runner(options, tally, transport, retry=self.retry,
                                          progress=progress, tick_seconds=tick)  # fmt: skip
            if self.signals:
                install_signal_handlers(asyncio.get_running_loop(), runner)
            await runner.run(reading, reading.leftovers(), reading.fraction)

    def _conclude(
        self,
        summary: Summary,
        runner: Runner,
        plan: DuplicatePlan,
        started: float,
        error: ImporterError | None,
    ) -> list[str]:
        """Fill in the summary, record the end in the state, write the JSON summary.
        Returns notes about outputs that could not be written (the run is over: they
        are reported, not raised)."""
        summary.warnings.update(self.job.warnings())
        summary.duration_seconds = time.monotonic() - started
        stats = runner.sender.stats if runner.sender is not None else None
        abort = runner.abort
        stopped = error.problem if isinstance(error, (OutputError, SourceError)) else None
        summary.extra.update(
            requests=stats.requests if stats else 0,
            retries=stats.retries if stats else 0,
            status_counts=dict(sorted(stats.status_counts.items())) if stats else {},
            users_per_second=round(summary.rows_sent / max(summary.duration_seconds, 1e-9), 1),
            aborted=stopped or (None if abort is None else abort.reason),
            duplicates=plan.as_dict(),
            pacing=pacing_summary(runner.pacer.stats(), stats.requests if stats else 0),
        )
        missing = lacking(runner)
        if missing:
            summary.extra["failure_file_lacks"] = missing
        notes: list[str] = []
        if self.state is not None:
            status = "finished" if abort is None and error is None else "aborted"
            if abort is not None and abort.code is AbortCode.INTERRUPTED:
                status = abort.code.status
            try:
                self.state.finish(status, summary.as_dict())
            except OutputError as exc:
                if not (isinstance(error, OutputError) and error.path == exc.path):
                    notes.append(f"warning: {exc}")
        if self.outputs.summary_json is not None:
            try:
                summary.write_json(self.outputs.summary_json)
            except OutputError as exc:
                notes.append(f"warning: {exc}")
        return notes


def duplicate_plan(
    job: Job, state: StateStore | None, policy: str, progress: bool = True
) -> DuplicatePlan:
    """The duplicate check (a read of every input's id column), or with --state its
    result from an earlier run over inputs with the very same bytes: a digest of every
    byte, with the mapping and the policy, decides (times and sizes alone do not)."""
    key = job.id_pass_key(policy) if state is not None and policy != "all" else None
    if state is not None and key is not None:
        text = state.remembered_plan(key)
        remembered = plan_from_text(text) if text is not None else None
        if remembered is not None and remembered.policy == policy:
            log.info(
                "duplicates: the inputs are byte for byte those checked before; %d users "
                "on more than one row (not read again)",
                remembered.duplicate_users,
            )
            return remembered
    plan = job.duplicate_plan(policy, progress)
    if state is not None and key is not None:
        try:
            state.remember_plan(key, plan_to_text(plan))
        except OutputError as exc:  # the run goes on; its own writes will tell
            log.warning("could not remember the duplicate check: %s", exc)
    return plan


def lacking(runner: Runner) -> str:
    """Which rows the failure CSV lacks, when a stop cut its listing short ("" if none)."""
    parts: list[str] = []
    if runner.missing_from is not None:
        source, row = runner.missing_from
        where = f" of {source}" if source else ""
        parts.append(
            f"every row from row {row}{where} on, and every later input ({runner.unlisted_reason})"
        )
    if runner.tally.unlisted:
        parts.append(
            f"{runner.tally.unlisted:,} failed rows that could not be written after the "
            "failure CSV stopped accepting writes"
        )
    return "; ".join(parts)


def pacing_summary(stats: PacingStats | None, requests: int) -> dict[str, Any] | None:
    """The adaptive limiter's final state for the summary JSON (None: fixed concurrency,
    or no request was made — a dry run, nothing changed — so nothing was learnt)."""
    if stats is None or requests == 0:
        return None

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 1)

    return {
        "limit": stats.limit,
        "rate_per_second": None if stats.rate is None else round(stats.rate, 1),
        "latency_p50_ms": ms(stats.latency_p50),
        "latency_p95_ms": ms(stats.latency_p95),
        "rate_limited": stats.rate_limited,
        "overloaded": stats.overloaded,
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _hold_signals() -> None:
    """Ignore Ctrl-C and SIGTERM from here to the end of the process."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def advice(
    abort: Abort | None,
    summary: Summary,
    mapping: Mapping,
    error: ImporterError | None = None,
    runner: Runner | None = None,
    state_path: str | None = None,
) -> str:
    """What a person should do after a run that stopped early ("" otherwise)."""
    if isinstance(error, OutputError):
        return _output_advice(error, summary, state_path)
    if isinstance(error, SourceError):
        return (
            f"{error}\nThe rows before that point were handled ({summary.rows_sent:,} sent, "
            f"{summary.rows_failed:,} failed); the rest of the file could not be read. "
            "Export the file again and run it; with --state and --only-changed, users "
            "already delivered are not sent again."
        )
    if abort is None:
        return ""
    missing = lacking(runner) if runner is not None else ""
    rerun = ""
    if missing:
        rerun = f" The failure file {summary.failures_path or ''} lacks {missing}." + (
            f" Run the same command again (with --state {state_path}) to resume: it "
            "sends exactly the rows not yet delivered and writes the complete failure file."
            if state_path
            else " Without --state this run cannot resume: run the whole input again "
            "(users already sent are sent again with the same content)."
        )
    elif summary.failures_path:
        rerun = (
            f" Rows not sent are in {summary.failures_path} (_stage not_sent); once fixed, "
            f"re-run that file: metrix-import run {summary.failures_path} --mapping {mapping.path}"
            " (or run the same command again with --state to resume)."
        )
    if abort.code is AbortCode.CREDENTIALS:
        return (
            f"{abort.reason}. Check METRIX_APP_ID and METRIX_API_KEY (the key may have been "
            "revoked or rotated), and that this machine's IP address is on the app's "
            "allow-list in the Metrix panel." + rerun
        )
    if abort.code is AbortCode.ENDPOINT:
        return (
            f"{abort.reason}. Check the endpoint URL and this machine's network, or wait "
            "for the service to recover." + rerun
        )
    return f"{abort.reason}." + rerun


def _output_advice(error: OutputError, summary: Summary, state_path: str | None) -> str:
    kept = f"The run stopped; the {summary.rows_sent:,} rows sent before are kept."
    if state_path:
        return (
            f"{error}\n{kept} After freeing space, run the same command again: --state "
            f"{state_path} continues where this run stopped, with nothing lost (a row whose "
            "delivery was not yet recorded is sent again with the same message id, which "
            "Metrix ignores) and writes the complete failure file."
        )
    return (
        f"{error}\n{kept} This run had no --state, so it cannot resume: after freeing "
        "space, run the whole input again (users already sent are sent again with the "
        "same content), and add --state PATH to make runs resumable."
    )


def exit_code(summary: Summary, abort: Abort | None) -> ExitCode:
    """4 aborted, 130 interrupted, 1 some rows failed, else 0."""
    if abort is not None:
        return ExitCode.INTERRUPTED if abort.code is AbortCode.INTERRUPTED else ExitCode.ABORTED
    return ExitCode.ROWS_FAILED if summary.rows_failed else ExitCode.OK
