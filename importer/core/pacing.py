"""Adaptive pacing: how many requests may be in flight, and how fast, with no tuning flags.

A pure, deterministic state machine, fed one observation per answered request (what the
answer meant, when the request was sent, when the answer came, how many were in flight)
and asked how many requests may be in flight (``limit``) and at what rate (``rate``,
``None`` while no rate limit has been met). It never reads a clock: callers pass ``now``,
so tests drive it with simulated servers and a fake clock.

Two controls, because an endpoint has two kinds of limit:

- **Capacity** (a server that queues what it cannot process at once): a concurrency
  limit that works like TCP's congestion window. It starts at ``initial``, doubles per
  round trip while latency stays near its baseline (slow start), then grows by one per
  round trip (congestion avoidance), and shrinks in proportion when the smoothed latency
  rises past ``tolerance`` × the baseline (the gradient idea of Netflix's
  concurrency-limits), or by ``backoff`` on 503s and timeouts. The baseline is the
  lowest smoothed latency seen; when latency has stayed above it for ``probe_interval``
  seconds, the limit is halved for a few round trips and the latency measured then
  becomes the baseline — a queue of our own drains, a slower route does not (BBR's
  ProbeRTT, in spirit), so a route that got slower is not mistaken for congestion.
- **A rate limit** (429, with or without Retry-After): concurrency is too coarse a knob
  when a few requests in flight already reach the limit, so the first 429 switches on a
  paced rate just under the rate that was being accepted, which then grows by
  ``rate_probe`` per second and is cut by ``rate_backoff`` at the next 429 — TCP's
  additive-increase, multiplicative-decrease applied to requests per second. A later
  429 holds the rate actually accepted since the last cut when that is lower (a first
  estimate taken while a token bucket spent its burst is far too high), and while a rate
  is paced, a latency rise never cuts the limit below what that rate needs in flight.

Like TCP, one congestion event cuts once: answers to requests sent before the last cut
say nothing about the new setting and are not counted again.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum


class Signal(Enum):
    """What an answer says about the endpoint's load."""

    OK = "ok"  # delivered (or refused for the row's own fault: the server coped)
    RATE_LIMITED = "rate_limited"  # 429
    OVERLOADED = "overloaded"  # 503, or a request that timed out
    ERROR = "error"  # another transient failure (500, a dropped connection): no load signal


@dataclass(frozen=True)
class PacingConfig:
    """Tunables with defaults that suit an unknown HTTP API; the CLI exposes only ``ceiling``."""

    initial: int = 8
    ceiling: int = 64
    floor: int = 1
    # Latency may rise to this multiple of its baseline before the limit falls.
    tolerance: float = 2.0
    latency_slack: float = 0.020  # seconds of latency rise never taken for congestion
    backoff: float = 0.7
    rate_backoff: float = 0.9
    rate_probe: float = 0.02  # per second, multiplicative, just after a 429
    rate_probe_speedup: float = 5.0  # seconds without a 429 that double the probing pace
    # Weight of one sample in the short-term latency average.
    smoothing: float = 0.1
    # Seconds of latency above its baseline before the baseline is measured again.
    probe_interval: float = 10.0
    window: float = 1.0  # seconds of answers behind the accepted rate
    rate_settle: float = 0.1  # seconds after a rate cut before a 429 cuts again
    # Under a rate limit, the limit stays at or above rate × tolerated latency × this.
    headroom: float = 1.5
    latency_samples: int = 1024  # kept for the p50/p95 shown to the user

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.initial <= self.ceiling:
            raise ValueError("need 1 <= floor <= initial <= ceiling")


@dataclass(frozen=True)
class PacingStats:
    """What the progress line, the log and the summary show."""

    limit: int
    rate: float | None
    latency_p50: float | None
    latency_p95: float | None
    rate_limited: int
    overloaded: int


