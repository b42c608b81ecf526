"""The run: read → map → send, concurrently and politely, accounting for every row.

The runner is the only writer of shared state (counts, failure CSV, ledger, progress).
One event loop drives both the mapping (in small slices, so sockets are never starved)
and ``concurrency`` workers that send one user per request over keep-alive connections.

Every row read ends in exactly one bucket: sent, failed (read/validate/send/not_sent)
or skipped (unchanged, duplicate, dry run). On an abort — credentials rejected, the
endpoint down for too long, Ctrl-C/SIGTERM — the rows not yet delivered, including
those not yet read, go to the failure CSV as ``not_sent``: the failure file plus what
was sent is always the whole input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from importer.core.delivery import (
    Verdict,
    backoff_delay,
    classify,
    mask,
    parse_retry_after,
    shorten,
)
from importer.core.messages import content_fingerprint, encode_body
from importer.edges.progress import NoProgress, Progress, Snapshot
from importer.edges.report import STAGE_NOT_SENT, FailureWriter, Summary
from importer.edges.transport import Transport
from importer.engine.pipeline import UNCHANGED_REASON, Outcome
from importer.errors import TransportError

log = logging.getLogger("metrix_importer")

STAGE_SEND = "send"


@dataclass(frozen=True)
class RunOptions:
    """How to send; the CLI fills it from flags and the environment."""

    endpoint: str
    app_id: str
    api_key: str
    concurrency: int = 16
    rate: float | None = None
    timeout: float = 30.0
    max_retries: int = 6
    dry_run: bool = False
    only_changed: bool = False
    # Abort when no request has succeeded for this long while requests keep failing.
    outage_seconds: float = 120.0
    grace_seconds: float = 5.0
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    retry_after_cap: float = 300.0
    progress_interval: float = 1.0
    seed: int | None = None


@dataclass(slots=True)
class Item:
    """A valid row on its way to Metrix."""

    row: int
    cells: list[str]
    body: bytes
    user_id: str
    fingerprint: bytes
    source: str = ""
    raw: bytes = b""


class Ledger(Protocol):
    """Durable bookkeeping for resume and --only-changed (see importer.edges.state)."""

    def is_done(self, source: str, row: int) -> bool: ...

    def unchanged_users(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]: ...

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None: ...

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None: ...

    def record_skipped(self, source: str, row: int, reason: str) -> None: ...

    def checkpoint(self) -> None: ...


class NoLedger:
    """A run without --state: nothing is remembered."""

    def is_done(self, source: str, row: int) -> bool:
        return False

    def unchanged_users(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        return set()

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None:
        pass

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        pass

    def record_skipped(self, source: str, row: int, reason: str) -> None:
        pass

    def checkpoint(self) -> None:
        pass


class Aborted(Exception):
    """Raised inside the loop to stop the run; ``reason`` is for people."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code  # "credentials" | "endpoint" | "interrupted"


@dataclass
class RunState:
    """Counters the runner keeps while it works."""

    requests: int = 0
    retries: int = 0
    retrying: int = 0
    status_counts: Counter[str] = field(default_factory=Counter)
    last_success: float = field(default_factory=time.monotonic)
    failing_since: float | None = None


