"""The cluster's one adaptive limiter: in-flight slots leased to partitions (on a fake
clock), what one worker's answers do to the others, and two partitions' pacers
sharing one keeper."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.core.pacing import PacingConfig
from importer.engine.pacer import Answer
from importer.engine.shared_pace import ClusterPacer, PaceKeeper, Report, SlotPool, leased, shares
from tests.test_pacer import FakeTime


def test_the_limit_is_split_evenly_and_what_one_does_not_want_goes_to_the_others() -> None:
    assert shares(8, {"a": 64, "b": 64}) == {"a": 4, "b": 4}
    assert shares(9, {"a": 64, "b": 64}) == {"a": 4, "b": 5}
    assert shares(8, {"a": 2, "b": 64, "c": 64}) == {"a": 2, "b": 3, "c": 3}
    assert shares(8, {"a": 64}) == {"a": 8}


def test_a_slot_changes_hands_only_when_its_holder_cannot_be_using_it() -> None:
    pool = SlotPool()
    assert pool.settle("a", 0.0, held=0, in_flight=0, wanted=64, limit=8) == 8
    # b arrives: a may have all 8 in flight, so b gets nothing yet, and a is told 4.
    assert pool.settle("b", 0.0, held=0, in_flight=0, wanted=64, limit=8) == 0
    assert pool.settle("a", 0.1, held=8, in_flight=8, wanted=64, limit=8) == 4
    assert pool.settle("b", 0.1, held=0, in_flight=0, wanted=64, limit=8) == 0
    # a heard of its 4 and is down to 3 in flight: b may have the other 4.
    assert pool.settle("a", 0.2, held=4, in_flight=3, wanted=64, limit=8) == 4
    assert pool.settle("b", 0.2, held=0, in_flight=0, wanted=64, limit=8) == 4
    assert pool.bound() == 8
    # a's partition is done: it gives its slots back, and b may have all 8.
    assert pool.settle("a", 0.3, held=4, in_flight=0, wanted=0, limit=8) == 0
    assert pool.settle("b", 0.3, held=4, in_flight=4, wanted=64, limit=8) == 8


def test_the_slots_of_a_partition_not_heard_of_return_after_the_expiry() -> None:
    pool = SlotPool(expiry=10.0)
    assert pool.settle("dead", 0.0, held=0, in_flight=0, wanted=64, limit=8) == 8
    assert pool.settle("b", 5.0, held=0, in_flight=0, wanted=64, limit=8) == 0
    assert pool.settle("b", 10.5, held=0, in_flight=0, wanted=64, limit=8) == 8


@dataclass
class _Worker:
    held: int = 0
    in_flight: int = 0
    report: Report | None = None  # on its way to the keeper
    grant: int | None = None  # on its way back


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from("sfrpdl"), st.integers(1, 8)),
        max_size=300,
    )
)
def test_the_cluster_never_has_more_in_flight_than_the_ceiling(
    steps: list[tuple[int, str, int]],
) -> None:
    """Three workers start and finish requests, report, and hear back, in any order,
    while the limit moves anywhere from 1 to the ceiling of 8."""
    pool, limit = SlotPool(), 8
    workers = [_Worker() for _ in range(3)]
    for now, (who, action, number) in enumerate(steps):
        worker, name = workers[who], f"w{who}"
        if action == "s" and worker.in_flight < worker.held:
            worker.in_flight += 1
        elif action == "f" and worker.in_flight:
            worker.in_flight -= 1
        elif action == "r" and worker.report is None and worker.grant is None:
            worker.report = Report(name, 0.0, worker.held, worker.in_flight, 64)
        elif action == "p" and worker.report is not None:
            report, worker.report = worker.report, None
            worker.grant = pool.settle(name, float(now), held=report.held, wanted=64,
                                       in_flight=report.in_flight, limit=limit)  # fmt: skip
        elif action == "d" and worker.grant is not None:
            worker.held, worker.grant = worker.grant, None
        elif action == "l":
            limit = number
        assert sum(w.in_flight for w in workers) <= pool.bound() <= 8


def _answers(first: float, count: int, latency: float, status: int = 200) -> tuple:  # type: ignore[type-arg]
    signal = "ok" if status == 200 else "rate_limited"
    return tuple((signal, first + i * 0.01, first + i * 0.01 + latency, 4, False)
                 for i in range(count))  # fmt: skip


def test_a_429_one_worker_meets_slows_and_holds_every_worker() -> None:
    time = FakeTime()
    keeper = PaceKeeper(None, time.clock, pacing=PacingConfig(initial=8, ceiling=64))
    keeper.exchange(Report("a", time.now, 0, 0, 64))
    keeper.exchange(Report("b", time.now, 0, 0, 64))
    assert keeper.lease(10) == (0.0, 0.0)  # no rate limit met: no start times to keep
    time.now += 1.0
    answers = _answers(time.now - 1.0, 90, 0.005) + _answers(time.now - 0.05, 1, 0.005, 429)
    told_a = keeper.exchange(Report("a", time.now, 4, 4, 64, answers))
    told_b = keeper.exchange(Report("b", time.now, 4, 4, 64))
    assert told_a.rate is not None and told_a.rate == told_b.rate
    assert told_a.pause > 0 and told_b.pause > 0  # b got no 429, and waits too
    delay, step = keeper.lease(10)
    assert delay > 0 and step == 1 / told_a.rate


def test_a_worker_clock_far_from_the_keepers_still_gives_true_latencies() -> None:
    time = FakeTime()
    keeper = PaceKeeper(None, time.clock, pacing=PacingConfig())
    elsewhere = time.now + 5_000.0  # another machine's monotonic clock
    keeper.exchange(Report("a", elsewhere, 0, 0, 64, _answers(elsewhere - 1, 50, 0.02)))
    stats = keeper.stats()
    assert stats is not None and stats.latency_p50 is not None
    assert abs(stats.latency_p50 - 0.02) < 1e-9


def test_two_partitions_pacers_share_one_limit_and_give_it_back() -> None:
    keeper = PaceKeeper(None, pacing=PacingConfig(initial=8, ceiling=64))

    async def go() -> tuple[int, int, int]:
        first, second = ClusterPacer(keeper, 64), ClusterPacer(keeper, 64)
        async with leased(first):
            async with first.slot():
                now = first.now()
                first.report(Answer(True, 200, now, now + 0.001))
            held_alone = first.held
            async with leased(second):
                # The second gets its half once the first has heard it holds only 4.
                for _ in range(200):
                    if first.held + second.held == 8 and second.held:
                        break
                    await asyncio.sleep(0.01)
                together = first.held + second.held
        return held_alone, together, keeper.pool.bound()

    held_alone, together, after = asyncio.run(go())
    assert held_alone == 8 and together == 8
    assert after == 0  # both partitions done: every slot back in the pool


class _Gone:
    """A keeper whose worker died: every call fails as a Dask actor's does."""

    def __getattr__(self, name: str) -> object:
        def call(*args: object) -> object:
            raise OSError("Unable to contact Actor's worker")

        return call


def test_a_partition_whose_keeper_is_lost_paces_itself() -> None:
    async def go() -> ClusterPacer:
        pacer = ClusterPacer(_Gone(), 64, cap=100.0, share=4,
                             config=PacingConfig(initial=3, ceiling=8))  # fmt: skip
        async with leased(pacer), pacer.slot():
            pass
        return pacer

    pacer = asyncio.run(go())
    assert pacer.lost is not None and "Unable to contact" in pacer.lost
    assert pacer.allowed() == 3  # a limiter of its own, as on one machine
    assert pacer.rate == 25.0  # --rate 100 shared by the 4 workers the cluster had
