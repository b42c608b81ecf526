"""The pacer on a fake clock: pauses, the rate cap, outages, requests in flight."""

from __future__ import annotations

import asyncio
from collections import deque

from importer.core.pacing import AdaptiveLimiter, PacingConfig, Signal
from importer.engine.pacer import Answer, Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _pacer(time: FakeTime, rate: float | None = None, outage: float = 120.0) -> Pacer:
    return Pacer(rate, outage, clock=time.clock, sleep=time.sleep)


async def _take(pacer: Pacer, count: int) -> None:
    for _ in range(count):
        async with pacer.slot():
            pass


def test_a_rate_cap_spaces_requests_evenly() -> None:
    time = FakeTime()
    asyncio.run(_take(_pacer(time, rate=4.0), 5))
    assert time.slept == [0.25, 0.25, 0.25, 0.25]


def test_a_pause_holds_the_next_request_until_it_ends() -> None:
    time = FakeTime()
    pacer = _pacer(time)
    pacer.pause(30.0)
    pacer.pause(10.0)  # a shorter pause never shortens a longer one
    asyncio.run(_take(pacer, 2))
    assert time.slept == [30.0]


def test_an_outage_is_every_request_failing_for_the_whole_window() -> None:
    time = FakeTime()
    pacer = _pacer(time, outage=60.0)
    pacer.report(Answer(False, 503, time.now, time.now + 1))
    time.now += 59
    assert not pacer.outage()
    pacer.report(Answer(True, 200, time.now, time.now + 0.1))  # one success resets it
    time.now += 59
    pacer.report(Answer(False, None, time.now, time.now, "timeout"))
    time.now += 59
    assert not pacer.outage()
    time.now += 1
    assert pacer.outage()


def test_slots_count_requests_in_flight_and_release_on_errors() -> None:
    pacer = _pacer(FakeTime())
    seen: list[int] = []

    async def go() -> None:
        async with pacer.slot():
            seen.append(pacer.in_flight)
            async with pacer.slot():
                seen.append(pacer.in_flight)
        try:
            async with pacer.slot():
                raise RuntimeError("send failed")
        except RuntimeError:
            seen.append(pacer.in_flight)

    asyncio.run(go())
    assert seen == [1, 2, 0]
    assert Answer(True, 200, 5.0, 5.25).latency == 0.25


# -- with the adaptive limiter (--concurrency auto) --------------------------------------


def _adaptive(time: FakeTime, rate: float | None = None, ceiling: int = 64) -> Pacer:
    limiter = AdaptiveLimiter(PacingConfig(initial=2, ceiling=ceiling), now=time.now)
    return Pacer(rate, 120.0, limiter=limiter, clock=time.clock, sleep=time.sleep)


def test_requests_beyond_the_limit_wait_for_a_free_slot() -> None:
    time = FakeTime()
    pacer = _adaptive(time)
    entered: list[int] = []
    release = asyncio.Event()

    async def request(index: int) -> None:
        async with pacer.slot():
            entered.append(index)
            await release.wait()

    async def scenario() -> None:
        tasks = [asyncio.create_task(request(i)) for i in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert entered == [0, 1]  # the limiter starts at 2 in flight
        assert pacer.in_flight == 2
        release.set()
        await asyncio.gather(*tasks)
        assert sorted(entered) == [0, 1, 2, 3, 4] and pacer.in_flight == 0

    asyncio.run(scenario())


def test_a_429_without_retry_after_pauses_everyone_and_sets_a_paced_rate() -> None:
    time = FakeTime()
    pacer = _adaptive(time)
    pacer.report(Answer(False, 429, time.now, time.now + 0.01))
    learnt = pacer.current_rate()
    assert learnt is not None and learnt > 0
    asyncio.run(_take(pacer, 1))
    assert time.slept and 0.01 <= time.slept[0] <= 1.0  # the inferred pause


def test_a_429_with_retry_after_leaves_the_pause_to_the_server() -> None:
    time = FakeTime()
    pacer = _adaptive(time)
    pacer.report(Answer(False, 429, time.now, time.now + 0.01, retry_after=3.0))
    asyncio.run(_take(pacer, 1))
    assert time.slept == []  # the sender calls pause(3.0) itself


def test_rate_is_the_lower_of_the_cap_and_what_was_learnt() -> None:
    time = FakeTime()
    pacer = _adaptive(time, rate=1000.0)
    assert pacer.current_rate() == 1000.0
    pacer.report(Answer(False, 429, time.now, time.now + 0.01))
    learnt = pacer.current_rate()
    assert learnt is not None and learnt < 1000.0
    capped = _adaptive(time, rate=0.5)
    capped.report(Answer(False, 429, time.now, time.now + 0.01))
    assert capped.current_rate() == 0.5


def test_answers_map_to_load_signals() -> None:
    def signal(status: int | None, healthy: bool = False, error: str = "") -> Signal:
        return Answer(healthy, status, 0.0, 0.1, error).signal

    assert signal(200, healthy=True) is Signal.OK
    assert signal(400, healthy=True) is Signal.OK
    assert signal(429) is Signal.RATE_LIMITED
    assert signal(503) is Signal.OVERLOADED
    assert signal(None, error="timeout") is Signal.OVERLOADED
    assert signal(500) is Signal.ERROR
    assert signal(None, error="connection") is Signal.ERROR


def test_a_fixed_concurrency_has_no_limiter_stats() -> None:
    assert _pacer(FakeTime()).stats() is None
    assert _adaptive(FakeTime()).stats() is not None


class CountingWaiters(deque["asyncio.Future[None]"]):
    """The pacer's queue of waiting senders, remembering every wait it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[asyncio.Future[None]] = []

    def append(self, waiter: asyncio.Future[None]) -> None:
        self.handed.append(waiter)
        super().append(waiter)

    @property
    def woken(self) -> int:
        return sum(1 for w in self.handed if w.done() and not w.cancelled())


def test_each_freed_slot_wakes_exactly_one_waiting_sender() -> None:
    time = FakeTime()
    pacer = Pacer(
        None, 120.0, limiter=AdaptiveLimiter(PacingConfig(initial=2, ceiling=2)),
        clock=time.clock, sleep=time.sleep,
    )  # fmt: skip
    waiters = CountingWaiters()
    pacer._waiters = waiters
    entered: list[int] = []
    done = [asyncio.Event() for _ in range(10)]

    async def request(index: int) -> None:
        async with pacer.slot():
            entered.append(index)
            await done[index].wait()

    async def settle() -> None:
        for _ in range(20):  # let every runnable task run; no clock involved
            await asyncio.sleep(0)

    async def scenario() -> None:
        tasks = [asyncio.create_task(request(i)) for i in range(10)]
        await settle()
        assert entered == [0, 1] and len(waiters.handed) == 8  # eight senders wait
        for freed in range(1, 9):
            done[entered[freed - 1]].set()  # one request answered: one slot free
            await settle()
            # Exactly one sender woken and let in per freed slot: none left asleep
            # beside a free slot, none woken only to find the slot taken.
            assert waiters.woken == freed
            assert len(entered) == 2 + freed and pacer.in_flight == 2
        assert len(waiters.handed) == 8  # nobody had to wait twice
        for event in done:
            event.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
