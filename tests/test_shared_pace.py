"""One --rate and one stop for a cluster: the keeper, the workers' pacers (on a fake
clock) and the shared stop."""

from __future__ import annotations

import asyncio
import itertools

from importer.engine.sending import Abort, AbortCode, Stop
from importer.engine.shared_pace import PaceKeeper, SharedPacer, SharedStop, batch_size
from tests.test_pacer import FakeTime


def test_the_keeper_hands_out_start_times_one_rate_step_apart() -> None:
    time = FakeTime()
    keeper = PaceKeeper(2.0, clock=time.clock)
    assert keeper.lease(3) == (0.0, 0.5)  # starts now, now + 0.5, now + 1.0
    assert keeper.lease(1) == (1.5, 0.5)  # after the three leased before
    time.now += 10
    assert keeper.lease(1) == (0.0, 0.5)  # unused time is not saved up into a burst
    keeper.pause(30)
    assert keeper.lease(1) == (30.0, 0.5)


def _pacers(time: FakeTime, rate: float) -> tuple[SharedPacer, SharedPacer]:
    keeper = PaceKeeper(rate, clock=time.clock)
    return (
        SharedPacer(keeper, rate, clock=time.clock, sleep=time.sleep),
        SharedPacer(keeper, rate, clock=time.clock, sleep=time.sleep),
    )


async def _starts(pacer: SharedPacer, time: FakeTime, count: int) -> list[float]:
    starts = []
    for _ in range(count):
        async with pacer.slot():
            starts.append(time.now)
    return starts


def test_two_workers_together_keep_one_rate() -> None:
    time = FakeTime()
    rate = 100.0
    first, second = _pacers(time, rate)

    async def go() -> list[float]:
        starts = await _starts(first, time, 15)
        starts += await _starts(second, time, 15)
        return starts + await _starts(first, time, 15)

    starts = sorted(asyncio.run(go()))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 45 and min(gaps) >= 1 / rate - 1e-9
    # Alone, each pacer would have started its requests 1/rate apart from its own
    # first one; together they take turns, so the whole took at least 44 steps.
    assert starts[-1] - starts[0] >= 44 / rate - 1e-9
    assert batch_size(rate) == 10


def test_a_pause_one_worker_is_told_holds_the_other() -> None:
    time = FakeTime()
    first, second = _pacers(time, 10.0)

    async def go() -> list[float]:
        await _starts(first, time, 1)
        first.pause(30.0)  # a Retry-After: 30 seconds
        assert first.told is not None
        await first.told
        return await _starts(second, time, 1)

    paused_at = time.now
    (start,) = asyncio.run(go())
    assert start >= paused_at + 30.0


class Flag:
    """What a Dask Event and Variable do for ``SharedStop``, in memory."""

    def __init__(self) -> None:
        self.value: list[str] | None = None
        self.sets = 0

    def get(self) -> list[str] | None:
        return self.value

    def set(self, value: list[str]) -> None:
        self.value = value
        self.sets += 1


def test_a_refused_key_is_told_once_and_an_interruption_not_at_all() -> None:
    flag = Flag()
    SharedStop(flag).tell(Abort("interrupted", AbortCode.INTERRUPTED))
    assert flag.value is None
    stop = SharedStop(flag)
    stop.tell(Abort("the key was refused", AbortCode.CREDENTIALS))
    stop.tell(Abort("the key was refused", AbortCode.CREDENTIALS))
    assert flag.value == ["credentials", "the key was refused"] and flag.sets == 1
    assert SharedStop(flag).seen() == Abort("the key was refused", AbortCode.CREDENTIALS)


def test_a_worker_stops_when_another_reports_a_refused_key() -> None:
    flag = Flag()

    async def go() -> Stop:
        stop = Stop()
        watcher = asyncio.create_task(SharedStop(flag, poll=0.001).watch(stop))
        await asyncio.sleep(0.01)
        assert stop.abort is None  # nothing reported yet: the run goes on
        SharedStop(flag).tell(Abort("the key was refused", AbortCode.CREDENTIALS))
        await asyncio.wait_for(watcher, timeout=60)
        return stop

    stop = asyncio.run(go())
    assert stop.abort == Abort("the key was refused", AbortCode.CREDENTIALS)
    assert stop.reading.is_set()


def test_a_worker_reports_its_own_refused_key() -> None:
    flag = Flag()

    async def go() -> None:
        stop = Stop()
        watcher = asyncio.create_task(SharedStop(flag, poll=0.001).watch(stop))
        stop.trigger(Abort("the endpoint is down", AbortCode.ENDPOINT))
        await asyncio.wait_for(watcher, timeout=60)

    asyncio.run(go())
    assert flag.value == ["endpoint", "the endpoint is down"]
