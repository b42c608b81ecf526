"""The adaptive limiter: table tests, simulated endpoints on a fake clock, properties."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.core.pacing import AdaptiveLimiter, PacingConfig, Signal
from tests.pacing_sim import LatencyServer, QueueingServer, RateLimitedServer, simulate


def feed_ok(limiter: AdaptiveLimiter, count: int, *, latency: float, start: float = 0.0) -> float:
    """``count`` answers ``latency`` apart with the limit in full use; returns the clock."""
    now = start
    for _ in range(count):
        now += latency
        limiter.observe(Signal.OK, sent=now - latency, now=now, in_flight=limiter.limit)
    return now


def test_starts_at_the_initial_limit_with_no_rate() -> None:
    limiter = AdaptiveLimiter()
    assert (limiter.limit, limiter.rate) == (8, None)


def test_slow_start_grows_by_one_per_good_answer_up_to_the_ceiling() -> None:
    limiter = AdaptiveLimiter(PacingConfig(initial=8, ceiling=20))
    feed_ok(limiter, 5, latency=0.01)
    assert limiter.limit == 13
    feed_ok(limiter, 100, latency=0.01, start=1.0)
    assert limiter.limit == 20


def test_an_idle_limit_does_not_grow() -> None:
    limiter = AdaptiveLimiter()
    for step in range(50):
        limiter.observe(Signal.OK, sent=step * 0.01, now=step * 0.01 + 0.01, in_flight=2)
    assert limiter.limit == 8


def test_a_503_cuts_the_limit_once_per_congestion_event() -> None:
    limiter = AdaptiveLimiter(PacingConfig(initial=20, ceiling=64))
    limiter.observe(Signal.OVERLOADED, sent=1.0, now=1.05, in_flight=20)
    assert limiter.limit == 14  # 20 × 0.7
    # Answers to requests sent before the cut are the same event: no second cut.
    limiter.observe(Signal.OVERLOADED, sent=1.01, now=1.06, in_flight=14)
    assert limiter.limit == 14
    limiter.observe(Signal.OVERLOADED, sent=1.10, now=1.15, in_flight=14)
    assert limiter.limit == 9


def test_after_a_cut_growth_is_one_per_round_trip() -> None:
    limiter = AdaptiveLimiter(PacingConfig(initial=10, ceiling=64))
    limiter.observe(Signal.OVERLOADED, sent=0.0, now=0.01, in_flight=10)
    assert limiter.limit == 7
    feed_ok(limiter, 8, latency=0.01, start=0.02)  # about one limit's worth of answers
    assert limiter.limit == 8


def test_a_500_or_a_dropped_connection_says_nothing_about_load() -> None:
    limiter = AdaptiveLimiter()
    limiter.observe(Signal.ERROR, sent=0.0, now=0.01, in_flight=8)
    assert limiter.limit == 8 and limiter.rate is None


def test_a_latency_rise_past_the_tolerance_shrinks_the_limit() -> None:
    limiter = AdaptiveLimiter(PacingConfig(initial=32, ceiling=64))
    now = feed_ok(limiter, 200, latency=0.010)
    before = limiter.limit
    feed_ok(limiter, 200, latency=0.050, start=now)
    assert limiter.limit < before


def test_a_rise_of_a_few_ms_over_a_local_endpoint_is_not_congestion() -> None:
    # A zero-latency endpoint on a busy machine: 0.5 ms, then 15 ms of scheduling delay.
    limiter = AdaptiveLimiter(PacingConfig(initial=32, ceiling=64))
    now = 0.0
    for latency, count in ((0.0005, 200), (0.015, 200)):
        for _ in range(count):
            now += 0.001
            limiter.observe(Signal.OK, sent=now - latency, now=now, in_flight=10)
    assert limiter.limit == 32
    for _ in range(100):  # past 20 ms it is
        now += 0.001
        limiter.observe(Signal.OK, sent=now - 0.030, now=now, in_flight=10)
    assert limiter.limit < 32


def test_the_first_429_paces_just_under_the_accepted_rate() -> None:
    limiter = AdaptiveLimiter()
    # 300 answers in the last second: the endpoint was accepting 300/s.
    for i in range(300):
        limiter.observe(Signal.OK, sent=i / 300, now=i / 300 + 0.005, in_flight=4)
    limiter.observe(Signal.RATE_LIMITED, sent=1.0, now=1.005, in_flight=4)
    assert limiter.rate == pytest.approx(300 * 0.9, rel=0.02)
    assert limiter.rate_limited == 1


def test_the_paced_rate_probes_upwards_while_answers_are_good() -> None:
    limiter = AdaptiveLimiter()
    limiter.observe(Signal.RATE_LIMITED, sent=0.0, now=0.01, in_flight=1)
    start = limiter.rate
    assert start is not None
    feed_ok(limiter, 100, latency=0.1, start=0.01)  # ten seconds of good answers
    assert limiter.rate is not None and limiter.rate > start * 1.15


def test_inferred_pause_is_bounded() -> None:
    limiter = AdaptiveLimiter()
    assert 0.01 <= limiter.inferred_pause() <= 1.0
    limiter.observe(Signal.RATE_LIMITED, sent=0.0, now=0.01, in_flight=1)
    assert 0.01 <= limiter.inferred_pause() <= 1.0


def test_config_rejects_an_initial_limit_over_the_ceiling() -> None:
    with pytest.raises(ValueError):
        PacingConfig(initial=100, ceiling=64)


def test_stats_report_latency_percentiles_and_429s() -> None:
    limiter = AdaptiveLimiter()
    for i in range(100):
        limiter.observe(Signal.OK, sent=i, now=i + (i + 1) / 1000, in_flight=1)
    limiter.observe(Signal.RATE_LIMITED, sent=200, now=200.5, in_flight=1)
    stats = limiter.stats()
    assert stats.latency_p50 == pytest.approx(0.051)
    assert stats.latency_p95 == pytest.approx(0.096)
    assert stats.rate_limited == 1 and stats.limit == limiter.limit


# -- simulated endpoints ---------------------------------------------------------------


def test_converges_under_a_hidden_rate_limit_without_retry_after() -> None:
    server = RateLimitedServer(rate=400, low=0.005, high=0.015, seed=7)
    result = simulate(server, AdaptiveLimiter(), duration=60.0, measure_from=10.0)
    assert result.ok_rate(50.0) >= 0.85 * 400
    assert result.rate_limited <= 0.03 * result.sent


def test_converges_on_a_queueing_server_without_building_a_long_queue() -> None:
    server = QueueingServer(capacity=24, service=0.020)
    result = simulate(server, AdaptiveLimiter(), duration=30.0, measure_from=5.0)
    assert result.ok_rate(25.0) >= 0.80 * 1200
    settled = server.server_latencies[len(server.server_latencies) // 5 :]
    assert statistics.median(settled) <= 3 * 0.020


def test_reaches_the_ceiling_on_a_distant_endpoint_with_no_limit() -> None:
    server = LatencyServer(lambda _now: 0.100)
    result = simulate(server, AdaptiveLimiter(), duration=30.0, measure_from=5.0)
    assert result.ok_rate(25.0) >= 400
    assert result.max_in_flight == 64


def test_follows_a_latency_step_without_collapsing() -> None:
    server = LatencyServer(lambda now: 0.010 if now < 5 else 0.050)
    limiter = AdaptiveLimiter()
    result = simulate(server, limiter, duration=30.0)
    late = [limit for at, limit in result.limits if at > 25]
    # A route that got slower is not congestion: the limit settles, well above the floor.
    assert min(late) >= 16


@given(
    ceiling=st.integers(1, 200),
    events=st.lists(
        st.tuples(
            st.sampled_from(list(Signal)),
            st.floats(0, 5, allow_nan=False),
            st.integers(0, 300),
        ),
        max_size=300,
    ),
)
def test_limit_stays_within_floor_and_ceiling_and_rate_stays_positive(
    ceiling: int, events: list[tuple[Signal, float, int]]
) -> None:
    limiter = AdaptiveLimiter(PacingConfig(initial=1, ceiling=ceiling))
    now = 0.0
    for signal, latency, in_flight in events:
        now += 0.001
        limiter.observe(signal, sent=now, now=now + latency, in_flight=in_flight)
        now += latency
        assert 1 <= limiter.limit <= ceiling
        assert limiter.rate is None or limiter.rate > 0
        assert 0.01 <= limiter.inferred_pause() <= 1.0


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000))
def test_the_same_answers_give_the_same_limits(seed: int) -> None:
    def run() -> list[tuple[float, int]]:
        server = RateLimitedServer(rate=200, low=0.005, high=0.02, seed=seed)
        return simulate(server, AdaptiveLimiter(), duration=3.0).limits

    assert run() == run()


# -- under a rate limit: hold what the endpoint accepts --------------------------------


def test_a_later_429_holds_the_rate_the_endpoint_accepted_since_the_last_cut() -> None:
    limiter = AdaptiveLimiter()
    # A burst (a token bucket's stored tokens) makes the first estimate far too high.
    for i in range(1000):
        limiter.observe(Signal.OK, sent=i / 1000, now=i / 1000 + 0.005, in_flight=8)
    limiter.observe(Signal.RATE_LIMITED, sent=1.0, now=1.005, in_flight=8)
    assert limiter.rate == pytest.approx(900, rel=0.02)
    # Then only 400/s get through: the next 429 holds 400/s, not 900 × 0.9 = 810/s.
    for i in range(200):
        at = 1.005 + (i + 1) / 400
        limiter.observe(Signal.OK, sent=at - 0.005, now=at, in_flight=8)
    limiter.observe(Signal.RATE_LIMITED, sent=1.5, now=1.505, in_flight=8)
    assert limiter.rate == pytest.approx(400, rel=0.02)


def test_429s_just_after_a_rate_cut_are_the_same_event() -> None:
    limiter = AdaptiveLimiter()
    for i in range(300):
        limiter.observe(Signal.OK, sent=i / 300, now=i / 300 + 0.005, in_flight=4)
    limiter.observe(Signal.RATE_LIMITED, sent=1.0, now=1.005, in_flight=4)
    first = limiter.rate
    # Sent after the cut, but before the new rate could show its effect.
    limiter.observe(Signal.RATE_LIMITED, sent=1.01, now=1.02, in_flight=4)
    assert limiter.rate == first and limiter.rate_limited == 2


def test_a_latency_rise_under_a_rate_limit_keeps_enough_in_flight_for_the_rate() -> None:
    limiter = AdaptiveLimiter(PacingConfig(initial=40, ceiling=64))
    now = 0.0
    for _ in range(800):  # 400 answers/s, 10 ms each
        now += 0.0025
        limiter.observe(Signal.OK, sent=now - 0.010, now=now, in_flight=limiter.limit)
    limiter.observe(Signal.RATE_LIMITED, sent=now, now=now + 0.01, in_flight=40)
    assert limiter.rate == pytest.approx(360, rel=0.02)
    # A busy client: every answer is noticed 30 ms late, for five seconds.
    for _ in range(2000):
        now += 0.0025
        limiter.observe(Signal.OK, sent=now - 0.040, now=now, in_flight=limiter.limit)
    # About 360/s × tolerated latency (2 × 10 ms) × 1.5 = 11, not the floor of 1.
    assert limiter.limit >= 10


def busy_client(seed: int) -> Callable[[float], float]:
    """Answers noticed a few ms late, and three seconds in ten much later (a loaded box)."""
    rng = random.Random(seed)
    return lambda t: rng.expovariate(1 / (0.012 if t % 10 > 6 else 0.004))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_busy_client_under_a_hidden_rate_limit_keeps_the_pace_from_the_start(
    seed: int,
) -> None:
    server = RateLimitedServer(rate=400, low=0.005, high=0.015, seed=seed)
    result = simulate(server, AdaptiveLimiter(), duration=50.0, lag=busy_client(seed))
    # The whole run, start-up included: what the benchmark's users/s measures.
    assert result.ok_rate(50.0) >= 0.85 * 400
    assert result.rate_limited <= 0.03 * result.sent


def test_a_busy_client_on_a_queueing_server_still_keeps_the_queue_short() -> None:
    server = QueueingServer(capacity=24, service=0.020)
    result = simulate(server, AdaptiveLimiter(), duration=30.0, lag=busy_client(5))
    assert result.ok_rate(30.0) >= 0.80 * 1200
    assert statistics.median(server.server_latencies) <= 3 * 0.020
