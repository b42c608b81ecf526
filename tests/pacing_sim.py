"""A discrete-event simulation of a sender paced by AdaptiveLimiter, on a fake clock.

The simulated servers model the sandbox's faults: a token-bucket rate limit that answers
429 without Retry-After, a server that processes ``capacity`` requests at once and queues
the rest, and a plain latency that may step up mid-run. A ``lag`` models a busy client (a
loaded machine): each answer is noticed some time after it arrived, so the latency the
limiter sees rises with no change at the endpoint. No wall clock is read anywhere.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from importer.core.pacing import AdaptiveLimiter, Signal


class Server:
    def request(self, now: float) -> tuple[int, float]:
        """Answer a request sent at ``now``: (HTTP status, time the answer arrives)."""
        raise NotImplementedError


class RateLimitedServer(Server):
    """Latency drawn from [low, high]; a token bucket of ``rate``/s (one second of burst)."""

    def __init__(self, rate: float, low: float, high: float, seed: int = 1) -> None:
        self.rate, self.low, self.high = rate, low, high
        self.tokens, self.updated = rate, 0.0
        self.rng = random.Random(seed)

    def request(self, now: float) -> tuple[int, float]:
        done = now + self.rng.uniform(self.low, self.high)
        # The sandbox checks the bucket after its latency, so the simulation does too.
        self.tokens = min(self.rate, self.tokens + max(0.0, done - self.updated) * self.rate)
        self.updated = max(self.updated, done)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 200, done
        return 429, done


class QueueingServer(Server):
    """``capacity`` requests processed at once, ``service`` seconds each, the rest queue."""

    def __init__(self, capacity: int, service: float) -> None:
        self.free_at = [0.0] * capacity
        self.service = service
        self.server_latencies: list[float] = []

    def request(self, now: float) -> tuple[int, float]:
        start = max(now, heapq.heappop(self.free_at))
        done = start + self.service
        heapq.heappush(self.free_at, done)
        self.server_latencies.append(done - now)
        return 200, done


class LatencyServer(Server):
    """No limit; latency given by a function of the send time (a step, say)."""

    def __init__(self, latency: Callable[[float], float]) -> None:
        self.latency = latency

    def request(self, now: float) -> tuple[int, float]:
        return 200, now + self.latency(now)


@dataclass
class Result:
    sent: int = 0
    ok: int = 0
    rate_limited: int = 0
    max_in_flight: int = 0
    limits: list[tuple[float, int]] = field(default_factory=list)

    def ok_rate(self, duration: float) -> float:
        return self.ok / duration


class Simulation:
    """One sender and one server on a shared fake clock, driven by a heap of events."""

    def __init__(
        self,
        server: Server,
        limiter: AdaptiveLimiter,
        measure_from: float,
        lag: Callable[[float], float] | None = None,
    ) -> None:
        self.server, self.limiter, self.measure_from = server, limiter, measure_from
        self.lag = lag
        self.result = Result()
        self.events: list[tuple[float, int, str, float, int]] = []  # time, seq, kind, sent, status
        self.seq = 0
        self.now = 0.0
        self.in_flight = 0
        self.next_slot = 0.0
        self.pause_until = 0.0
        self.wake_at: float | None = None

    def push(self, at: float, kind: str, sent: float = 0.0, status: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, sent, status))

    def try_send(self) -> None:
        while self.in_flight < self.limiter.limit:
            rate = self.limiter.rate
            ready = self.pause_until if rate is None else max(self.pause_until, self.next_slot)
            if ready > self.now:
                if self.wake_at is None or ready < self.wake_at:
                    self.wake_at = ready
                    self.push(ready, "wake")
                return
            status, done = self.server.request(self.now)
            if self.lag is not None:
                done += self.lag(done)
            self.push(done, "answer", self.now, status)
            self.in_flight += 1
            self.result.max_in_flight = max(self.result.max_in_flight, self.in_flight)
            if self.now >= self.measure_from:
                self.result.sent += 1
            if rate is not None:
                self.next_slot = max(self.next_slot, self.now) + 1.0 / rate

    def answer(self, sent: float, status: int) -> None:
        self.in_flight -= 1
        signal = Signal.OK if status == 200 else Signal.RATE_LIMITED
        self.limiter.observe(signal, sent=sent, now=self.now, in_flight=self.in_flight + 1)
        if sent >= self.measure_from:
            if status == 200:
                self.result.ok += 1
            else:
                self.result.rate_limited += 1
        if status == 429:
            self.pause_until = max(self.pause_until, self.now + self.limiter.inferred_pause())
        self.result.limits.append((self.now, self.limiter.limit))

    def run(self, duration: float) -> Result:
        self.try_send()
        while self.events:
            self.now, _, kind, sent, status = heapq.heappop(self.events)
            if self.now > duration:
                break
            if kind == "answer":
                self.answer(sent, status)
            elif self.wake_at is not None and self.now >= self.wake_at:
                self.wake_at = None
            self.try_send()
        return self.result


def simulate(
    server: Server,
    limiter: AdaptiveLimiter,
    duration: float,
    *,
    measure_from: float = 0.0,
    lag: Callable[[float], float] | None = None,
) -> Result:
    """Send as fast as the limiter allows for ``duration`` simulated seconds.

    Counts only answers to requests sent from ``measure_from`` on, so a test can judge
    the converged behaviour after a warm-up. ``lag(t)``: how late an answer that arrived
    at ``t`` is noticed (a busy client).
    """
    return Simulation(server, limiter, measure_from, lag).run(duration)