class Runner:
    """One run over a stream of outcomes."""

    def __init__(
        self,
        options: RunOptions,
        summary: Summary,
        failures: FailureWriter,
        *,
        transport: Transport | None = None,
        ledger: Ledger | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.options = options
        self.summary = summary
        self.failures = failures
        self.transport = transport
        self.ledger: Ledger = ledger or NoLedger()
        self.progress: Progress = progress or NoProgress()
        self.state = RunState()
        self.abort: Aborted | None = None
        self.hard_stop = False
        self._rng = random.Random(options.seed)
        self._stop_reading = asyncio.Event()
        self._pause_until = 0.0
        self._next_slot = 0.0
        self._workers: list[asyncio.Task[None]] = []
        self._producer: asyncio.Task[None] | None = None
        self._interrupted = False
        self.failure: BaseException | None = None  # an unexpected error in a task
        # Fingerprints are only worth computing when a state file keeps them.
        self.remembers = not isinstance(self.ledger, NoLedger)

    # --- accounting (the only place counts change) ----------------------------------

    def _failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        self.summary.rows_failed += 1
        self.summary.reasons.update(keys)
        self.failures.write(row, stage, error, cells, source)
        self.ledger.record_failed(source, row, stage, error, cells, keys)

    def _sent(self, item: Item) -> None:
        self.summary.rows_sent += 1
        self.ledger.record_sent(item.source, item.row, item.user_id, item.fingerprint, item.raw)

    def _skipped(self, source: str, row: int, reason: str) -> None:
        self.summary.rows_skipped += 1
        self.summary.skipped[reason] += 1
        self.ledger.record_skipped(source, row, reason)

    def _not_sent(self, item: Item, reason: str) -> None:
        keys = (f"not sent: {reason}",)
        self._failed(item.source, item.row, STAGE_NOT_SENT, reason, item.cells, keys)

    def snapshot(self, fraction: float | None = None) -> Snapshot:
        s = self.summary
        return Snapshot(
            done=s.rows_sent + s.rows_failed + s.rows_skipped,
            sent=s.rows_sent,
            failed=s.rows_failed,
            skipped=s.rows_skipped,
            retrying=self.state.retrying,
            fraction=fraction,
        )

    # --- the run --------------------------------------------------------------------

    async def run(
        self,
        outcomes: Iterable[Outcome],
        rest: Iterator[tuple[str, int, list[str], str]],
        fraction: Callable[[], float | None] | None = None,
    ) -> None:
        """Send every valid outcome; after an abort, account for ``rest`` as not sent."""
        queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=self.options.concurrency * 4)
        if not self.options.dry_run:
            assert self.transport is not None
            self._workers = [
                asyncio.create_task(self._worker(queue)) for _ in range(self.options.concurrency)
            ]
        ticker = asyncio.create_task(self._tick(fraction))
        self._producer = asyncio.create_task(self._produce(outcomes, queue))
        try:
            await asyncio.gather(self._producer, return_exceptions=not self.hard_stop)
        finally:
            await self._finish_workers(queue)
            ticker.cancel()
            self.progress.update(self.snapshot(1.0 if self.abort is None else None))
        if self._producer.done() and not self._producer.cancelled():
            error = self._producer.exception()
            if error is not None:
                raise error
        if self.abort is not None and not self.hard_stop:
            await self._drain(rest)
        if self.failure is not None:
            raise self.failure

    async def _produce(
        self, outcomes: Iterable[Outcome], queue: asyncio.Queue[Item | None]
    ) -> None:
        chunk: list[Outcome] = []
        for outcome in outcomes:
            chunk.append(outcome)
            if len(chunk) >= 128:
                await self._produce_chunk(chunk, queue)
                chunk = []
                if self._stop_reading.is_set():
                    return
                # Mapping is CPU work on the loop's thread: hand the loop to the
                # workers regularly so their sockets keep moving.
                await asyncio.sleep(0)
        await self._produce_chunk(chunk, queue)

    async def _produce_chunk(self, chunk: list[Outcome], queue: asyncio.Queue[Item | None]) -> None:
        options, summary = self.options, self.summary
        fingerprints: dict[int, bytes] = {}
        unchanged: set[str] = set()
        if self.remembers:
            pairs: list[tuple[str, bytes]] = []
            for index, outcome in enumerate(chunk):
                if outcome.mapped is not None:
                    fingerprint = content_fingerprint(outcome.mapped)
                    fingerprints[index] = fingerprint
                    pairs.append((outcome.mapped.user_id, fingerprint))
            if options.only_changed:
                unchanged = self.ledger.unchanged_users(pairs)
        for index, outcome in enumerate(chunk):
            summary.rows_total += 1
            source, row, mapped = outcome.source, outcome.row, outcome.mapped
            if mapped is None and outcome.stage == "skip":
                summary.rows_valid += 1
                self._skipped(source, row, outcome.error)
                continue
            if mapped is None:
                summary.rows_invalid += 1
                self._failed(source, row, outcome.stage, outcome.error, outcome.cells, outcome.keys)
                continue
            summary.rows_valid += 1
            if mapped.user_id in unchanged:
                self._skipped(source, row, UNCHANGED_REASON)
            elif options.dry_run:
                self._skipped(source, row, "dry run: would have been sent")
            else:
                body, _ = encode_body(mapped)
                fingerprint = fingerprints.get(index, b"")
                item = Item(
                    row, outcome.cells, body, mapped.user_id, fingerprint, source, outcome.raw
                )
                try:
                    await queue.put(item)
                except asyncio.CancelledError:
                    reason = self.abort.reason if self.abort else "run stopped"
                    self._not_sent(item, reason)
                    self._not_sent_rest(chunk[index + 1 :], reason)
                    raise

    def _not_sent_rest(self, outcomes: list[Outcome], reason: str) -> None:
        """Rows already read when a hard stop cut their chunk short."""
        keys = (f"not sent: {reason}",)
        for outcome in outcomes:
            self.summary.rows_total += 1
            self._failed(outcome.source, outcome.row, STAGE_NOT_SENT, reason, outcome.cells, keys)

    async def _finish_workers(self, queue: asyncio.Queue[Item | None]) -> None:
        if self.abort is not None:
            # Queued rows will not be sent: account for them now, then let the
            # workers see the end of the queue.
            self._not_sent_queue(queue)
        for _ in self._workers:
            await queue.put(None)
        if not self._workers:
            return
        if self.abort is not None and (self.hard_stop or self.abort.code != "interrupted"):
            for task in self._workers:
                task.cancel()
        elif self.abort is not None:
            _, pending = await asyncio.wait(self._workers, timeout=self.options.grace_seconds)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._not_sent_queue(queue)

    def _not_sent_queue(self, queue: asyncio.Queue[Item | None]) -> None:
        reason = self.abort.reason if self.abort else "run stopped"
        while not queue.empty():
            queued = queue.get_nowait()
            if queued is not None:
                self._not_sent(queued, reason)

    async def _drain(self, rest: Iterator[tuple[str, int, list[str], str]]) -> None:
        """After an abort, every row not yet read goes to the failure CSV unsent (or
        is skipped, when the duplicates policy would have skipped it anyway)."""
        assert self.abort is not None
        reason = self.abort.reason
        keys = (f"not sent: {reason}",)
        count = 0
        for source, row, cells, skip_reason in rest:
            if self.ledger.is_done(source, row):
                continue
            self.summary.rows_total += 1
            if skip_reason:
                self._skipped(source, row, skip_reason)
            else:
                self._failed(source, row, STAGE_NOT_SENT, reason, cells, keys)
            count += 1
            if count % 2000 == 0:
                await asyncio.sleep(0)
                if self.hard_stop:
                    return

    async def _tick(self, fraction: Callable[[], float | None] | None) -> None:
        while True:
            await asyncio.sleep(self.options.progress_interval)
            try:
                self.progress.update(self.snapshot(fraction() if fraction else None))
                self.ledger.checkpoint()
                self.failures.flush()
                self._check_outage()
            except Exception as exc:  # e.g. a full disk: stop the run, do not hang
                self._fail(exc)
                return

    def _fail(self, exc: BaseException) -> None:
        """An unexpected error in a task: stop the run and re-raise it at the end."""
        if self.failure is None:
            self.failure = exc
        self._trigger_abort(Aborted(f"the run stopped on an error ({exc})", "error"))

    # --- sending --------------------------------------------------------------------

    async def _worker(self, queue: asyncio.Queue[Item | None]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            if self.abort is not None:
                self._not_sent(item, self.abort.reason)
                continue
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                # Stopped mid-request: it may or may not have arrived; the same id
                # makes sending it again safe, so it is reported as not sent.
                self._not_sent(item, self.abort.reason if self.abort else "run stopped")
                raise
            except Exception as exc:  # e.g. the state file's disk is full
                self._fail(exc)
                with contextlib.suppress(Exception):
                    self._not_sent(item, self.abort.reason if self.abort else "run stopped")

    async def _deliver(self, item: Item) -> None:
        retried = False
        try:
            attempt = 0
            while True:
                attempt += 1
                delay = await self._attempt(item, attempt)
                if delay is None:
                    return
                if not retried:
                    retried = True
                    self.state.retrying += 1
                self.state.retries += 1
                await asyncio.sleep(delay)
        finally:
            if retried:
                self.state.retrying -= 1

    async def _attempt(self, item: Item, attempt: int) -> float | None:
        """One try; None when the row is finished, else the delay before the next try."""
        options = self.options
        transport = self.transport
        assert transport is not None
        await self._wait_turn()
        if self.abort is not None:
            self._not_sent(item, self.abort.reason)
            return None
        self.state.requests += 1
        retry_after: float | None = None
        try:
            response = await transport.send(item.body)
        except TransportError as exc:
            self.state.status_counts[exc.kind] += 1
            problem = exc.describe()
        else:
            status = response.status
            self.state.status_counts[str(status)] += 1
            verdict = classify(status)
            if verdict is Verdict.SENT:
                self._mark_success()
                self._sent(item)
                return None
            if verdict is Verdict.REJECTED:
                self._mark_success()  # the endpoint works; this row is at fault
                reason = shorten(mask(response.text, options.api_key)) or "no reason given"
                self._failed(
                    item.source, item.row, STAGE_SEND,
                    f"Metrix rejected this row (HTTP {status}): {reason}",
                    item.cells, (f"rejected by Metrix (HTTP {status})",),
                )  # fmt: skip
                return None
            if verdict is Verdict.FATAL:
                self._trigger_abort(
                    Aborted(
                        f"Metrix refused the credentials (HTTP {status}); the run was stopped",
                        "credentials",
                    )
                )
                self._not_sent(item, self.abort.reason if self.abort else "credentials refused")
                return None
            problem = f"HTTP {status}"
            retry_after = parse_retry_after(response.retry_after)
            if retry_after is not None and status in (429, 503):
                # Everyone waits, not just this worker: the server asked us to.
                wait = min(retry_after, options.retry_after_cap)
                self._pause_until = max(self._pause_until, time.monotonic() + wait)
        self._mark_failure()
        if attempt > options.max_retries:
            # Not delivered is not rejected: a resumed run or the failure file tries again.
            self._failed(
                item.source, item.row, STAGE_NOT_SENT,
                f"not delivered after {attempt} attempts (last: {problem}); "
                "re-run the failure file to try again",
                item.cells, (f"not delivered after retries ({problem})",),
            )  # fmt: skip
            return None
        log.debug("row %s: %s, will retry (attempt %d)", item.row, problem, attempt)
        return backoff_delay(
            attempt, base=options.backoff_base, cap=options.backoff_cap,
            retry_after=retry_after, retry_after_cap=options.retry_after_cap, rng=self._rng,
        )  # fmt: skip

    async def _wait_turn(self) -> None:
        """Respect a server-wide pause (Retry-After) and the --rate cap."""
        now = time.monotonic()
        if self._pause_until > now:
            await asyncio.sleep(self._pause_until - now)
        rate = self.options.rate
        if rate:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
            if slot > now:
                await asyncio.sleep(slot - now)

    def _mark_success(self) -> None:
        self.state.last_success = time.monotonic()
        self.state.failing_since = None

    def _mark_failure(self) -> None:
        if self.state.failing_since is None:
            self.state.failing_since = time.monotonic()

    def _check_outage(self) -> None:
        since = self.state.failing_since
        if since is None or self.abort is not None:
            return
        if time.monotonic() - max(since, self.state.last_success) >= self.options.outage_seconds:
            self._trigger_abort(
                Aborted(
                    f"the endpoint failed every request for {self.options.outage_seconds:.0f} s; "
                    "the run was stopped",
                    "endpoint",
                )
            )

    def _trigger_abort(self, abort: Aborted) -> None:
        if self.abort is None:
            self.abort = abort
            log.error("%s", abort.reason)
        self._stop_reading.set()

    def interrupt(self) -> None:
        """Ctrl-C / SIGTERM: first stop gently, the second time stop now (also when the
        run was already stopping for another reason)."""
        if self._interrupted:
            self.hard_stop = True
            for task in [*self._workers, self._producer]:
                if task is not None:
                    task.cancel()
            return
        self._interrupted = True
        self._trigger_abort(Aborted("the run was interrupted", "interrupted"))


def install_signal_handlers(loop: asyncio.AbstractEventLoop, runner: Runner) -> None:
    """Route SIGINT and SIGTERM to ``runner.interrupt`` while the loop runs."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.interrupt)
