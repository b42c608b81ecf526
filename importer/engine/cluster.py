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
Retry-After one worker gets slows or holds the others' next requests too. With
``--state``, the coordinator keeps the state file and records what the workers report;
``--only-changed`` asks the workers for a partition's user ids first and ships the
state's answers with it (``importer.engine.cluster_state``).
Dask is imported only here, and only when a run asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import itertools
import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
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
from importer.engine.cluster_state import (
    ClusterState,
    Inbox,
    PieceLedger,
    PieceState,
    Reporter,
    Settled,
)
from importer.engine.inputs import Input, Job, expand_inputs
from importer.engine.pipeline import run_start_millis
from importer.engine.run import JobResult, Outputs, advice, exit_code, pacing_summary
from importer.engine.runner import Runner, SendOptions
from importer.engine.sending import Abort, AbortCode, RetryPolicy
from importer.engine.shared_pace import ClusterPacer, PaceKeeper, SharedPacer, SharedStop, leased
from importer.engine.tally import Tally
from importer.engine.usage import check_run
from importer.errors import Interrupted, OutputError, UsageProblem

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

    @property
    def key(self) -> str:
        """The partition's name in the state file: its input and byte range (or row
        groups)."""
        if self.groups is not None:
            return f"{self.item.label}\x1fgroups {self.groups.start}:{self.groups.end}"
        if self.plan is None or self.index is None:
            return f"{self.item.label}\x1fwhole"
        span = self.plan.parts[self.index]
        return f"{self.item.label}\x1f{span.start}:{span.end}"

    def rows(self) -> tuple[int, int | None]:
        """The first and last row numbers it can hold (None: to the end)."""
        if self.groups is not None:
            return self.groups.first, self.groups.first + self.groups.rows - 1
        if self.plan is None or self.index is None:
            return 0, None
        parts = self.plan.parts
        last = parts[self.index + 1].rows if self.index + 1 < len(parts) else None
        return parts[self.index].rows + 1, last


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
    settled: Settled | None = None  # with --state: what to record in it


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
    state_path: str | None = None,
    restart: bool = False,
    signals: bool = True,
) -> JobResult:
    """Import the inputs on a Dask cluster (``client``, a ``distributed.Client``, or one
    made from ``cluster``); with ``state_path``, resumably (kept by this process).

    With ``signals`` (the command line), Ctrl-C and SIGTERM while partitions run stop
    them in order and the reports are written (``_Interruption``); a library caller
    keeps its own signal handling."""
    started = time.monotonic()
    check_run(options, mapping, duplicates=duplicates, state_path=state_path,
              allow_insecure=allow_insecure)  # fmt: skip
    if signals and threading.current_thread() is threading.main_thread():
        # Until the partitions run, SIGTERM stops the run as Ctrl-C does (with a
        # message), not silently.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    inputs = expand_inputs(patterns, mapping)
    # Every output must be creatable, and none may be an input, before anything is sent.
    check_outputs(outputs.named(state_path), sorted({item.path for item in inputs}))
    state = ClusterState(state_path, inputs, mapping, restart) if state_path else None
    stop = f"metrix-stop-{uuid.uuid4().hex}"  # set on Ctrl-C, or by a worker refused its key
    interruption = _Interruption(stop) if signals else None
    routed: dict[int, Any] = {}
    handed = False  # whether the partitions were handed to the cluster
    try:
        job = Job(inputs, mapping, run_start_millis() if state is None else state.run_time_ms)
        planner = _Planner(job, cluster.rows_per_partition)
        plan = job.duplicate_plan(duplicates, outputs.progress, planner.open)
        # From here until the reports are written, a first Ctrl-C or SIGTERM is counted,
        # not raised, and stops the partitions in order (``_Interruption``).
        routed = _route_signals(interruption)
        pieces = list(planner.pieces())
        log.info("%d partitions for %d input(s)", len(pieces), len(job.inputs))
        todo = [piece for piece in pieces if state is None or piece.key not in state.parts]
        if len(todo) < len(pieces):
            log.info("%d partitions were finished before: not read again", len(pieces) - len(todo))
        with _client(cluster, client) as dask:
            if _has_dashboard(dask, cluster, client):
                log.warning("Dask dashboard: %s", dask.dashboard_link)
            keeper, share = None, max(1, len(dask.scheduler_info().get("workers", {})))
            adaptive = options.pacing_config()
            if not options.dry_run and (options.rate is not None or adaptive is not None):
                # One rate and one adaptive limit for the cluster, kept in one place.
                keeper = dask.submit(PaceKeeper, options.rate, pacing=adaptive,
                                     actor=True).result()  # fmt: skip
            found = None if keeper is None else KeeperRef(keeper._address, keeper.key)

            inbox = None if state is None else f"metrix-settled-{uuid.uuid4().hex}"

            def send(piece: Piece, given: PieceState | None) -> Any:
                return dask.submit(run_piece, piece, mapping, options, retry or RetryPolicy(),
                                   job.run_time_ms, _for_label(plan, piece.item.label), found,
                                   stop, share, given, inbox, pure=False)  # fmt: skip

            def users(piece: Piece, given: PieceState) -> Any:
                return dask.submit(piece_users, piece, mapping, job.run_time_ms, given,
                                   pure=False)  # fmt: skip

            window = 2 * max(2, len(dask.scheduler_info()["workers"]))
            naming = users if options.only_changed else None
            reports = None if inbox is None else Inbox(dask, inbox)
            if interruption is not None:
                interruption.check()  # stopped while the cluster started: nothing is sent
            dispatch = _Dispatch(todo, send, state, naming, window, reports)
            dispatch.waiting, handed = interruption, True
            try:
                results = _collect(dispatch, outputs.progress, started)
            finally:
                if dispatch.inbox is not None:
                    dispatch.inbox.close()
            _DaskFlag.forget(stop)  # a scheduler that outlives the run keeps nothing
            pacing = _pacing(keeper)
        return _conclude(job, results, plan, options, outputs, patterns, started, state,
                         len(pieces), pacing)  # fmt: skip
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(state_path, handed)) from None
    finally:
        _restore_signals(routed)
        if state is not None:
            state.close()


