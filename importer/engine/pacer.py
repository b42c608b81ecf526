"""When the next request may go, and when the endpoint counts as down.

A sending worker holds a ``slot()`` for each request (entering it waits for
permission; the pacer counts the requests in flight) and ``report()``s how each one went:
whether the endpoint worked, the HTTP status or transport error, when it was sent and
answered. The pacer honours a server-wide pause (Retry-After stops every worker, not
just the one that got it; a 429 without it pauses everyone briefly too), the ``--rate``
cap, and notices an outage (no success for ``outage_seconds`` while requests keep
failing). With an ``AdaptiveLimiter`` (importer.core.pacing, ``--concurrency auto``)
it also holds requests while the limiter's limit is in flight and paces at the
limiter's rate once a rate limit has been met; ``--rate`` stays a hard cap on top.
Clock and sleep are injected.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from importer.core.pacing import AdaptiveLimiter, PacingStats, Signal

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)  # not frozen: that costs a microsecond per answer, for nothing
class Answer:
    """How one request went, as the pacer needs to know it."""

    healthy: bool  # the endpoint worked (delivered, or rejected this one row)
    status: int | None  # None: no HTTP answer at all (see ``error``)
    sent: float  # the pacer's clock when the request went out
    answered: float  # ... and when its answer (or the error) came back
    error: str = ""  # the transport error's kind ("timeout", ...) when status is None
    retry_after: float | None = None  # the server's Retry-After, when it gave one

    @property
    def latency(self) -> float:
        return self.answered - self.sent

    @property
    def signal(self) -> Signal:
        """What this answer says about the endpoint's load."""
        if self.healthy:
            return Signal.OK
        if self.status == 429:
            return Signal.RATE_LIMITED
        if self.status == 503 or self.error == "timeout":
            return Signal.OVERLOADED
        return Signal.ERROR


class Pacer:
    """Slots for requests: pauses, a rate cap, and outage detection."""

    def __init__(
        self,
        rate: float | None = None,
        outage_seconds: float = 120.0,
        *,
        limiter: AdaptiveLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.outage_seconds = outage_seconds
        self.limiter = limiter
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._clock = clock
        self._sleep = sleep
        self._pause_until = 0.0
        self._next_slot = 0.0
        self.last_success = clock()
        self.failing_since: float | None = None
        self.in_flight = 0
        self._slot = _Slot(self)

    def now(self) -> float:
        return self._clock()

    def slot(self) -> _Slot:
        """Hold a place for one request (``async with pacer.slot():``): waits for
        permission, counts it in flight."""
        return self._slot

    async def _acquire(self) -> None:
        if self.allowed() is not None:
            while self.in_flight >= (self.allowed() or 0):
                # One waiter woken per freed slot, in arrival order: waking every
                # sender on each answer costs more CPU than the requests themselves.
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_one()  # pass on the slot this task was given
                    raise
            if self.in_flight + 1 < (self.allowed() or 0):
                self._wake_one()  # the limit grew: let the next one in too
        self.in_flight += 1
        try:
            # Counted in flight while it waits for its rate slot, so the limit also
            # bounds how many requests queue for slots.
            await self._permit()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake_one()

    def allowed(self) -> int | None:
        """Requests that may be in flight now (None: as many as there are senders)."""
        return self.limiter.limit if self.limiter is not None else None

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _permit(self) -> None:
        """Wait until a request may start: after any pause, in the next rate slot."""
        now = self._clock()
        if self._pause_until > now:
            await self._sleep(self._pause_until - now)
        rate = self.current_rate()
        if rate:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
            if slot > now:
                await self._sleep(slot - now)

    def current_rate(self) -> float | None:
        """Requests per second to pace at: the limiter's rate under any --rate cap."""
        learnt = self.limiter.rate if self.limiter is not None else None
        if learnt is None or self.rate is None:
            return learnt or self.rate
        return min(learnt, self.rate)

    def stats(self) -> PacingStats | None:
        """The adaptive limiter's state, for progress and the summary (None: fixed)."""
        return self.limiter.stats() if self.limiter is not None else None

    def report(self, answer: Answer) -> None:
        """Learn from one request's answer."""
        if self.limiter is not None:
            signal = answer.signal
            self.limiter.observe(
                signal, sent=answer.sent, now=answer.answered, in_flight=self.in_flight
            )
            if signal is Signal.RATE_LIMITED and answer.retry_after is None:
                # The server said "too many" without saying how long to wait.
                self.pause(self.limiter.inferred_pause())
        if answer.healthy:
            self.last_success = self._clock()
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = self._clock()

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the server asked, with Retry-After)."""
        self._pause_until = max(self._pause_until, self._clock() + seconds)

    def outage(self) -> bool:
        """Whether every request has failed for ``outage_seconds``."""
        since = self.failing_since
        if since is None:
            return False
        return self._clock() - max(since, self.last_success) >= self.outage_seconds


class _Slot:
    """``async with pacer.slot():`` — a class, not a generator-based context manager,
    which cost a few per cent of the sending CPU at thousands of requests a second.
    Holds no state of its own, so one serves every request."""

    __slots__ = ("_pacer",)

    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer

    async def __aenter__(self) -> None:
        await self._pacer._acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._pacer._release()
