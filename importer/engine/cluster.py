"""``run --engine dask``: the same run, its partitions read, mapped and sent by the
workers of a Dask cluster.

The coordinator (this process) checks everything as a single-machine run does, finds
duplicates with the same id pass, and cuts the inputs into partitions: a CSV file into
byte ranges that start at record starts (``importer.edges.csv_partitions``), a
Parquet file into runs of its row groups, every other input (a workbook sheet, a
compressed file) whole. Each worker reads its
partition itself and runs it through the same reading, mapping, runner and transport
as a single-machine run, counting into its own ``Tally``; it returns the counts and
the rows for the failure and warnings files. The coordinator adds them up in input
order and writes the one failure CSV, the one warnings file and the one summary.

One pace holds for the whole cluster (``importer.engine.shared_pace``): a
``PaceKeeper`` actor hands out start times for ``--rate`` and owns the one adaptive
limiter of ``--concurrency auto``, whose in-flight slots the partitions lease; a 429 or
Retry-After one worker gets slows or holds the others' next requests too. Not yet:
``--state`` and ``--only-changed`` (the state would have to live with the coordinator).
Dask is imported only here, and only when a run asks for it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.core.config import Mapping
from importer.core.pacing import PacingStats
from importer.edges import inputs as input_kinds
from importer.edges import remote
from importer.edges.csv_partitions import CsvPlan, open_partition, plan_from_marks
from importer.edges.duplicates import DuplicatePlan
from importer.edges.excel import EXCEL_SUFFIXES
from importer.edges.outputs import check_outputs
from importer.edges.progress import NoProgress
from importer.edges.readers import Marks, Record, Source
from importer.edges.report import FailureWriter, Summary, warnings_path
from importer.edges.tables import RowGroups
from importer.edges.transport import HttpTransport
from importer.engine.inputs import Input, Job, expand_inputs
from importer.engine.pipeline import run_start_millis
from importer.engine.run import JobResult, Outputs, advice, exit_code, pacing_summary
from importer.engine.runner import Runner, SendOptions
from importer.engine.sending import Abort, AbortCode, RetryPolicy
from importer.engine.shared_pace import ClusterPacer, PaceKeeper, SharedPacer, SharedStop, leased
from importer.engine.tally import Tally
from importer.engine.usage import check_run
from importer.errors import UsageProblem

log = logging.getLogger("metrix_importer")

# (row, stage, error, cells, source label): one line of the failure or warnings file.
ReportRow = tuple[int, str, str, list[str], str]


@dataclass(frozen=True)
class Cluster:
    """Where to run: a running scheduler's address, or a local cluster of ``workers``
    processes started and stopped by the run."""

    scheduler: str | None = None
    workers: int = 2
    rows_per_partition: int = 100_000


@dataclass(frozen=True)
class Piece:
    """One partition: an input and, for a CSV file that was split, which span of it."""

    item: Input
    plan: CsvPlan | None = None
    index: int | None = None
    groups: RowGroups | None = None  # a Parquet file's row groups

    def describe(self) -> str:
        if self.groups is not None:
            span = self.groups
            return (f"{self.item.path} (row groups {span.start + 1}-{span.end}, rows "
                    f"{span.first:,}-{span.first + span.rows - 1:,})")  # fmt: skip
        if self.plan is None or self.index is None:
            return f"{self.item.path} (whole)"
        return f"{self.item.path} (part {self.index + 1} of {len(self.plan.parts)})"


@dataclass
class PieceResult:
    """What a worker reports for its partition."""

    summary: Summary
    failures: list[ReportRow] = field(default_factory=list)
    warned: list[ReportRow] = field(default_factory=list)
    abort: tuple[str, str] | None = None  # (AbortCode value, reason)
    requests: int = 0
    retries: int = 0
    status_counts: Counter[str] = field(default_factory=Counter)


def run_on_cluster(
    patterns: Sequence[str],
    mapping: Mapping,
    options: SendOptions,
    outputs: Outputs,
    cluster: Cluster,
    *,
    retry: RetryPolicy | None = None,
    duplicates: str = "last",
    allow_insecure: bool = False,
    client: Any = None,
) -> JobResult:
    """Import the inputs on a Dask cluster (``client``, a ``distributed.Client``, or one
    made from ``cluster``)."""
    started = time.monotonic()
    check_run(options, mapping, duplicates=duplicates, state_path=None,
              allow_insecure=allow_insecure)  # fmt: skip
    inputs = expand_inputs(patterns, mapping)
    # Every output must be creatable, and none may be an input, before anything is sent.
    check_outputs(outputs.named(), sorted({item.path for item in inputs}))
    job = Job(inputs, mapping, run_start_millis())
    planner = _Planner(job, cluster.rows_per_partition)
    plan = job.duplicate_plan(duplicates, outputs.progress, planner.open)
    pieces = list(planner.pieces())
    log.info("%d partitions for %d input(s)", len(pieces), len(job.inputs))
    with _client(cluster, client) as dask:
        if _has_dashboard(dask, cluster, client):
            log.warning("Dask dashboard: %s", dask.dashboard_link)
        stop = f"metrix-stop-{uuid.uuid4().hex}"  # set by a worker whose key is refused
        keeper, share = None, max(1, len(dask.scheduler_info().get("workers", {})))
        adaptive = options.pacing_config()
        if not options.dry_run and (options.rate is not None or adaptive is not None):
            # One rate and one adaptive limit for the cluster, kept in one place.
            keeper = dask.submit(PaceKeeper, options.rate, pacing=adaptive, actor=True).result()
        found = None if keeper is None else KeeperRef(keeper._address, keeper.key)
        futures = [
            dask.submit(run_piece, piece, mapping, options, retry or RetryPolicy(),
                        job.run_time_ms, _for_label(plan, piece.item.label), found,
                        stop, share, pure=False)
            for piece in pieces
        ]  # fmt: skip
        results = _collect(futures, pieces, outputs.progress, started)
        pacing = _pacing(keeper)
    return _conclude(job, results, plan, options, outputs, patterns, started, pacing)


@dataclass(frozen=True)
class KeeperRef:
    """Where the ``PaceKeeper`` actor lives. Handed to the partitions instead of the
    actor itself, so they do not depend on it: were its worker to die, Dask would fail
    every partition that does; this way they go on, each pacing itself."""

    address: str
    key: str

    def handle(self) -> Any:
        distributed: Any = importlib.import_module("distributed")
        handle = distributed.Actor(PaceKeeper, self.address, self.key)
        # Without a future of its own, a call whose worker is gone fails at once
        # instead of waiting for Dask to re-create the actor (which it never does).
        handle._future = None
        return handle


def _pacing(keeper: Any) -> PacingStats | None:
    """The cluster limiter's last state (None: no limiter, or its worker died)."""
    if keeper is None:
        return None
    try:
        stats: PacingStats | None = keeper.stats().result(timeout=5)
    except (RuntimeError, OSError, TimeoutError):
        return None
    return stats