def _interrupted(state_path: str | None, handed: bool) -> str:
    """What a Ctrl-C of the coordinator leaves, and how to go on (``handed``: whether
    the partitions had been handed to the cluster)."""
    if not handed:
        return (
            "interrupted before any partition started: this run sent nothing"
            + (f" (what earlier runs did is kept in {state_path})" if state_path else "")
            + "; run the same command again to start"
        )
    said = "interrupted: the partitions under way were stopped; no summary or failure CSV "
    if state_path:
        return (
            f"{said}was written, but what was delivered is kept in {state_path}: run the same "
            "command again to resume"
        )
    return (
        f"{said}was written, and without --state this run cannot resume: run it again "
        "(users already sent are sent again with the same message ids, which Metrix drops), "
        "adding --state PATH to make it resumable"
    )


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


class _Dispatch:
    """Hands the partitions to the cluster. With ``users`` (--only-changed), a partition
    is first read for its user ids, and sent with the state's answers for them; then at
    most ``window`` partitions are under way, so the answers held stay few."""

    def __init__(
        self,
        pieces: list[Piece],
        send: Callable[[Piece, PieceState | None], Any],
        state: ClusterState | None,
        users: Callable[[Piece, PieceState], Any] | None,
        window: int,
        inbox: Inbox | None = None,
    ) -> None:
        distributed: Any = importlib.import_module("distributed")
        self.pieces, self.send, self.state, self.users = pieces, send, state, users
        self.inbox = inbox  # the workers' reports on the way, with --state
        self.waiting: _Interruption | None = None  # told while waiting, with signals
        self.running = distributed.as_completed()
        self.where: dict[str, tuple[int, bool]] = {}  # future key: (piece, naming users)
        self.upcoming = iter(range(len(pieces)))
        self.start(len(pieces) if users is None else window)

    def start(self, count: int) -> None:
        for index in itertools.islice(self.upcoming, count):
            piece = self.pieces[index]
            if self.users is not None and self.state is not None:
                self._add(self.users(piece, self._state(piece, None)), index, True)
            else:
                given = None if self.state is None else self._state(piece, None)
                self._add(self.send(piece, given), index, False)

    def _state(self, piece: Piece, users: list[str] | None) -> PieceState:
        assert self.state is not None
        return self.state.piece(piece.item.label, *piece.rows(), users)

    def _add(self, future: Any, index: int, naming: bool) -> None:
        self.where[future.key] = (index, naming)
        self.running.add(future)

    def finished(self) -> Iterator[tuple[int, PieceResult]]:
        """(partition, result) as each partition finishes, recorded in the state."""
        while not self.running.is_empty():
            future = self._next()
            index, naming = self.where.pop(future.key)
            piece = self.pieces[index]
            if naming:
                self._add(self.send(piece, self._state(piece, future.result())), index, False)
                continue
            result: PieceResult = future.result()
            if self.state is not None and result.settled is not None:
                if self.inbox is not None:  # what it reported before comes first
                    self.inbox.drain(self.state)
                complete = result.abort is None
                self.state.record(piece.key, result.settled, result.summary.blank_rows, complete)
                result.settled = None  # recorded: no need to keep it
            self.start(1)
            yield index, result

    def _next(self) -> Any:
        """The next finished future; meanwhile, what the workers report is recorded
        and an interruption is passed on."""
        inbox, state, waiting = self.inbox, self.state, self.waiting
        while not self.running.has_ready():
            if inbox is not None and state is not None:
                inbox.drain(state)
            if waiting is not None:
                waiting.check()
            time.sleep(0.1)
        return next(self.running)


