"""A whole run or plan: expand the inputs, check them all, wire the edges around the
runner, and turn the result into an exit code. The CLI calls these; so can tests."""

from __future__ import annotations

import asyncio
import glob
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from importer import __version__
from importer.core.config import Mapping
from importer.core.delivery import mask
from importer.core.messages import RowMapper, content_fingerprint
from importer.edges.duplicates import (
    DUPLICATE_REASON,
    DuplicatePlan,
    id_stream,
    no_plan,
    plan_duplicates,
)
from importer.edges.progress import choose_progress
from importer.edges.readers import Record, Source, list_sheets, open_source
from importer.edges.report import FailureWriter, Summary
from importer.edges.state import StateReader, StateStore, input_fingerprint
from importer.edges.transport import HttpTransport
from importer.engine.parallel import MappedRecords, MapPool, RawCheck, Unchanged, default_workers
from importer.engine.pipeline import Outcome, mapped_outcomes, run_start_millis
from importer.engine.runner import Runner, RunOptions, install_signal_handlers
from importer.errors import ExitCode, SourceError, UsageProblem

log = logging.getLogger("metrix_importer")


@dataclass(frozen=True)
class Input:
    """One table to read: a file, or one sheet of a workbook."""

    label: str  # names the input in state and in the failure CSV's _source
    path: str
    sheet: str | int | None = None
    row_prefix: str = ""  # "Customers:" when every sheet of a workbook is read


@dataclass(frozen=True)
class Outputs:
    """Where a run writes what it has to say."""

    failures: Path
    summary_json: Path | None = None
    progress: bool = True
    progress_interval: float = 10.0


@dataclass
class JobResult:
    """What a run or plan produced."""

    summary: Summary
    exit_code: ExitCode
    advice: str = ""
    notes: list[str] = field(default_factory=list)


def expand_inputs(patterns: Sequence[str], sheet: str | int | None) -> list[Input]:
    """Paths and quoted globs to inputs; ``--sheet all`` makes one input per sheet."""
    paths: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
            if not found:
                raise SourceError(pattern, "no file matches this pattern", "Check the quoted glob.")
            paths += found
        else:
            paths.append(pattern)
    if len(set(paths)) != len(paths):
        raise UsageProblem("the same file is named twice; give each input once")
    several = len(paths) > 1
    inputs: list[Input] = []
    for path in paths:
        if sheet == "all":
            for name in list_sheets(path):
                label = f"{path}:{name}" if several else name
                inputs.append(Input(label, path, name, f"{name}:"))
        else:
            inputs.append(Input(path if several else "", path, sheet))
    return inputs