def _has_dashboard(dask: Any, cluster: Cluster, given: Any) -> bool:
    """A local cluster serves its dashboard only with bokeh installed (without it the
    link answers 404); a cluster started elsewhere says for itself."""
    if "dashboard" not in dask.scheduler_info().get("services", {}):
        return False
    return bool(given is not None or cluster.scheduler or importlib.util.find_spec("bokeh"))


def _collect(
    futures: list[Any], pieces: list[Piece], progress: bool, started: float
) -> list[PieceResult]:
    """The partitions' results in input order; a log line as each one finishes."""
    distributed: Any = importlib.import_module("distributed")
    where = {future.key: index for index, future in enumerate(futures)}
    results: list[PieceResult | None] = [None] * len(futures)
    rows = sent = failed = 0
    for done, future in enumerate(distributed.as_completed(futures), start=1):
        index = where[future.key]
        result: PieceResult = future.result()
        results[index] = result
        part = result.summary
        rows, sent, failed = (
            rows + part.rows_total,
            sent + part.rows_sent,
            failed + part.rows_failed,
        )
        if progress:
            speed = sent / max(time.monotonic() - started, 1e-9)
            log.info(
                "partition %d of %d done (%s): %s rows so far, %s sent, %s failed, %.0f users/s",
                done, len(futures), pieces[index].describe(), f"{rows:,}", f"{sent:,}",
                f"{failed:,}", speed,
            )  # fmt: skip
    return [result for result in results if result is not None]