class _Interruption:
    """Ctrl-C or SIGTERM from the end of the duplicate check until the reports are
    written (before it, Ctrl-C stops at once: nothing has been sent). The first asks
    every partition to stop as a single-machine run does — requests under way may
    finish, its other rows go to the failure CSV unsent — so the reports are still
    written; partitions not started yet see it too and send nothing. The second stops
    at once.

    The signal only counts; the stop is passed on between two waits, never in the
    middle of recording a finished partition."""

    def __init__(self, stop: str) -> None:
        self.stop = stop  # the cluster's stop flag (see ``_DaskFlag``)
        self.signals = 0
        self.passed_on = False

    def __call__(self, signum: int, frame: object) -> None:
        self.signals += 1
        if self.signals > 1:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.signals and not self.passed_on:
            self.passed_on = True
            log.warning("interrupted: stopping every partition and listing what it did "
                        "not send (Ctrl-C again to stop at once)")  # fmt: skip
            _DaskFlag(self.stop).set([AbortCode.INTERRUPTED.value, "the run was interrupted"])


def _route_signals(interruption: _Interruption | None) -> dict[int, Any]:
    """SIGINT and SIGTERM to ``interruption`` (main thread only); the handlers before."""
    if interruption is None or threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, interruption) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(before: dict[int, Any]) -> None:
    for sig, handler in before.items():
        signal.signal(sig, handler)


def _collect(dispatch: _Dispatch, progress: bool, started: float) -> list[PieceResult]:
    """The partitions' results in input order; a log line as each one finishes."""
    pieces = dispatch.pieces
    results: list[PieceResult | None] = [None] * len(pieces)
    rows = sent = failed = 0
    for done, (index, result) in enumerate(dispatch.finished(), start=1):
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
                done, len(pieces), pieces[index].describe(), f"{rows:,}", f"{sent:,}",
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
    state: PieceState | None = None,
    inbox: str | None = None,
) -> PieceResult:
    """On a worker: read, map and send one partition as a single-machine run would;
    with ``keeper`` (where the ``PaceKeeper`` actor is), at the cluster's one pace (``share``: the
    cluster's workers, to share ``--rate`` among should the keeper be lost); with
    ``stop`` (the name of the cluster's stop flag), stopping when another worker's run
    is aborted for the key or the endpoint; with ``state`` (from the coordinator's
    state file), skipping the rows done before and keeping what it settles, which goes
    to the coordinator's ``inbox`` (a Dask queue's name) about once a second."""
    job = _PieceJob(piece, mapping, run_time_ms)
    ledger = None if state is None else PieceLedger(state)
    try:
        if state is not None:
            job.remember_raw(state.unchanged_raw if options.only_changed else None)
        job.start_workers(0, encode=not options.dry_run)  # the cluster is the parallelism
        summary = Summary(mode="dry-run" if options.dry_run else "run")
        failures, warned = _Collected(), _Collected()
        tally = Tally(summary, failures, ledger, warned)
        skip = state.skip if state is not None and state.has_done else None
        reading = job.reading(skip, duplicates)
        shared = None if stop is None else SharedStop(_DaskFlag(stop))
        reporter = None if ledger is None or inbox is None else Reporter(ledger, inbox)
        actor = None if keeper is None else keeper.handle()
        driven = _drive(options, retry, tally, reading, actor, shared, share)
        runner = asyncio.run(_reporting(driven, reporter))
        summary.blank_rows = reading.blank_rows
        summary.warnings.update(job.warnings())
    finally:
        job.close()
    result = PieceResult(summary, failures.rows, warned.rows)
    result.settled = None if ledger is None else ledger.settled  # what was not reported
    if runner.abort is not None:
        result.abort = (runner.abort.code.value, runner.abort.reason)
    stats = runner.sender.stats if runner.sender is not None else None
    if stats is not None:
        result.requests, result.retries = stats.requests, stats.retries
        result.status_counts.update(stats.status_counts)
    return result


