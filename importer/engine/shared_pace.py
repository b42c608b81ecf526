"""One pace for a whole cluster: ``--rate``, the adaptive limiter of ``--concurrency
auto``, a server's pause felt by every worker, and one stop for all workers when the
key is refused or the endpoint is down.

A ``PaceKeeper`` lives in one place (a Dask actor). With ``--rate`` it hands out request
start times ``1/rate`` apart, after any pause a worker reported; each worker's
``SharedPacer`` leases a small batch of start times at a time (a tenth of a second's
worth), so the keeper is asked a few times a second, not once a request. The keeper
answers with a delay from the moment it is asked, on its own clock, so the workers'
clocks need not agree. Leased start times a worker does not use in time (its partition
ended, or it was busy) are dropped: the cluster then sends a little under the rate,
never over it.

With ``--concurrency auto`` the keeper also owns the one ``AdaptiveLimiter``
(``importer.core.pacing``) for the cluster. Each partition's ``ClusterPacer`` holds a
lease of in-flight slots and trades with the keeper every ``interval`` (at once after
a 429): it reports how its answers went since the last trade (statuses and latencies,
moved onto the keeper's clock) and how many requests it has in flight, and gets back
how many slots it may hold, any pause, and the rate once a rate limit has been met.
The keeper's ``SlotPool`` splits the limiter's limit evenly among the partitions
running and gives a slot to one only when no other can be using it, so the whole
cluster never has more requests in flight than the limit (at most the ceiling). A 429
one worker gets cuts the one limiter: every worker slows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from importer.core.pacing import AdaptiveLimiter, PacingConfig, PacingStats, Signal
from importer.engine.pacer import Answer, Clock, Pacer, Sleep
from importer.engine.sending import Abort, AbortCode, Stop

log = logging.getLogger("metrix_importer")

# One answer as a worker reports it: (signal, sent, answered, the worker's requests in
# flight then, whether the server said how long to wait), times on the worker's clock.
Observed = tuple[str, float, float, int, bool]


@dataclass(frozen=True)
class Report:
    """What a partition's pacer tells the keeper at each trade."""

    lessee: str
    clock: float  # the worker's clock when it reported
    held: int  # slots it held until now (the last grant)
    in_flight: int
    wanted: int  # slots it could use (its senders); 0 when its partition is done
    answers: tuple[Observed, ...] = ()


@dataclass(frozen=True)
class Grant:
    """The keeper's answer: slots the partition may hold, a pause, the cluster's rate."""

    held: int
    pause: float  # seconds from now
    rate: float | None


@dataclass
class _Lease:
    wanted: int
    in_flight: int
    bound: int  # the most requests it can have in flight until it reports again
    seen: float