class Job:
    """Inputs, mapping and failure report of one run, checked before any row is sent."""

    def __init__(self, inputs: list[Input], mapping: Mapping, run_time_ms: int) -> None:
        self.inputs = inputs
        self.mapping = mapping
        self.run_time_ms = run_time_ms
        self.mappers: dict[str, RowMapper] = {}
        self.headers: dict[str, list[str]] = {}
        self.encodings: set[str] = set()
        self.descriptions: list[str] = []
        self.blank_rows = 0
        self._current: Source | None = None  # the input being read
        self._mapped: MappedRecords | None = None  # its records, as they are mapped
        self._index = 0
        self._duplicates: DuplicatePlan | None = None
        self._pool: MapPool | None = None
        self.raw_checks: dict[str, RawCheck] = {}
        for item in inputs:
            # Open every input once up front so a missing column or an unreadable
            # file in the tenth file stops the run before anything is sent.
            source = self.open(item)
            self.mappers[item.label] = RowMapper(mapping, source.header, run_time_ms)
            self.headers[item.label] = source.display_header
            if source.encoding:
                self.encodings.add(source.encoding)
            self.descriptions.append(source.describe())
            log.info("reading %s", source.describe())
            _close(source)

    def open(self, item: Input) -> Source:
        options = self.mapping.source
        return open_source(
            item.path,
            sheet=item.sheet if item.sheet is not None else options.sheet,
            encoding=options.encoding,
            delimiter=options.delimiter,
            header_row=options.header_row,
        )

    def failure_writer(self, path: Path) -> FailureWriter:
        """One failure CSV for all inputs (with ``_source`` when there are several)."""
        union: list[str] = []
        for header in self.headers.values():
            union += [name for name in header if name not in union]
        layouts = {
            label: [header.index(name) if name in header else -1 for name in union]
            for label, header in self.headers.items()
            if header != union
        }
        prefixes = {item.label: item.row_prefix for item in self.inputs if item.row_prefix}
        sources = {item.label: item.path for item in self.inputs}
        return FailureWriter(
            path, union, with_source=len(set(sources.values())) > 1,
            layouts=layouts, row_prefixes=prefixes, source_names=sources,
        )  # fmt: skip

    def outcomes(
        self, skip: Callable[[str, int], bool] | None, duplicates: DuplicatePlan
    ) -> Iterator[Outcome]:
        """Every row of every input, in order; duplicates are marked, not mapped."""
        self._duplicates = duplicates
        for index, item in enumerate(self.inputs):
            source = self.open(item)
            self._index, self._current = index, source
            label = item.label
            check = self.raw_checks.get(label)
            self._mapped = MappedRecords(source.records, label, self.pool, skip, check)
            stream = mapped_outcomes(self._mapped, label)
            for outcome in stream:
                row = outcome.row
                if duplicates.skip and duplicates.is_skipped(label, row):
                    yield Outcome(row, outcome.cells, None, "skip", DUPLICATE_REASON, (), label)
                elif duplicates.error and (count := duplicates.error_count(label, row)):
                    user = self.mappers[label].user_id_of(outcome.cells)
                    reason = (
                        f"customer id '{user}' is on {count} rows; with --duplicates error "
                        "none of them is sent (keep one, or use --duplicates last)"
                    )
                    yield Outcome(row, outcome.cells, None, "validate", reason,
                                  ("duplicate customer id",), label)  # fmt: skip
                else:
                    yield outcome
            self.blank_rows += source.stats.blank_rows
        self._index, self._current = len(self.inputs), None

    def rest(self) -> Iterator[tuple[str, int, list[str], str]]:
        """After an abort: the unread rows of the current input, then every later one,
        each with the reason it would be skipped anyway ("" when it would be sent)."""
        plan = self._duplicates
        for index in range(self._index, len(self.inputs)):
            item = self.inputs[index]
            label = item.label
            if index == self._index and self._current is not None:
                if self._mapped is not None:
                    for row, cells in self._mapped.leftovers():
                        yield label, row, cells, _skip_reason(plan, label, row)
                records: Iterator[Record] = self._current.records
            else:
                records = self.open(item).records
            for row, cells, _ in records:
                yield label, row, cells, _skip_reason(plan, label, row)

    @property
    def pool(self) -> MapPool:
        if self._pool is None:
            self._pool = MapPool(self.mappers, 0, encode=True)
        return self._pool

    def start_workers(self, workers: int | None, encode: bool) -> None:
        """Map rows in worker processes (None: as many as suit this machine and input)."""
        if workers is None:
            small = sum(_size(item.path) for item in self.inputs) < AUTO_WORKERS_MIN_BYTES
            workers = 0 if small else default_workers(encode)
        self._pool = MapPool(self.mappers, workers, encode)

    def remember_raw(self, unchanged: Unchanged | None) -> None:
        """Fingerprint raw rows for the state; with ``unchanged``, skip rows whose cells
        are those last delivered before mapping them."""
        self.raw_checks = {
            label: RawCheck(mapper, unchanged, __version__)
            for label, mapper in self.mappers.items()
        }

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def warnings(self) -> Counter[str]:
        """Soft-limit warnings from every mapper, wherever it ran."""
        found: Counter[str] = Counter()
        for mapper in self.mappers.values():
            found.update(mapper.warnings)
        if self._pool is not None:
            found.update(self._pool.warnings)
        return found

    def fraction(self) -> float | None:
        """Share of the current CSV read, for progress when the row count is unknown."""
        source = self._current
        if source is None or source.kind != "csv" or not source.size_bytes:
            return None
        return min(1.0, source.bytes_read() / source.size_bytes)

    def duplicate_plan(self, policy: str) -> DuplicatePlan:
        """Find duplicated users across all inputs (one extra, id-only read)."""
        if policy == "all":
            return no_plan(policy)
        started = time.monotonic()

        def opener(item: Input) -> Callable[[], Iterator[Record]]:
            return lambda: self.open(item).records

        stream = id_stream(
            [(item.label, opener(item)) for item in self.inputs],
            lambda label, cells: self.mappers[label].user_id_of(cells),
        )
        plan = plan_duplicates(stream, policy)
        log.info(
            "checked %d rows for duplicates in %.1f s: %d users on more than one row",
            plan.rows, time.monotonic() - started, plan.duplicate_users,
        )  # fmt: skip
        return plan


