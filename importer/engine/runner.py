"""The run: read → map → send, concurrently and politely, accounting for every row.

The runner is the only writer of shared state (counts, failure CSV, ledger, progress),
all of it through its ``Tally``. One event loop drives both the mapping (in small
slices, so sockets are never starved) and ``concurrency`` workers (importer.engine.
sending) that send one user per request over keep-alive connections, paced by a
``Pacer``.

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
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from importer.core.messages import content_fingerprint
from importer.core.outcome import Outcome, SkipReason
from importer.core.pacing import AdaptiveLimiter, PacingConfig
from importer.edges.progress import NoProgress, Pacing, Progress, Snapshot
from importer.edges.transport import Transport
from importer.engine.pacer import Pacer
from importer.engine.sending import Abort, AbortCode, Item, RetryPolicy, Sender, Stop
from importer.engine.tally import NoLedger, Tally
from importer.errors import ImporterError

log = logging.getLogger("metrix_importer")

# After an abort: (source, row, cells, the reason it would be skipped anyway or "").
Unread = Iterator[tuple[str, int, list[str], str]]


@dataclass(frozen=True)
class SendOptions:
    """Where and how to send; the CLI fills it from flags and the environment."""

    endpoint: str = ""
    app_id: str = ""
    # Never in a repr: Dask logs a failed task's arguments, and options travel as one.
    api_key: str = field(default="", repr=False)
    # Requests in flight: a fixed number, or None for adaptive pacing up to max_concurrency.
    concurrency: int | None = None
    max_concurrency: int = 64
    rate: float | None = None
    timeout: float = 30.0
    dry_run: bool = False
    only_changed: bool = False
    # Abort when no request has succeeded for this long while requests keep failing.
    outage_seconds: float = 120.0
    # After Ctrl-C, how long requests in flight may still finish.
    grace_seconds: float = 5.0

    @property
    def senders(self) -> int:
        """Sending workers (and connections): the fixed number, or the adaptive ceiling."""
        return self.concurrency or self.max_concurrency

    def pacing_config(self) -> PacingConfig | None:
        """The adaptive limiter's settings; None with a fixed concurrency."""
        if self.concurrency is not None:
            return None
        ceiling = self.max_concurrency
        return PacingConfig(initial=min(8, ceiling), ceiling=ceiling)

    def make_pacer(self) -> Pacer:
        config = self.pacing_config()
        limiter = None if config is None else AdaptiveLimiter(config)
        return Pacer(self.rate, self.outage_seconds, limiter=limiter)