def shares(limit: int, wanted: dict[str, int]) -> dict[str, int]:
    """``limit`` split evenly among lessees, none given more than it wants; what one
    does not want goes to the others (the last ones in name order get the remainder)."""
    left, out = limit, {}
    order = sorted(wanted, key=lambda name: (wanted[name], name))
    for done, name in enumerate(order):
        out[name] = max(0, min(wanted[name], left // (len(order) - done)))
        left -= out[name]
    return out


class SlotPool:
    """In-flight slots leased to partitions; pure, on the caller's clock.

    A lessee trades one report at a time and waits for the answer before the next, so
    until it reports again it may have in flight at most the larger of what it reported
    in flight, the slots it held and the slots it is given now (``bound``). A slot is
    given only while the bounds of all together stay within the limit, so the requests
    in flight across the cluster never exceed it; one that falls is given back as the
    holders' requests finish. A lessee not heard of for ``expiry`` seconds (its worker
    died) has its slots back in the pool.
    """

    def __init__(self, expiry: float = 10.0) -> None:
        self.expiry = expiry
        self.leases: dict[str, _Lease] = {}

    def settle(
        self, lessee: str, now: float, *, held: int, in_flight: int, wanted: int, limit: int
    ) -> int:
        """Slots ``lessee`` may hold from now (it holds ``held``, has ``in_flight``)."""
        for name, lease in list(self.leases.items()):
            if name != lessee and now - lease.seen > self.expiry:
                del self.leases[name]
        if wanted <= 0 and in_flight <= 0:
            self.leases.pop(lessee, None)
            return 0
        active = {name: lease.wanted for name, lease in self.leases.items() if lease.wanted > 0}
        active[lessee] = wanted
        target = shares(limit, active)[lessee]
        others = sum(lease.bound for name, lease in self.leases.items() if name != lessee)
        given = max(0, min(target, limit - others))
        self.leases[lessee] = _Lease(wanted, in_flight, max(given, held, in_flight), now)
        return given

    def in_flight_besides(self, lessee: str) -> int:
        """Requests the other lessees last said they had in flight."""
        return sum(lease.in_flight for name, lease in self.leases.items() if name != lessee)

    def bound(self) -> int:
        """The most requests the whole cluster can have in flight now."""
        return sum(lease.bound for lease in self.leases.values())


class PaceKeeper:
    """The cluster's one pace: start times at ``rate`` (a cap, or None), and with
    ``pacing`` the adaptive limiter whose slots partitions lease."""

    def __init__(
        self,
        rate: float | None,
        clock: Clock = time.monotonic,
        *,
        pacing: PacingConfig | None = None,
        expiry: float = 10.0,
    ) -> None:
        self.cap = rate
        self._clock = clock
        self._next = 0.0
        self._pause_until = 0.0
        self.limiter = None if pacing is None else AdaptiveLimiter(pacing, now=clock())
        self.pool = SlotPool(expiry)

    @property
    def rate(self) -> float | None:
        """Requests per second for the cluster: the learnt rate under any cap."""
        learnt = self.limiter.rate if self.limiter is not None else None
        if learnt is None or self.cap is None:
            return learnt or self.cap
        return min(learnt, self.cap)

    def lease(self, count: int) -> tuple[float, float]:
        """Seconds from now until the first of ``count`` requests may start, and the
        seconds between the others' starts (0: no rate holds now)."""
        now = self._clock()
        rate = self.rate
        start = max(now, self._pause_until)
        if rate is None:
            return start - now, 0.0
        start = max(start, self._next)
        self._next = start + count / rate
        return start - now, 1.0 / rate

    def pause(self, seconds: float) -> None:
        """Hold every worker's next requests for ``seconds`` (a Retry-After)."""
        self._pause_until = max(self._pause_until, self._clock() + seconds)

    def exchange(self, report: Report) -> Grant:
        """Learn from a partition's answers; tell it its slots, any pause and the rate."""
        now = self._clock()
        limiter = self.limiter
        if limiter is None:  # nothing adapts: as many as it has senders
            return Grant(report.wanted, max(0.0, self._pause_until - now), self.rate)
        offset = now - report.clock  # the worker's clock onto the keeper's
        others = self.pool.in_flight_besides(report.lessee)
        for signal, sent, answered, in_flight, waited in report.answers:
            kind = Signal(signal)
            limiter.observe(kind, sent=sent + offset, now=answered + offset,
                            in_flight=in_flight + others)  # fmt: skip
            if kind is Signal.RATE_LIMITED and not waited:
                # "Too many" without saying how long to wait: everyone waits a little.
                self.pause(limiter.inferred_pause())
        held = self.pool.settle(report.lessee, now, held=report.held,
                                in_flight=report.in_flight, wanted=report.wanted,
                                limit=limiter.limit)  # fmt: skip
        return Grant(held, max(0.0, self._pause_until - now), self.rate)

    def stats(self) -> PacingStats | None:
        """The cluster limiter's state, for the summary (None: fixed concurrency)."""
        return self.limiter.stats() if self.limiter is not None else None


def batch_size(rate: float) -> int:
    """Start times leased at once: a tenth of a second's worth, 1 to 50."""
    return max(1, min(50, int(rate / 10)))


class KeeperLost(Exception):
    """The keeper cannot be reached: the worker holding it died."""


# Keepers this process found lost: a partition started later paces itself at once
# instead of waiting out a call to a dead worker again.
_LOST: dict[str, str] = {}


def _name(keeper: Any) -> str:
    """A Dask actor's key ("": a keeper in this process, never lost)."""
    return str(getattr(keeper, "key", ""))


class SharedPacer(Pacer):
    """A worker's pacer whose rate cap is the cluster's, kept by ``keeper`` (a
    ``PaceKeeper`` or a Dask actor handle of one); everything else as ``Pacer``.

    Should the keeper be lost (Dask does not re-create an actor whose worker died), the
    worker paces itself from then on: at ``rate / share`` (``share``: the workers the
    cluster had), so the cluster together stays under ``rate``."""

    def __init__(
        self,
        keeper: Any,
        rate: float | None,
        outage_seconds: float = 120.0,
        *,
        share: int = 1,
        limiter: AdaptiveLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(None, outage_seconds, limiter=limiter, clock=clock, sleep=sleep)
        self.keeper = keeper
        self.cap = rate
        self.share = max(1, share)
        self.shared_rate = rate  # None: no rate holds for the cluster (yet)
        self._slots: deque[float] = deque()
        self._leasing = asyncio.Lock()
        self.told: asyncio.Future[Any] | None = None  # the keeper being told of a pause
        self.lost: str | None = None  # why the keeper was lost, once it was
        self.wait = 5.0  # seconds a call to the keeper may take before it counts as lost

    async def _permit(self) -> None:
        await super()._permit()  # this worker's pauses, and the limiter's learnt rate
        if self.shared_rate is None:
            return
        async with self._leasing:
            # A start time long past (this worker was busy elsewhere) is dropped, not
            # used late: several used at once would be a burst over the rate.
            late = self.now() - 1.0 / self.shared_rate
            while self._slots and self._slots[0] < late:
                self._slots.popleft()
            if not self._slots:
                count = batch_size(self.shared_rate)
                try:
                    delay, step = await asyncio.to_thread(self._lease, count)
                except KeeperLost as lost:
                    self.on_own(str(lost))
                    return
                first = self.now() + delay
                self._slots.extend(first + i * step for i in range(count))
            slot = self._slots.popleft()
        wait = slot - self.now()
        if wait > 0:
            await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        self._slots.clear()  # leased before the pause: lease again after it
        if self.lost is None:
            loop = asyncio.get_running_loop()
            self.told = loop.run_in_executor(None, self._tell, "pause", seconds)

    def on_own(self, why: str) -> None:
        """Pace this worker by itself from now on (the keeper is lost)."""
        if self.lost is not None:
            return
        self.lost = why
        if _name(self.keeper) not in _LOST:
            if _name(self.keeper):
                _LOST[_name(self.keeper)] = why
            log.warning(
                "the worker keeping the cluster's pace was lost (%s); this worker paces "
                "itself from now on%s", why,
                "" if self.cap is None else f" at {self.cap / self.share:g}/s (--rate / workers)",
            )  # fmt: skip
        self._slots.clear()
        self.shared_rate = None
        self.rate = None if self.cap is None else self.cap / self.share

    def _ask(self, method: str, argument: Any) -> Any:
        if _name(self.keeper) in _LOST:
            raise KeeperLost(_LOST[_name(self.keeper)])
        try:
            answer = getattr(self.keeper, method)(argument)
            return answer.result(timeout=self.wait) if hasattr(answer, "result") else answer
        except (RuntimeError, OSError, TimeoutError) as exc:  # Dask: its worker is gone
            raise KeeperLost(f"{type(exc).__name__}: {exc}") from exc

    def _tell(self, method: str, argument: Any) -> Any:
        with contextlib.suppress(KeeperLost):  # the next lease or trade notices
            return self._ask(method, argument)
        return None

    def _lease(self, count: int) -> tuple[float, float]:
        delay, step = self._ask("lease", count)
        return float(delay), float(step)


class ClusterPacer(SharedPacer):
    """A partition's pacer under the cluster's one adaptive limiter (see the module
    docstring): requests in flight up to the slots it holds, start times from the
    keeper once a rate holds. ``start()`` before the first request, ``close()`` after
    the last (it gives the slots back). Should the keeper be lost, a limiter of its
    own (``config``) takes over, under its share of the ``cap`` (``--rate``)."""

    def __init__(
        self,
        keeper: Any,
        wanted: int,
        outage_seconds: float = 120.0,
        *,
        cap: float | None = None,
        share: int = 1,
        config: PacingConfig | None = None,
        interval: float = 0.05,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(keeper, cap, outage_seconds, share=share, clock=clock, sleep=sleep)
        self.shared_rate = None  # until the keeper says
        self.config = config or PacingConfig()
        self.lessee = uuid.uuid4().hex
        self.wanted = wanted
        self.interval = interval
        self.held = 0
        self._answers: list[Observed] = []
        self._soon = asyncio.Event()
        self._trading: asyncio.Task[None] | None = None

    def allowed(self) -> int:
        return self.limiter.limit if self.limiter is not None else self.held

    async def start(self) -> None:
        """The first slots, then a trade every ``interval``."""
        await self._trade(self.wanted)
        self._trading = asyncio.create_task(self._trade_often())

    async def close(self) -> None:
        """Stop trading; the last answers told and every slot given back."""
        if self._trading is not None:
            self._trading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trading
            self._trading = None
        await self._trade(0)

    async def _trade_often(self) -> None:
        while self.lost is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._soon.wait(), self.interval)
            self._soon.clear()
            await self._trade(self.wanted)

    async def _trade(self, wanted: int) -> None:
        if self.lost is not None:
            return
        answers, self._answers = tuple(self._answers), []
        report = Report(self.lessee, self.now(), self.held, self.in_flight, wanted, answers)
        try:
            grant: Grant = await asyncio.to_thread(self._ask, "exchange", report)
        except KeeperLost as lost:
            self.on_own(str(lost))
            return
        self.held = grant.held
        if grant.pause > 0:
            Pacer.pause(self, grant.pause)  # the keeper knows already
        if (grant.rate is None) != (self.shared_rate is None):
            self._slots.clear()  # a rate was met, or the cap is gone
        # Start times leased already are kept (the keeper has given them out): the
        # next lease is spaced at the new rate.
        self.shared_rate = grant.rate
        self._wake_one()  # the slots may have grown

    def on_own(self, why: str) -> None:
        if self.lost is None:
            self.limiter = AdaptiveLimiter(self.config, now=self.now())
            self._answers.clear()
        super().on_own(why)
        self._wake_one()  # the limit is the limiter's now

    def report(self, answer: Answer) -> None:
        super().report(answer)  # the outage watch; the limiter once on its own
        if self.lost is not None:
            return
        signal = answer.signal
        self._answers.append((signal.value, answer.sent, answer.answered, self.in_flight,
                              answer.retry_after is not None))  # fmt: skip
        if signal is Signal.RATE_LIMITED:
            self._soon.set()  # the other workers should hear of it now


@contextlib.asynccontextmanager
async def leased(pacer: Pacer) -> AsyncIterator[None]:
    """A ``ClusterPacer`` started for the block and its slots given back after it."""
    if not isinstance(pacer, ClusterPacer):
        yield
        return
    await pacer.start()
    try:
        yield
    finally:
        await pacer.close()


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
                stop.trigger(found, announce=False)  # said once, not by every worker
                return
            await asyncio.sleep(self.poll)
