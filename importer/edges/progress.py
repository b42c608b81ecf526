"""Progress for people (a tqdm bar on a terminal) and for cron (a log line every N s)."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Snapshot:
    """Counts at one moment of a run."""

    done: int
    sent: int
    failed: int
    skipped: int
    retrying: int
    fraction: float | None  # share of the input read, when known
    pacing: Pacing | None = None  # --concurrency auto: what the limiter found
    retries: int = 0  # retries so far


@dataclass(frozen=True)
class Pacing:
    """The adaptive limiter's state, as progress shows it."""

    limit: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    rate_limited: int

    def describe(self) -> str:
        latency = ""
        if self.latency_p50_ms is not None and self.latency_p95_ms is not None:
            latency = f", latency p50 {self.latency_p50_ms:.0f} ms p95 {self.latency_p95_ms:.0f} ms"
        return f"in flight up to {self.limit}{latency}, 429s {self.rate_limited}"


class Progress(Protocol):
    """Where a run reports how far it is."""

    def update(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """--no-progress."""

    def update(self, snapshot: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Sample:
    """A snapshot in a time series (the report's throughput and retries charts)."""

    seconds: float  # since the run started
    done: int
    sent: int
    failed: int
    retries: int
    # With --concurrency auto (the report's pacing chart): the limiter's state then.
    limit: int | None = None
    latency_p50_ms: float | None = None
    rate_limited: int | None = None  # 429s so far


class Timeline:
    """Passes every snapshot on to ``inner`` and keeps a time series of them, thinned to
    at most ``limit`` samples however long the run; ``listener`` sees each sample too."""

    def __init__(
        self,
        inner: Progress,
        *,
        clock: Callable[[], float] = time.monotonic,
        limit: int = 720,
        listener: Callable[[Snapshot, Sample], None] | None = None,
    ) -> None:
        self.inner = inner
        self._clock = clock
        self._started = clock()
        self.samples: list[Sample] = [Sample(0.0, 0, 0, 0, 0)]
        self._limit = max(limit, 4)
        self._every = 0.0  # seconds between kept samples; doubles as the run goes on
        self._listener = listener

    def update(self, snapshot: Snapshot) -> None:
        self.inner.update(snapshot)
        s, pacing = snapshot, snapshot.pacing
        seconds = self._clock() - self._started
        if pacing is None:
            sample = Sample(seconds, s.done, s.sent, s.failed, s.retries)
        else:
            sample = Sample(
                seconds, s.done, s.sent, s.failed, s.retries,
                pacing.limit, pacing.latency_p50_ms, pacing.rate_limited,
            )  # fmt: skip
        if self._listener is not None:
            self._listener(snapshot, sample)
        if self.samples and sample.seconds - self.samples[-1].seconds < self._every:
            self.samples[-1] = sample  # the newest counts, at the thinned pace
            return
        self.samples.append(sample)
        if len(self.samples) > self._limit:
            self.samples = self.samples[::2] + ([sample] if len(self.samples) % 2 == 0 else [])
            self._every = max(self._every * 2, sample.seconds / self._limit)

    def close(self) -> None:
        self.inner.close()


class BarProgress:
    """A tqdm bar on stderr: rows done of (estimated) total, rate, ETA, outcomes."""

    def __init__(self, total_rows: int | None) -> None:
        from tqdm import tqdm

        self._known_total = total_rows
        # A terminal that reports a size of 0x0 (some ptys and CI consoles) would get no
        # bar at all: tqdm hides bars below the screen's last row.
        size = shutil.get_terminal_size((100, 24))
        self._bar: Any = tqdm(
            total=total_rows,
            unit=" rows",
            file=sys.stderr,
            ncols=size.columns or 100,
            nrows=size.lines or 24,
            smoothing=0.1,
        )

    def update(self, snapshot: Snapshot) -> None:
        bar = self._bar
        if self._known_total is None and snapshot.fraction and snapshot.done:
            # CSV size is known in bytes, not rows: estimate rows from bytes read.
            bar.total = max(snapshot.done, int(snapshot.done / snapshot.fraction))
        postfix: dict[str, Any] = dict(
            sent=snapshot.sent, failed=snapshot.failed, skipped=snapshot.skipped,
            retrying=snapshot.retrying,
        )  # fmt: skip
        pacing = snapshot.pacing
        if pacing is not None:
            # Most telling first: a narrow terminal cuts the end of the line.
            postfix["limit"] = pacing.limit
            postfix["429s"] = pacing.rate_limited
            if pacing.latency_p50_ms is not None and pacing.latency_p95_ms is not None:
                p50, p95 = pacing.latency_p50_ms, pacing.latency_p95_ms
                postfix["p50/p95"] = f"{p50:.0f}/{p95:.0f}ms"
        bar.set_postfix(postfix, refresh=False)
        bar.update(snapshot.done - bar.n)

    def close(self) -> None:
        self._bar.close()


class LogProgress:
    """A plain log line every ``interval`` seconds (stderr is not a terminal)."""

    def __init__(self, log: logging.Logger, interval: float = 10.0) -> None:
        self._log = log
        self._interval = interval
        self._started = time.monotonic()
        self._last = self._started

    def update(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        rate = snapshot.done / max(now - self._started, 1e-9)
        share = f" ({snapshot.fraction:.0%} of input)" if snapshot.fraction else ""
        pacing = f", {snapshot.pacing.describe()}" if snapshot.pacing is not None else ""
        self._log.info(
            "progress: %d rows done%s, %.0f rows/s, sent %d, failed %d, skipped %d, retrying %d%s",
            snapshot.done, share, rate, snapshot.sent, snapshot.failed, snapshot.skipped,
            snapshot.retrying, pacing,
        )  # fmt: skip

    def close(self) -> None:
        pass


def choose_progress(
    enabled: bool, total_rows: int | None, log: logging.Logger, interval: float = 10.0
) -> Progress:
    """A bar on a terminal, log lines elsewhere, nothing with --no-progress."""
    if not enabled:
        return NoProgress()
    if sys.stderr.isatty():
        return BarProgress(total_rows)
    return LogProgress(log, interval)


# Phases other than sending (the duplicate check, validate, plan) log here, so that a
# command that otherwise shows only warnings can still let these lines through.
PHASE_LOG = logging.getLogger("metrix_importer.progress")


class PhaseProgress:
    """How far a long phase that sends nothing has come: a bar on a terminal (shown
    only once the phase has taken a second), a log line every ``interval`` seconds
    elsewhere. ``update(rows, fraction)``: rows so far, share of the input read."""

    def __init__(
        self,
        what: str,
        *,
        enabled: bool = True,
        interval: float = 10.0,
        terminal: bool | None = None,
        log: logging.Logger = PHASE_LOG,
        clock: Any = time.monotonic,
    ) -> None:
        self.what = what
        self._enabled = enabled
        self._interval = interval
        self._log = log
        self._clock = clock
        self._started = self._last = clock()
        self._bar: Any = None
        if enabled and (sys.stderr.isatty() if terminal is None else terminal):
            from tqdm import tqdm

            size = shutil.get_terminal_size((100, 24))
            self._bar = tqdm(desc=what, unit=" rows", file=sys.stderr, delay=1.0,
                             ncols=size.columns or 100, leave=False)  # fmt: skip

    def update(self, rows: int, fraction: float | None = None) -> None:
        if not self._enabled:
            return
        bar = self._bar
        if bar is not None:
            if fraction:
                bar.total = max(rows, int(rows / fraction))
            bar.update(rows - bar.n)
            return
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        self._log.info("%s", self.line(rows, fraction, now - self._started))

    def line(self, rows: int, fraction: float | None, elapsed: float) -> str:
        """'checking duplicates: 1,200,000 rows (40% of the input), 95,000 rows/s,
        about 2 min left'."""
        rate = rows / max(elapsed, 1e-9)
        text = f"{self.what}: {rows:,} rows"
        if fraction:
            text += f" ({fraction:.0%} of the input)"
        text += f", {rate:,.0f} rows/s"
        if fraction and 0 < fraction < 1:
            text += f", about {_left(elapsed * (1 - fraction) / fraction)} left"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _left(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