def piece_users(piece: Piece, mapping: Mapping, run_time_ms: int, state: PieceState) -> list[str]:
    """On a worker, with --only-changed: the user ids of a partition's rows not done."""
    job = _PieceJob(piece, mapping, run_time_ms)
    label = piece.item.label
    user_of = job.mappers[label].user_id_of
    found: set[str] = set()
    source = job.open(piece.item)
    try:
        for row, cells, problem in source.records:
            if problem is None and not state.skip(label, row) and (user := user_of(cells)):
                found.add(user)
    finally:
        close = getattr(source.records, "close", None)
        if close is not None:
            close()
        job.close()
    return sorted(found)


async def _reporting(work: Awaitable[Runner], reporter: Reporter | None) -> Runner:
    """``work``, with ``reporter`` reporting what it settles on the way."""
    if reporter is None:
        return await work
    reporting = asyncio.create_task(reporter.run())
    try:
        return await work
    finally:
        reporter.ended.set()
        await reporting
        reporter.close()


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
        runner.stop.trigger(found, announce=False)  # the coordinator says it once
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

    @staticmethod
    def forget(name: str) -> None:
        """Remove the flag from the scheduler (one that serves other runs keeps it)."""
        distributed: Any = importlib.import_module("distributed")
        with contextlib.suppress(Exception):  # already gone, or the scheduler is
            distributed.Variable(name).delete()
            distributed.Event(name).clear()


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
                                             processes=True, dashboard_address=":0",
                                             preload=["importer.engine.dask_worker"])  # fmt: skip
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
    state: ClusterState | None,
    partitions: int,
    pacing: PacingStats | None = None,
) -> JobResult:
    """Add the partitions' results up, in input order, into the one set of reports
    (after what a resumed run had done before)."""
    mode = "dry-run" if options.dry_run else "run"
    summary = Summary(mode=mode, source=", ".join(patterns), encoding=job.encoding)
    failures = job.failure_writer(outputs.failures)
    listed = job.failure_writer(warnings_path(outputs.failures))
    abort: Abort | None = None
    requests = retries = 0
    statuses: Counter[str] = Counter()
    notes: list[str] = []
    try:
        if state is not None:
            notes = state.restore(summary, failures)
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
        pacing=pacing_summary(pacing, requests), engine="dask", partitions=partitions,
    )  # fmt: skip
    if state is not None:
        notes += _finish(state, abort, summary)
    if outputs.summary_json is not None:
        summary.write_json(outputs.summary_json)
    where = None if state is None else str(state.store.path)
    return JobResult(summary, exit_code(summary, abort),
                     advice(abort, summary, job.mapping, state_path=where), notes)  # fmt: skip


def _finish(state: ClusterState, abort: Abort | None, summary: Summary) -> list[str]:
    """Record how the run ended in the state file (a note if it cannot be written)."""
    status = "finished" if abort is None else "aborted"
    if abort is not None and abort.code is AbortCode.INTERRUPTED:
        status = abort.code.status
    try:
        state.store.finish(status, summary.as_dict())
    except OutputError as exc:
        return [f"warning: {exc}"]
    return []


def _add(total: Summary, part: Summary) -> None:
    total.rows_total += part.rows_total
    total.rows_valid += part.rows_valid
    total.rows_invalid += part.rows_invalid
    total.rows_unread += part.rows_unread
    total.rows_sent += part.rows_sent
    total.rows_failed += part.rows_failed
    total.rows_skipped += part.rows_skipped
    total.blank_rows += part.blank_rows
    total.reasons.update(part.reasons)
    total.skipped.update(part.skipped)
    total.warnings.update(part.warnings)