def run_piece(
    piece: Piece,
    mapping: Mapping,
    options: SendOptions,
    retry: RetryPolicy,
    run_time_ms: int,
    duplicates: DuplicatePlan,
    keeper: KeeperRef | None = None,
    stop: str | None = None,
    share: int = 1,
) -> PieceResult:
    """On a worker: read, map and send one partition as a single-machine run would;
    with ``keeper`` (where the ``PaceKeeper`` actor is), at the cluster's one pace (``share``: the
    cluster's workers, to share ``--rate`` among should the keeper be lost); with
    ``stop`` (the name of the cluster's stop flag), stopping when another worker's run
    is aborted for the key or the endpoint."""
    job = _PieceJob(piece, mapping, run_time_ms)
    try:
        job.start_workers(0, encode=not options.dry_run)  # the cluster is the parallelism
        summary = Summary(mode="dry-run" if options.dry_run else "run")
        failures, warned = _Collected(), _Collected()
        tally = Tally(summary, failures, None, warned)
        reading = job.reading(None, duplicates)
        shared = None if stop is None else SharedStop(_DaskFlag(stop))
        actor = None if keeper is None else keeper.handle()
        runner = asyncio.run(_drive(options, retry, tally, reading, actor, shared, share))
        summary.blank_rows = reading.blank_rows
        summary.warnings.update(job.warnings())
    finally:
        job.close()
    result = PieceResult(summary, failures.rows, warned.rows)
    if runner.abort is not None:
        result.abort = (runner.abort.code.value, runner.abort.reason)
    stats = runner.sender.stats if runner.sender is not None else None
    if stats is not None:
        result.requests, result.retries = stats.requests, stats.retries
        result.status_counts.update(stats.status_counts)
    return result


async def _drive(
    options: SendOptions,
    retry: RetryPolicy,
    tally: Tally,
    reading: Any,
    keeper: Any,
    shared: SharedStop | None = None,
    share: int = 1,
) -> Runner:
    pacer = options.make_pacer()
    if keeper is not None and pacer.limiter is not None:
        pacer = ClusterPacer(keeper, options.senders, options.outage_seconds, cap=options.rate,
                             share=share, config=options.pacing_config())  # fmt: skip
    elif keeper is not None:
        pacer = SharedPacer(keeper, options.rate, options.outage_seconds, share=share)
    if options.dry_run:
        runner = Runner(options, tally, None, progress=NoProgress())
        await runner.run(reading, reading.leftovers(), reading.fraction)
        return runner
    async with HttpTransport(options.endpoint, options.app_id, options.api_key,
                             options.senders, options.timeout) as transport:  # fmt: skip
        runner = Runner(options, tally, transport, retry=retry, pacer=pacer,
                        progress=NoProgress())  # fmt: skip
        async with leased(pacer):
            await _send(runner, reading, shared)
    return runner


async def _send(runner: Runner, reading: Any, shared: SharedStop | None) -> None:
    if shared is None:
        await runner.run(reading, reading.leftovers(), reading.fraction)
        return
    found = await asyncio.to_thread(shared.seen)
    if found is not None:  # the run is over: send nothing, report every row
        runner.stop.trigger(found)
    watcher = asyncio.create_task(shared.watch(runner.stop))
    try:
        await runner.run(reading, reading.leftovers(), reading.fraction)
    finally:
        watcher.cancel()
    if runner.abort is not None:
        await asyncio.to_thread(shared.tell, runner.abort)


