"""Sending one row: the retry loop of a sending worker, and how a run stops.

A worker takes items from the queue and delivers each: it asks the pacer for a slot,
sends, classifies the answer (importer.core.delivery), and either settles the row in
the tally or waits and tries again, within the ``RetryPolicy``'s bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from importer.core.delivery import (
    Verdict,
    backoff_delay,
    classify,
    mask,
    parse_retry_after,
    shorten,
)
from importer.core.outcome import Stage
from importer.edges.transport import Transport
from importer.engine.pacer import Answer, Pacer
from importer.engine.tally import Tally
from importer.errors import OutputError, RedirectRefused, TransportError

log = logging.getLogger("metrix_importer")


class AbortCode(StrEnum):
    """Why a run stopped early (also the state file's run status, via ``status``)."""

    CREDENTIALS = "credentials"  # Metrix refused the key
    ENDPOINT = "endpoint"  # every request failed for too long
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
    ERROR = "error"  # an unexpected error in a task (re-raised at the end)

    @property
    def status(self) -> str:
        return "interrupted" if self is AbortCode.INTERRUPTED else "aborted"


@dataclass(frozen=True)
class Abort:
    """A run stopped early; ``reason`` is for people."""

    reason: str
    code: AbortCode


class Stop:
    """Whether (and why) the run is stopping; shared by the runner and its workers."""

    def __init__(self) -> None:
        self.abort: Abort | None = None
        self.failure: BaseException | None = None  # an unexpected error in a task
        self.reading = asyncio.Event()  # set: read no more rows

    @property
    def reason(self) -> str:
        return self.abort.reason if self.abort is not None else "run stopped"

    def trigger(self, abort: Abort, announce: bool = True) -> None:
        if self.abort is None:
            self.abort = abort
            if announce:
                log.error("%s", abort.reason)
        self.reading.set()

    def fail(self, exc: BaseException) -> None:
        """An unexpected error in a task: stop the run and re-raise it at the end."""
        if self.failure is None:
            self.failure = exc
        if isinstance(exc, OutputError):  # a full disk: name the file, in one line
            reason = f"the run stopped: {exc.path}: {exc.problem}"
        else:
            reason = f"the run stopped on an error ({exc})"
        self.trigger(Abort(reason, AbortCode.ERROR))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one request is tried again."""

    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    retry_after_cap: float = 300.0
    seed: int | None = None

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        return backoff_delay(
            attempt, base=self.backoff_base, cap=self.backoff_cap,
            retry_after=retry_after, retry_after_cap=self.retry_after_cap, rng=rng,
        )  # fmt: skip


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


@dataclass
class SendStats:
    """Counters the workers keep while they work."""

    requests: int = 0
    retries: int = 0
    retrying: int = 0
    status_counts: Counter[str] = field(default_factory=Counter)


class Sender:
    """Delivers items: the sending workers' loop and the retry loop of each row."""

    def __init__(
        self,
        transport: Transport,
        pacer: Pacer,
        retry: RetryPolicy,
        tally: Tally,
        stop: Stop,
        api_key: str,
    ) -> None:
        self.transport = transport
        self.pacer = pacer
        self.retry = retry
        self.tally = tally
        self.stop = stop
        self.api_key = api_key
        self.stats = SendStats()
        self._rng = random.Random(retry.seed)

    def not_sent(self, item: Item, reason: str | None = None) -> None:
        self.tally.not_sent(item.source, item.row, item.cells, reason or self.stop.reason)

    async def worker(self, queue: asyncio.Queue[Item | None]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            if self.stop.abort is not None:
                self.not_sent(item)
                continue
            try:
                await self.deliver(item)
            except asyncio.CancelledError:
                # Stopped mid-request: it may or may not have arrived; the same id
                # makes sending it again safe, so it is reported as not sent.
                self.not_sent(item)
                raise
            except Exception as exc:  # e.g. the state file's disk is full
                self.stop.fail(exc)
                with contextlib.suppress(Exception):
                    self.not_sent(item)

    async def deliver(self, item: Item) -> None:
        retried = False
        try:
            attempt = 0
            while True:
                attempt += 1
                delay = await self.attempt(item, attempt)
                if delay is None:
                    return
                if not retried:
                    retried = True
                    self.stats.retrying += 1
                self.stats.retries += 1
                await asyncio.sleep(delay)
        finally:
            if retried:
                self.stats.retrying -= 1

    async def attempt(self, item: Item, attempt: int) -> float | None:
        """One try; None when the row is settled, else the delay before the next try."""
        pacer = self.pacer
        async with pacer.slot():
            if self.stop.abort is not None:
                self.not_sent(item)
                return None
            self.stats.requests += 1
            retry_after: float | None = None
            sent = pacer.now()
            try:
                response = await self.transport.send(item.body)
            except RedirectRefused as exc:
                # Every request would be redirected: stop the run, as for a refused key.
                self.stop.trigger(Abort(str(exc), AbortCode.ENDPOINT))
                self.not_sent(item)
                return None
            except TransportError as exc:
                self.stats.status_counts[exc.kind] += 1
                pacer.report(Answer(False, None, sent, pacer.now(), exc.kind))
                problem = exc.describe()
            else:
                status = response.status
                self.stats.status_counts[str(status)] += 1
                verdict = classify(status)
                # REJECTED: the endpoint works, this row is at fault.
                healthy = verdict in (Verdict.SENT, Verdict.REJECTED)
                retry_after = parse_retry_after(response.retry_after)
                pacer.report(Answer(healthy, status, sent, pacer.now(), retry_after=retry_after))
                if verdict is not Verdict.RETRY:
                    self._settle(item, verdict, status, response.text)
                    return None
                problem = f"HTTP {status}"
                if retry_after is not None and status in (429, 503):
                    # Everyone waits, not just this worker: the server asked us to.
                    pacer.pause(min(retry_after, self.retry.retry_after_cap))
        if attempt > self.retry.max_retries:
            # Not delivered is not rejected: a resumed run or the failure file tries again.
            self.tally.failed(
                item.source, item.row, Stage.NOT_SENT,
                f"not delivered after {attempt} attempts (last: {problem}); "
                "re-run the failure file to try again",
                item.cells, (f"not delivered after retries ({problem})",),
            )  # fmt: skip
            return None
        log.debug("row %s: %s, will retry (attempt %d)", item.row, problem, attempt)
        return self.retry.delay(attempt, retry_after, self._rng)

    def _settle(self, item: Item, verdict: Verdict, status: int, text: str) -> None:
        """An answer that ends this row's attempts: sent, rejected, or credentials refused."""
        if verdict is Verdict.SENT:
            self.tally.sent(item.source, item.row, item.user_id, item.fingerprint, item.raw)
        elif verdict is Verdict.REJECTED:
            reason = shorten(mask(text, self.api_key)) or "no reason given"
            self.tally.failed(
                item.source, item.row, Stage.SEND,
                f"Metrix rejected this row (HTTP {status}): {reason}",
                item.cells, (f"rejected by Metrix (HTTP {status})",),
            )  # fmt: skip
        else:
            self.stop.trigger(
                Abort(
                    f"Metrix refused the credentials (HTTP {status}); the run was stopped",
                    AbortCode.CREDENTIALS,
                )
            )
            self.not_sent(item)