def _skip_reason(plan: DuplicatePlan | None, label: str, row: int) -> str:
    return DUPLICATE_REASON if plan is not None and plan.is_skipped(label, row) else ""


# Below this much input, starting worker processes costs more than it saves.
AUTO_WORKERS_MIN_BYTES = 4 * 1024 * 1024


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _close(source: Source) -> None:
    close = getattr(source.records, "close", None)
    if close is not None:
        close()


def run_job(
    patterns: Sequence[str],
    mapping: Mapping,
    options: RunOptions,
    outputs: Outputs,
    *,
    sheet: str | int | None = None,
    duplicates: str = "last",
    state_path: str | None = None,
    restart: bool = False,
    workers: int | None = None,
) -> JobResult:
    """Import the inputs; returns the summary, the exit code it earns, and advice."""
    started = time.monotonic()
    if duplicates == "all" and mapping.time is None:
        raise UsageProblem(
            "--duplicates all sends every row of a user, but the mapping has no `time:` "
            "column, so they would all carry the same time and Metrix may drop all but one "
            "as duplicates. Add `time: {column: ...}` to the mapping, or use "
            "--duplicates last (the default)."
        )
    if options.dry_run and state_path:
        raise UsageProblem(
            "--dry-run does not use --state (a dry run must not mark rows as done); "
            "`metrix-import plan ... --state PATH` shows what a run would send"
        )
    if options.only_changed and not state_path:
        raise UsageProblem(
            "--only-changed needs --state PATH: that file remembers what was delivered"
        )
    inputs = expand_inputs(patterns, sheet)
    state = StateStore(state_path) if state_path else None
    try:
        run_time = run_start_millis()
        if state is not None:
            info = state.begin(
                [item.label for item in inputs],
                input_fingerprint(sorted({item.path for item in inputs})),
                mapping.fingerprint,
                run_time,
                restart,
            )
            run_time = info.run_time_ms
            if info.resumed:
                log.warning("resuming the unfinished run from %s", state_path)
        job = Job(inputs, mapping, run_time)
        try:
            # Workers are forked before the event loop starts: forking a running loop
            # (and aiohttp's resolver threads) is not safe.
            job.start_workers(workers, encode=not options.dry_run)
            if state is not None:
                job.remember_raw(state.unchanged_raw if options.only_changed else None)
            return _run(job, options, outputs, state, duplicates, started, patterns)
        finally:
            job.close()
    finally:
        if state is not None:
            state.close()