class _DaskFlag:
    """The cluster's stop flag: a Dask Event, and a Variable with the reason."""

    def __init__(self, name: str) -> None:
        distributed: Any = importlib.import_module("distributed")
        self.event = distributed.Event(name)
        self.value = distributed.Variable(name)

    def get(self) -> list[str] | None:
        return list(self.value.get()) if self.event.is_set() else None

    def set(self, value: list[str]) -> None:
        self.value.set(value)
        self.event.set()


class _PieceJob(Job):
    """A job of one input whose records are those of one partition."""

    def __init__(self, piece: Piece, mapping: Mapping, run_time_ms: int) -> None:
        self.piece = piece
        super().__init__([piece.item], mapping, run_time_ms)

    def open(self, item: Input, marks: Marks | None = None) -> Source:
        if self.piece.groups is not None:
            return input_kinds.open_input(item.path, row_groups=self.piece.groups)
        if self.piece.plan is None:
            return super().open(item, marks)
        return open_partition(self.piece.plan, self.piece.index)


class _Collected(FailureWriter):
    """Report rows kept in memory, for the coordinator to write."""

    def __init__(self) -> None:
        super().__init__(Path("unused"), [])
        self.rows: list[ReportRow] = []

    def write(
        self, row: int | str, stage: str, error: str, cells: list[str], source: str = ""
    ) -> None:
        self.rows.append((int(row), stage, error, list(cells), source))
        self.count += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Planner:
    """Plans the partitions of CSV inputs from the record starts noted while the
    duplicate check reads them, so planning costs no read of its own (only with
    ``--duplicates all``, which has no duplicate check, is a CSV read for it)."""

    def __init__(self, job: Job, rows_per_partition: int) -> None:
        self.job = job
        self.every = rows_per_partition
        self.read: dict[str, tuple[Marks, Source, list[int]]] = {}

    def open(self, item: Input) -> Source:
        """``item`` opened to note where its partitions can start as it is read."""
        marks = Marks(self.every)
        source = self.job.open(item, marks)
        count = [0]
        self.read[item.label] = (marks, source, count)
        records = source.records

        def counted() -> Iterator[Record]:
            for record in records:
                count[0] += 1
                yield record

        source.records = counted()
        return source

    def pieces(self) -> Iterator[Piece]:
        """A CSV file's byte ranges, or the whole input."""
        for item in self.job.inputs:
            if _parquet(item):
                yield from self._row_groups(item)
                continue
            if not _plain_local_file(item):
                yield Piece(item)
                continue
            if item.label not in self.read:
                for _ in self.open(item).records:
                    pass
            marks, source, count = self.read[item.label]
            header_row = self.job.mapping.source.header_row
            plan = plan_from_marks(Path(item.path), source, marks, header_row, count[0])
            if not plan.parts:
                log.info("%s is one partition: %s", item.path, plan.reason)
                yield Piece(item)
                continue
            for index in range(len(plan.parts)):
                yield Piece(item, plan, index)

    def _row_groups(self, item: Input) -> Iterator[Piece]:
        """A Parquet file's row groups, about ``rows_per_partition`` rows at a time."""
        sizes = input_kinds.row_groups(item.path)
        spans: list[RowGroups] = []
        start, first, taken = 0, 1, 0
        for index, rows in enumerate(sizes):
            taken += rows
            if taken >= self.every or index == len(sizes) - 1:
                spans.append(RowGroups(start, index + 1, first, taken))
                start, first, taken = index + 1, first + taken, 0
        if len(spans) <= 1:
            log.info("%s is one partition: %d row group(s)", item.path, len(sizes))
            yield Piece(item)
            return
        for span in spans:
            yield Piece(item, groups=span)


def _parquet(item: Input) -> bool:
    """A Parquet file or object named by its path (split by row groups)."""
    if item.table is not None or item.sheet is not None:
        return False
    return input_kinds.kind_of(item.path) == "parquet"


