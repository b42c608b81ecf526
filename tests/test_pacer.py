"""The pacer on a fake clock: pauses, the rate cap, outages, requests in flight."""

from __future__ import annotations

import asyncio

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