def _run(
    job: Job,
    options: RunOptions,
    outputs: Outputs,
    state: StateStore | None,
    duplicates: str,
    started: float,
    patterns: Sequence[str],
) -> JobResult:
    plan = job.duplicate_plan(duplicates)
    mode = "dry-run" if options.dry_run else "run"
    summary = Summary(mode=mode, source=", ".join(patterns), encoding=_encoding(job))
    failures = job.failure_writer(outputs.failures)
    notes: list[str] = []
    if state is not None and state.run is not None and state.run.resumed:
        restored = state.restored()
        summary.rows_sent, summary.rows_failed = restored.sent, restored.failed
        summary.rows_skipped = sum(restored.skipped.values())
        summary.skipped.update(restored.skipped)
        summary.rows_invalid = restored.invalid
        summary.rows_total = restored.total
        summary.rows_valid = restored.total - restored.invalid
        summary.reasons.update(restored.reasons)
        for label, row, stage, error, cells in state.prior_failures():
            failures.write(row, stage, error, cells, label)
        notes.append(f"resumed: {restored.total:,} rows were already done before")
    total = plan.rows or None
    progress = choose_progress(outputs.progress, total, log, outputs.progress_interval)
    runner = Runner(options, summary, failures, ledger=state, progress=progress)
    # Before a resume nothing is done: no per-row look-up at all.
    skip = state.is_done if state is not None and state.has_done else None
    try:
        asyncio.run(_drive(runner, job.outcomes(skip, plan), job.rest(), job.fraction))
    finally:
        # The loop is over: what is left is writing the reports, a matter of
        # milliseconds. A Ctrl-C now must not leave them half-written.
        _hold_signals()
        progress.close()
        failures.close()
    summary.warnings.update(job.warnings())
    summary.blank_rows = job.blank_rows
    summary.failures_path = str(outputs.failures) if failures.count else None
    summary.duration_seconds = time.monotonic() - started
    run_state = runner.state
    summary.extra.update(
        requests=run_state.requests,
        retries=run_state.retries,
        status_counts=dict(sorted(run_state.status_counts.items())),
        users_per_second=round(summary.rows_sent / max(summary.duration_seconds, 1e-9), 1),
        aborted=None if runner.abort is None else runner.abort.reason,
        duplicates=plan.as_dict(),
    )
    if state is not None:
        status = "finished" if runner.abort is None else runner.abort.code
        state.finish("finished" if status == "finished" else _status(status), summary.as_dict())
    if outputs.summary_json is not None:
        summary.write_json(outputs.summary_json)
    return JobResult(
        summary, exit_code(summary, runner), advice(runner, summary, job.mapping), notes
    )


AUTOMATION_WARNING = (
    "Importing users can start Metrix automation campaigns aimed at them (welcome "
    "messages, SMS, push). Check the app's active campaigns before a large import."
)


def plan_job(
    patterns: Sequence[str],
    mapping: Mapping,
    *,
    sheet: str | int | None,
    duplicates: str,
    state_path: str | None,
    concurrency: int,
    rate: float | None,
    latency_ms: float,
    summary_json: Path | None,
    workers: int | None = None,
) -> JobResult:
    """One read of the inputs that sends nothing: what a run would do, and how long."""
    started = time.monotonic()
    job = Job(expand_inputs(patterns, sheet), mapping, run_start_millis())
    job.start_workers(workers, encode=True)
    try:
        return _plan(job, started, duplicates, state_path, concurrency, rate, latency_ms,
                     summary_json, patterns)  # fmt: skip
    finally:
        job.close()


def _plan(
    job: Job,
    started: float,
    duplicates: str,
    state_path: str | None,
    concurrency: int,
    rate: float | None,
    latency_ms: float,
    summary_json: Path | None,
    patterns: Sequence[str],
) -> JobResult:
    plan = job.duplicate_plan(duplicates)
    summary = Summary(mode="plan", source=", ".join(patterns), encoding=_encoding(job))
    reader = StateReader(state_path)
    new = changed = unchanged = 0
    try:
        chunk: list[tuple[str, bytes]] = []
        for outcome in job.outcomes(None, plan):
            summary.rows_total += 1
            if outcome.mapped is None and outcome.stage == "skip":
                summary.rows_valid += 1
                summary.rows_skipped += 1
                summary.skipped[outcome.error] += 1
            elif outcome.mapped is None:
                summary.rows_invalid += 1
                summary.rows_failed += 1
                summary.reasons.update(outcome.keys)
            else:
                summary.rows_valid += 1
                chunk.append((outcome.mapped.user_id, content_fingerprint(outcome.mapped)))
                if len(chunk) >= 900:
                    counts = _classify(reader, chunk)
                    new, changed, unchanged = (
                        new + counts[0],
                        changed + counts[1],
                        unchanged + counts[2],
                    )
                    chunk = []
        counts = _classify(reader, chunk)
        new, changed, unchanged = new + counts[0], changed + counts[1], unchanged + counts[2]
    finally:
        reader.close()
    to_send = new + changed + unchanged
    per_second = concurrency / max(latency_ms / 1000, 1e-6)
    if rate:
        per_second = min(per_second, rate)
    summary.rows_skipped += to_send
    summary.skipped["plan only, not sent"] += to_send
    summary.warnings.update(job.warnings())
    summary.duration_seconds = time.monotonic() - started
    summary.extra.update(
        users_new=new,
        users_changed=changed,
        users_unchanged=unchanged,
        duplicates=plan.as_dict(),
        estimate={
            "concurrency": concurrency,
            "rate": rate,
            "assumed_latency_ms": latency_ms,
            "users_per_second": round(per_second, 1),
            "seconds_all": round(to_send / per_second, 1),
            "seconds_only_changed": round((new + changed) / per_second, 1),
        },
    )
    if summary_json is not None:
        summary.write_json(summary_json)
    code = ExitCode.ROWS_FAILED if summary.rows_invalid else ExitCode.OK
    return JobResult(summary, code, notes=[render_plan(summary)])