def _plain_local_file(item: Input) -> bool:
    """Whether an input may be a CSV file to split: not data handed over in memory, not
    a URL, Parquet or JSON Lines file, not a workbook sheet or zip archive (those are
    whole partitions, known without reading them)."""
    path = item.path
    if item.table is not None or item.sheet is not None or remote.is_url(path):
        return False
    if input_kinds.kind_of(path) != "sheet" or Path(path).suffix.lower() in EXCEL_SUFFIXES:
        return False
    try:
        with open(path, "rb") as probe:
            return probe.read(4) != b"PK\x03\x04"
    except OSError:
        return False


def _for_label(plan: DuplicatePlan, label: str) -> DuplicatePlan:
    """The part of the duplicate plan a partition of ``label`` needs."""
    mine = DuplicatePlan(plan.policy)
    if label in plan.skip:
        mine.skip[label] = plan.skip[label]
    if label in plan.error:
        mine.error[label] = plan.error[label]
    return mine


class _client:
    """The given client, or one on a scheduler's address, or on a local cluster."""

    def __init__(self, cluster: Cluster, given: Any) -> None:
        self.cluster, self.given = cluster, given
        self.owned: list[Any] = []

    def __enter__(self) -> Any:
        if self.given is not None:
            return self.given
        try:
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise UsageProblem(
                "--engine dask needs Dask: pip install 'metrix-importer[dask]'"
            ) from None
        if self.cluster.scheduler:
            client = distributed.Client(self.cluster.scheduler)
        else:
            local = distributed.LocalCluster(n_workers=self.cluster.workers, threads_per_worker=1,
                                 processes=True, dashboard_address=":0")  # fmt: skip
            self.owned.append(local)
            client = distributed.Client(local)
        self.owned.insert(0, client)
        return client

    def __exit__(self, *exc: object) -> None:
        for thing in self.owned:
            thing.close()


def _conclude(
    job: Job,
    results: list[PieceResult],
    plan: DuplicatePlan,
    options: SendOptions,
    outputs: Outputs,
    patterns: Sequence[str],
    started: float,
    pacing: PacingStats | None = None,
) -> JobResult:
    """Add the partitions' results up, in input order, into the one set of reports."""
    mode = "dry-run" if options.dry_run else "run"
    summary = Summary(mode=mode, source=", ".join(patterns), encoding=job.encoding)
    failures = job.failure_writer(outputs.failures)
    listed = job.failure_writer(warnings_path(outputs.failures))
    abort: Abort | None = None
    requests = retries = 0
    statuses: Counter[str] = Counter()
    try:
        for result in results:
            _add(summary, result.summary)
            for row, stage, error, cells, source in result.failures:
                failures.write(row, stage, error, cells, source)
            for row, stage, error, cells, source in result.warned:
                listed.write(row, stage, error, cells, source)
            if result.abort is not None and abort is None:
                abort = Abort(result.abort[1], AbortCode(result.abort[0]))
            requests, retries = requests + result.requests, retries + result.retries
            statuses.update(result.status_counts)
    finally:
        failures.close()
        listed.close()
    summary.failures_path = str(outputs.failures) if failures.count else None
    summary.warnings_path = str(listed.path) if listed.count else None
    summary.duration_seconds = time.monotonic() - started
    summary.extra.update(
        requests=requests, retries=retries, status_counts=dict(sorted(statuses.items())),
        users_per_second=round(summary.rows_sent / max(summary.duration_seconds, 1e-9), 1),
        aborted=None if abort is None else abort.reason, duplicates=plan.as_dict(),
        pacing=pacing_summary(pacing), engine="dask", partitions=len(results),
    )  # fmt: skip
    if outputs.summary_json is not None:
        summary.write_json(outputs.summary_json)
    return JobResult(summary, exit_code(summary, abort), advice(abort, summary, job.mapping))


def _add(total: Summary, part: Summary) -> None:
    total.rows_total += part.rows_total
    total.rows_valid += part.rows_valid
    total.rows_invalid += part.rows_invalid
    total.rows_sent += part.rows_sent
    total.rows_failed += part.rows_failed
    total.rows_skipped += part.rows_skipped
    total.blank_rows += part.blank_rows
    total.reasons.update(part.reasons)
    total.skipped.update(part.skipped)
    total.warnings.update(part.warnings)