class AdaptiveLimiter:
    """Finds the endpoint's capacity and stays just under it (see the module docstring)."""

    def __init__(self, config: PacingConfig | None = None, *, now: float = 0.0) -> None:
        self.config = config or PacingConfig()
        self._limit = float(self.config.initial)
        self._slow_start = True
        self._rate: float | None = None
        self._rate_updated = now
        self._started = now
        self._last_cut = -math.inf  # send time before which answers are old news
        self._short: float | None = None  # smoothed latency
        self._baseline: float | None = None  # smoothed latency with no queue of ours
        self._baseline_seen = now  # when latency was last near its baseline
        self._probe_until: float | None = None
        self._probe_started = now
        self._probe_low = math.inf
        self._accepted: deque[float] = deque()  # answer times of recent OK answers
        self._accepted_since_cut = 0  # OK answers since the last rate cut
        self._rate_cut = now
        self._latencies: deque[float] = deque(maxlen=self.config.latency_samples)
        self.rate_limited = 0
        self.overloaded = 0

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        if self._probe_until is not None:
            return max(self.config.floor, int(self._limit / 2))
        return int(self._limit)

    @property
    def rate(self) -> float | None:
        """Requests per second to pace at, or None while no rate limit has been met."""
        return self._rate

    def observe(self, signal: Signal, *, sent: float, now: float, in_flight: int) -> None:
        """Learn from one answer: ``sent`` and ``now`` on the caller's monotonic clock."""
        latency = max(0.0, now - sent)
        if signal is Signal.OK:
            self._latencies.append(latency)
            self._track_latency(latency, now, sent)
            self._accepted.append(now)
            self._accepted_since_cut += 1
            self._on_ok(sent, now, in_flight)
        elif signal is Signal.RATE_LIMITED:
            self.rate_limited += 1
            self._on_rate_limited(sent, now)
        elif signal is Signal.OVERLOADED:
            self.overloaded += 1
            if sent >= self._last_cut:
                self._cut(now, self.config.backoff)
        self._forget_old_answers(now)

    def inferred_pause(self) -> float:
        """How long every sender waits after a 429 that named no Retry-After."""
        if self._rate:
            # Long enough for a token bucket to refill a few requests' worth.
            return min(1.0, max(0.01, 4.0 / self._rate))
        return min(1.0, max(0.01, 2 * (self._short or 0.05)))

    def stats(self) -> PacingStats:
        ordered = sorted(self._latencies)
        return PacingStats(
            limit=self.limit,
            rate=self._rate,
            latency_p50=_quantile(ordered, 0.5),
            latency_p95=_quantile(ordered, 0.95),
            rate_limited=self.rate_limited,
            overloaded=self.overloaded,
        )

    # -- internals -------------------------------------------------------------------

    def _track_latency(self, latency: float, now: float, sent: float) -> None:
        weight = self.config.smoothing
        short = latency if self._short is None else self._short + weight * (latency - self._short)
        self._short = short
        if self._baseline is None or short < self._baseline:
            self._baseline = short
        if short <= 1.1 * self._baseline:
            self._baseline_seen = now
        if self._probe_until is not None:
            if sent >= self._probe_started + short:  # sent after the drain
                self._probe_low = min(self._probe_low, short)
            if now >= self._probe_until:
                self._end_probe()
        elif now - self._baseline_seen >= self.config.probe_interval:
            self._start_probe(now, short)

    def _start_probe(self, now: float, short: float) -> None:
        # Latency has stayed above its baseline for a while: either we keep a queue at
        # the endpoint or the route got slower. Halve the limit for a few round trips
        # and take the latency then as the new baseline (BBR's ProbeRTT, in spirit).
        self._probe_started = now
        self._probe_until = now + max(0.2, 4 * short)
        self._probe_low = math.inf

    def _end_probe(self) -> None:
        self._probe_until = None
        if math.isfinite(self._probe_low):
            raised = self._baseline is not None and self._probe_low > self._baseline
            self._baseline = self._probe_low
            if raised:
                # The earlier latency cuts were the route, not load: grow quickly again.
                self._slow_start = True
        self._baseline_seen = self._probe_started

    def _on_ok(self, sent: float, now: float, in_flight: int) -> None:
        config = self.config
        assert self._short is not None and self._baseline is not None
        # A rise of a few milliseconds is our own event loop at work, or a busy machine
        # scheduling the endpoint's process late, not a queue at the endpoint: with a
        # sub-millisecond baseline, 2x would read it as congestion (measured: a shared
        # 2-core machine adds 10-15 ms to a local endpoint).
        allowed = max(config.tolerance * self._baseline, self._baseline + config.latency_slack)
        if self._short > allowed:
            if sent >= self._last_cut:
                gradient = max(0.8, allowed / self._short)
                self._cut(now, gradient, self._rate_needs(allowed))
        elif in_flight >= self._limit - 1:
            # Grow only while the limit is actually in use (TCP's window validation):
            # an idle limit says nothing about the endpoint.
            self._limit += 1.0 if self._slow_start else 1.0 / self._limit
            self._limit = min(self._limit, float(config.ceiling))
        if self._rate is not None:
            # Probe gently just after a 429, faster the longer the endpoint has said yes
            # (a limit may have been raised, or the first estimate was low).
            elapsed = max(0.0, now - self._rate_updated)
            speedup = max(1.0, (now - self._last_cut) / config.rate_probe_speedup)
            self._rate = min(1e6, self._rate * (1.0 + config.rate_probe * speedup * elapsed))
            self._rate_updated = now

    def _on_rate_limited(self, sent: float, now: float) -> None:
        if sent < self._last_cut:
            return
        # Answers per second over the last window (or since the first answer, early on).
        span = min(self.config.window, now - self._started)
        accepted = len(self._accepted) / span if self._accepted and span > 0 else None
        if self._rate is None:
            # Just under what the endpoint was accepting when it said no.
            start = accepted if accepted else max(1.0, self._limit / max(self._short or 0.1, 1e-3))
            self._rate = max(0.5, start * self.config.rate_backoff)
        else:
            since = now - self._rate_cut
            if since < max(self.config.rate_settle, 10.0 / self._rate):
                # Too soon to tell what the last cut did (a few requests' worth at the
                # new rate): the same congestion event.
                return
            # Hold what the endpoint accepted since the last cut, when that is less than
            # the usual cut: a first estimate taken during a burst (a token bucket's
            # stored tokens) is too high, and cutting it step by step costs 429s.
            held = self._accepted_since_cut / since
            self._rate = max(0.5, min(self._rate * self.config.rate_backoff, held))
        self._rate_updated = now
        self._slow_start = False
        self._last_cut = self._rate_cut = now
        self._accepted_since_cut = 0

    def _rate_needs(self, allowed: float) -> float:
        """The fewest requests in flight that keep the paced rate going (Little's law).

        Under a rate limit the rate is the binding control, and a latency rise is more
        often a busy client than a queue at the endpoint: cutting the limit below what
        the rate needs at the tolerated latency would slow the run with nothing gained.
        A real queue still cuts: past ``headroom`` × the tolerated latency, this many
        in flight carry less than the rate."""
        if self._rate is None:
            return float(self.config.floor)
        return min(self._limit, self._rate * allowed * self.config.headroom)

    def _cut(self, now: float, factor: float, least: float = 1.0) -> None:
        least = max(least, float(self.config.floor))
        self._limit = max(least, self._limit * factor)
        self._slow_start = False
        self._last_cut = now

    def _forget_old_answers(self, now: float) -> None:
        horizon = now - self.config.window
        accepted = self._accepted
        while accepted and accepted[0] < horizon:
            accepted.popleft()


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
