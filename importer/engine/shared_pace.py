"""One ``--rate`` for a whole cluster, a server's pause felt by every worker, and
one stop for all workers when the key is refused or the endpoint is down.

A ``PaceKeeper`` lives in one place (a Dask actor) and hands out request start times
``1/rate`` apart, after any pause a worker reported. Each worker's ``SharedPacer``
leases a small batch of start times at a time (a tenth of a second's worth), so the
keeper is asked a few times a second, not once a request. The keeper answers with a
delay from the moment it is asked, on its own clock, so the workers' clocks need not
agree. Leased start times a worker does not use in time (its partition ended, or it
was busy) are dropped: the cluster then sends a little under the rate, never over it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from importer.core.pacing import AdaptiveLimiter
from importer.engine.pacer import Clock, Pacer, Sleep
from importer.engine.sending import Abort, AbortCode, Stop


class PaceKeeper:
    """Start times for the whole cluster's requests."""

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._next = 0.0
        self._pause_until = 0.0

    def lease(self, count: int) -> float:
        """Seconds from now until the first of ``count`` requests may start; the others
        follow ``1/rate`` apart."""
        now = self._clock()
        start = max(now, self._next, self._pause_until)
        self._next = start + count / self.rate
        return start - now

    def pause(self, seconds: float) -> None:
        """Hold every worker's next requests for ``seconds`` (a Retry-After)."""
        self._pause_until = max(self._pause_until, self._clock() + seconds)


def batch_size(rate: float) -> int:
    """Start times leased at once: a tenth of a second's worth, 1 to 50."""
    return max(1, min(50, int(rate / 10)))


class SharedPacer(Pacer):
    """A worker's pacer whose rate cap is the cluster's, kept by ``keeper`` (a
    ``PaceKeeper`` or a Dask actor handle of one); everything else as ``Pacer``."""

    def __init__(
        self,
        keeper: Any,
        rate: float,
        outage_seconds: float = 120.0,
        *,
        limiter: AdaptiveLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(None, outage_seconds, limiter=limiter, clock=clock, sleep=sleep)
        self.keeper = keeper
        self.shared_rate = rate
        self._slots: deque[float] = deque()
        self._leasing = asyncio.Lock()
        self.told: asyncio.Future[float] | None = None  # the keeper being told of a pause

    async def _permit(self) -> None:
        await super()._permit()  # this worker's pauses, and the limiter's learnt rate
        async with self._leasing:
            # A start time long past (this worker was busy elsewhere) is dropped, not
            # used late: several used at once would be a burst over the rate.
            late = self.now() - 1.0 / self.shared_rate
            while self._slots and self._slots[0] < late:
                self._slots.popleft()
            if not self._slots:
                count = batch_size(self.shared_rate)
                delay = await asyncio.to_thread(self._ask, "lease", count)
                first = self.now() + delay
                self._slots.extend(first + i / self.shared_rate for i in range(count))
            slot = self._slots.popleft()
        wait = slot - self.now()
        if wait > 0:
            await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        self._slots.clear()  # leased before the pause: lease again after it
        loop = asyncio.get_running_loop()
        self.told = loop.run_in_executor(None, self._ask, "pause", seconds)

    def _ask(self, method: str, argument: float) -> float:
        answer = getattr(self.keeper, method)(argument)
        result = answer.result() if hasattr(answer, "result") else answer
        return float(result or 0.0)


class SharedStop:
    """A stop every worker sees. The first worker whose run is aborted because the key
    was refused or the endpoint is down says so in ``flag``; every other worker's run
    stops within ``poll`` seconds, and a partition started later sends nothing.

    ``flag`` has ``get()`` (the abort as [code, reason], or None) and ``set(value)``:
    a Dask Event and Variable on a cluster, anything alike in a test.
    """

    SPREAD = (AbortCode.CREDENTIALS, AbortCode.ENDPOINT)

    def __init__(self, flag: Any, poll: float = 0.25) -> None:
        self.flag = flag
        self.poll = poll
        self.told = False

    def seen(self) -> Abort | None:
        """The abort another worker reported (blocking: call it in a thread)."""
        found = self.flag.get()
        return None if found is None else Abort(str(found[1]), AbortCode(found[0]))

    def tell(self, abort: Abort) -> None:
        """Report this worker's abort to the others (blocking)."""
        if abort.code in self.SPREAD and not self.told:
            self.told = True
            self.flag.set([abort.code.value, abort.reason])

    async def watch(self, stop: Stop) -> None:
        """Until cancelled: pass this worker's abort on, or stop it on another's."""
        while True:
            if stop.abort is not None:
                await asyncio.to_thread(self.tell, stop.abort)
                return
            found = await asyncio.to_thread(self.seen)
            if found is not None:
                stop.trigger(found)
                return
            await asyncio.sleep(self.poll)