class Runner:
    """One run over a stream of outcomes. ``transport`` is None only for a dry run."""

    def __init__(
        self,
        options: SendOptions,
        tally: Tally,
        transport: Transport | None,
        *,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        progress: Progress | None = None,
        tick_seconds: float = 1.0,
    ) -> None:
        if transport is None and not options.dry_run:
            raise ValueError("a run that sends needs a transport")
        self.options = options
        self.tally = tally
        self.pacer = pacer or options.make_pacer()
        self.progress: Progress = progress or NoProgress()
        self.tick_seconds = tick_seconds
        self.stop = Stop()
        self.sender = (
            None
            if transport is None
            else Sender(transport, self.pacer, retry or RetryPolicy(), tally, self.stop,
                        options.api_key)
        )  # fmt: skip
        self.hard_stop = False
        self._workers: list[asyncio.Task[None]] = []
        self._producer: asyncio.Task[None] | None = None
        self._interrupted = False
        self._fraction: Callable[[], float | None] | None = None
        # When the failure CSV could not list every row not sent (a second Ctrl-C cut
        # the listing short, or the disk filled): the first row it lacks, as
        # (source label, row); every later row of that input and every later input
        # are missing too.
        self.missing_from: tuple[str, int] | None = None
        self.unlisted_reason = ""
        # Fingerprints are only worth computing when a state file keeps them.
        self.remembers = not isinstance(tally.ledger, NoLedger)

    @property
    def abort(self) -> Abort | None:
        return self.stop.abort

    def snapshot(self, fraction: float | None = None) -> Snapshot:
        s = self.tally.summary
        return Snapshot(
            done=self.tally.settled,
            sent=s.rows_sent,
            failed=s.rows_failed,
            skipped=s.rows_skipped,
            retrying=0 if self.sender is None else self.sender.stats.retrying,
            fraction=fraction,
            pacing=self.pacing(),
            retries=0 if self.sender is None else self.sender.stats.retries,
        )

    def pacing(self) -> Pacing | None:
        stats = self.pacer.stats()
        if stats is None:
            return None
        return Pacing(
            limit=stats.limit,
            latency_p50_ms=None if stats.latency_p50 is None else stats.latency_p50 * 1000,
            latency_p95_ms=None if stats.latency_p95 is None else stats.latency_p95 * 1000,
            rate_limited=stats.rate_limited,
        )

    async def run(
        self,
        outcomes: Iterable[Outcome],
        rest: Unread,
        fraction: Callable[[], float | None] | None = None,
    ) -> None:
        """Send every valid outcome; after an abort, account for ``rest`` as not sent."""
        self._fraction = fraction
        queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=self.options.senders * 4)
        if self.sender is not None:
            self._workers = [
                asyncio.create_task(self.sender.worker(queue)) for _ in range(self.options.senders)
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
        elif self.hard_stop:
            self._note_missing(rest, "a second Ctrl-C stopped the run at once")
        if self.tally.output_error is not None and self.stop.failure is None:
            self.stop.fail(self.tally.output_error)
        if self.stop.failure is not None:
            raise self.stop.failure

    async def _produce(
        self, outcomes: Iterable[Outcome], queue: asyncio.Queue[Item | None]
    ) -> None:
        chunk: list[Outcome] = []
        source = iter(outcomes)
        while True:
            try:
                outcome = next(source, None)
            except ImporterError:
                # The input cannot be read further (a truncated file): the rows read
                # before it are still sent and counted.
                await self._produce_chunk(chunk, queue)
                raise
            if outcome is None:
                break
            chunk.append(outcome)
            if len(chunk) >= 128:
                await self._produce_chunk(chunk, queue)
                chunk = []
                self._check_outputs()
                if self.stop.reading.is_set():
                    return
                # Mapping is CPU work on the loop's thread: hand the loop to the
                # workers regularly so their sockets keep moving.
                await asyncio.sleep(0)
        await self._produce_chunk(chunk, queue)

    def _check_outputs(self) -> None:
        """A failure CSV that cannot be written any more stops the run."""
        error = self.tally.output_error
        if error is not None and self.stop.failure is None:
            self.stop.fail(error)

    def _fingerprints(self, chunk: list[Outcome]) -> tuple[dict[int, bytes], set[str]]:
        """Content fingerprints of the chunk's valid rows (by index), and with
        --only-changed the users whose content was already delivered."""
        fingerprints: dict[int, bytes] = {}
        if not self.remembers:
            return fingerprints, set()
        pairs: list[tuple[str, bytes]] = []
        for index, outcome in enumerate(chunk):
            if outcome.mapped is not None:
                fingerprint = content_fingerprint(outcome.mapped)
                fingerprints[index] = fingerprint
                pairs.append((outcome.mapped.user_id, fingerprint))
        if not self.options.only_changed:
            return fingerprints, set()
        return fingerprints, self.tally.ledger.unchanged_users(pairs)

    async def _produce_chunk(self, chunk: list[Outcome], queue: asyncio.Queue[Item | None]) -> None:
        tally, dry_run = self.tally, self.options.dry_run
        fingerprints, unchanged = self._fingerprints(chunk)
        for index, outcome in enumerate(chunk):
            mapped = tally.admit(outcome)
            if mapped is None:
                continue
            if mapped.user_id in unchanged:
                tally.skipped(outcome.source, outcome.row, SkipReason.UNCHANGED)
            elif dry_run:
                tally.skipped(outcome.source, outcome.row, SkipReason.DRY_RUN)
            else:
                item = Item(outcome.row, outcome.cells, mapped.body, mapped.user_id,
                            fingerprints.get(index, b""), outcome.source, outcome.raw)  # fmt: skip
                if not await self._enqueue(queue, item, chunk[index + 1 :]):
                    return  # the run is stopping: the rest of the chunk is accounted for

    async def _enqueue(
        self, queue: asyncio.Queue[Item | None], item: Item, rest: list[Outcome]
    ) -> bool:
        """Queue ``item``, waiting for room unless the run stops first.

        Senders held by a long Retry-After pause leave the queue full; a Ctrl-C must not
        wait for them to make room. When the item is not queued, it and the chunk's
        remaining rows (already read) are accounted as not sent, and False is returned;
        a hard stop (cancellation) accounts the same way and re-raises."""
        try:
            queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            pass
        put = asyncio.ensure_future(queue.put(item))
        stopping = asyncio.ensure_future(self.stop.reading.wait())
        cancelled = False
        try:
            await asyncio.wait({put, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True
        finally:
            stopping.cancel()
            if not put.done():
                put.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await put
        queued = not put.cancelled()
        if queued and not cancelled:
            return True
        self._unsent_rest(None if queued else item, rest)
        if cancelled:
            raise asyncio.CancelledError
        return False

    def _unsent_rest(self, item: Item | None, rest: list[Outcome]) -> None:
        """The item that was not queued, and the chunk's rows after it (already read)."""
        reason = self.stop.reason
        if item is not None:
            self.tally.not_sent(item.source, item.row, item.cells, reason)
        for left in rest:
            self.tally.unread(left.source, left.row, left.cells, reason, "")

    async def _finish_workers(self, queue: asyncio.Queue[Item | None]) -> None:
        if self.abort is not None:
            # Queued rows will not be sent: account for them now, then let the
            # workers see the end of the queue.
            self._not_sent_queue(queue)
        for _ in self._workers:
            await queue.put(None)
        if not self._workers:
            return
        abort = self.abort
        if abort is not None and (self.hard_stop or abort.code is not AbortCode.INTERRUPTED):
            for task in self._workers:
                task.cancel()
        elif abort is not None:
            _, pending = await asyncio.wait(self._workers, timeout=self.options.grace_seconds)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._not_sent_queue(queue)

    def _not_sent_queue(self, queue: asyncio.Queue[Item | None]) -> None:
        reason = self.stop.reason
        while not queue.empty():
            queued = queue.get_nowait()
            if queued is not None:
                self.tally.not_sent(queued.source, queued.row, queued.cells, reason)

    async def _drain(self, rest: Unread) -> None:
        """After an abort, every row not yet read goes to the failure CSV unsent (or
        is skipped, when the duplicates policy would have skipped it anyway). Long
        listings show progress; a second Ctrl-C or a full disk cuts them short, and
        ``missing_from`` then says where the failure CSV stops."""
        reason = self.stop.reason
        done = self.tally.ledger.is_done
        count = 0
        started = last = time.monotonic()
        announced = False
        for source, row, cells, skip_reason in rest:
            if done(source, row):
                continue
            if self.hard_stop or self.tally.output_error is not None:
                why = (
                    "a second Ctrl-C cut the listing short"
                    if self.hard_stop
                    else "the failure CSV could not be written"
                )
                self.missing_from, self.unlisted_reason = (source, row), why
                return
            self.tally.unread(source, row, cells, reason, skip_reason)
            count += 1
            if count % 2000 == 0:
                now = time.monotonic()
                if now - last >= 1.0:
                    if not announced:
                        announced = True
                        log.warning(
                            "listing the rows not read as not_sent in the failure CSV "
                            "(Ctrl-C again cuts this short; --state keeps the run resumable)"
                        )
                    last = now
                    share = self._fraction() if self._fraction else None
                    self.progress.update(self.snapshot(share))
                    log.info(
                        "not-sent rows listed: %d (%.0f rows/s), at row %s%s",
                        count, count / max(now - started, 1e-9), row,
                        f" of {source}" if source else "",
                    )  # fmt: skip
                await asyncio.sleep(0)

    def _note_missing(self, rest: Unread, why: str) -> None:
        """Without a drain: the first row the failure CSV lacks (reading one row)."""
        done = self.tally.ledger.is_done
        for source, row, _, _ in rest:
            if not done(source, row):
                self.missing_from, self.unlisted_reason = (source, row), why
                return

    async def _tick(self, fraction: Callable[[], float | None] | None) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                self.progress.update(self.snapshot(fraction() if fraction else None))
                self.tally.checkpoint()
                self._check_outputs()
                if self.abort is None and self.pacer.outage():
                    self.stop.trigger(
                        Abort(
                            f"the endpoint failed every request for "
                            f"{self.options.outage_seconds:.0f} s; the run was stopped",
                            AbortCode.ENDPOINT,
                        )
                    )
            except Exception as exc:  # e.g. a full disk: stop the run, do not hang
                self.stop.fail(exc)
                return

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
        self.stop.trigger(Abort("the run was interrupted", AbortCode.INTERRUPTED))


def install_signal_handlers(loop: asyncio.AbstractEventLoop, runner: Runner) -> None:
    """Route SIGINT and SIGTERM to ``runner.interrupt`` while the loop runs."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.interrupt)
