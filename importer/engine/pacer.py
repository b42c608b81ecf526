"""When the next request may go, and when the endpoint counts as down.

A sending worker holds a ``slot()`` for each request (entering it waits for
permission; the pacer counts the requests in flight) and ``report()``s how each one went:
whether the endpoint worked, the HTTP status or transport error, when it was sent and
answered. Today the pacer honours a server-wide pause (Retry-After stops every worker,
not just the one that got it), the ``--rate`` cap, and notices an outage (no success for
``outage_seconds`` while requests keep failing). An adaptive concurrency limit
(importer.core.pacing) belongs here too: it can hold ``slot`` and learn from ``report``
without the runner changing. Clock and sleep are injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    """How one request went, as the pacer needs to know it."""

    healthy: bool  # the endpoint worked (delivered, or rejected this one row)
    status: int | None  # None: no HTTP answer at all (see ``error``)
    sent: float  # the pacer's clock when the request went out
    answered: float  # ... and when its answer (or the error) came back
    error: str = ""  # the transport error's kind ("timeout", ...) when status is None

    @property
    def latency(self) -> float:
        return self.answered - self.sent


class Pacer:
    """Slots for requests: pauses, a rate cap, and outage detection."""

    def __init__(
        self,
        rate: float | None = None,
        outage_seconds: float = 120.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.outage_seconds = outage_seconds
        self._clock = clock
        self._sleep = sleep
        self._pause_until = 0.0
        self._next_slot = 0.0
        self.last_success = clock()
        self.failing_since: float | None = None
        self.in_flight = 0

    def now(self) -> float:
        return self._clock()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a place for one request: waits for permission, counts it in flight."""
        await self._permit()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _permit(self) -> None:
        """Wait until a request may start: after any pause, in the next rate slot."""
        now = self._clock()
        if self._pause_until > now:
            await self._sleep(self._pause_until - now)
        rate = self.rate
        if rate:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
            if slot > now:
                await self._sleep(slot - now)

    def report(self, answer: Answer) -> None:
        """Learn from one request's answer."""
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