def _classify(reader: StateReader, pairs: list[tuple[str, bytes]]) -> tuple[int, int, int]:
    unchanged, changed = reader.classify(pairs)
    users = {user for user, _ in pairs}
    return len(users - unchanged - changed), len(changed), len(unchanged)


def render_plan(summary: Summary) -> str:
    """The human plan: what a run would send, and roughly how long it would take."""
    extra = summary.extra
    dup = extra["duplicates"]
    estimate = extra["estimate"]
    lines = [
        f"Plan for {summary.source} (nothing was sent)",
        f"  rows        {summary.rows_total:>12,}",
        f"  valid       {summary.rows_valid:>12,}",
        f"  invalid     {summary.rows_invalid:>12,}",
        f"  duplicates  {dup['rows']:>12,}  rows of {dup['users']:,} users "
        f"(--duplicates {dup['policy']})",
        f"  users new   {extra['users_new']:>12,}",
        f"  changed     {extra['users_changed']:>12,}",
        f"  unchanged   {extra['users_unchanged']:>12,}  (skipped with --only-changed)",
    ]
    for reason, count in summary.reasons.most_common(5):
        lines.append(f"    {count:>10,}  {reason}")
    rate = f", --rate {estimate['rate']:g}/s" if estimate["rate"] else ""
    lines.append(
        f"Estimated time at --concurrency {estimate['concurrency']}{rate} and "
        f"{estimate['assumed_latency_ms']:g} ms per request: "
        f"{_duration(estimate['seconds_all'])} for all valid users, "
        f"{_duration(estimate['seconds_only_changed'])} with --only-changed"
    )
    lines.append(f"Warning: {AUTOMATION_WARNING}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def validate_job(
    source: str, mapping: Mapping, failures_path: Path, workers: int | None
) -> tuple[Summary, list[str]]:
    """Read and map every row without sending; failures go to ``failures_path``."""
    started = time.monotonic()
    job = Job(expand_inputs([source], mapping.source.sheet), mapping, run_start_millis())
    summary = Summary(mode="validate", source=source, encoding=_encoding(job))
    writer = job.failure_writer(failures_path)
    job.start_workers(workers, encode=False)
    try:
        for outcome in job.outcomes(None, no_plan("all")):
            summary.rows_total += 1
            if outcome.mapped is not None:
                summary.rows_valid += 1
                continue
            summary.rows_invalid += 1
            summary.reasons.update(outcome.keys)
            writer.write(outcome.row, outcome.stage, outcome.error, outcome.cells, outcome.source)
    finally:
        writer.close()
        job.close()
    summary.rows_failed = summary.rows_invalid
    summary.rows_skipped = summary.rows_valid
    summary.skipped["validated only, not sent"] = summary.rows_valid
    summary.blank_rows = job.blank_rows
    summary.warnings.update(job.warnings())
    summary.failures_path = str(failures_path) if writer.count else None
    summary.duration_seconds = time.monotonic() - started
    return summary, job.descriptions


def _hold_signals() -> None:
    """Ignore Ctrl-C and SIGTERM from here to the end of the process."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _status(code: str) -> str:
    return "interrupted" if code == "interrupted" else "aborted"


def _encoding(job: Job) -> str | None:
    return ", ".join(sorted(job.encodings)) or None


async def _drive(
    runner: Runner,
    stream: Iterator[Outcome],
    rest: Iterator[tuple[str, int, list[str], str]],
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
            " (or run the same command again with --state to resume)."
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
    level = logging.DEBUG if verbose else (logging.WARNING if progress_bar else logging.INFO)
    stderr.setLevel(level)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    stderr.addFilter(masking)
    root.addHandler(stderr)
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.addFilter(masking)
        root.addHandler(handler)
