"""What an HTTP outcome means, and how long to wait before trying again. Pure.

Metrix documents 200 (received), 400 (bad message) and 403 (bad credentials or IP not
allowed); everything else is handled defensively: 408, 429, 5xx and network failures
are retried with capped exponential backoff and full jitter, honouring Retry-After.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from enum import Enum


class Verdict(Enum):
    """What to do after one attempt."""

    SENT = "sent"  # delivered (Metrix received it)
    REJECTED = "rejected"  # this row is bad: report it, do not retry
    RETRY = "retry"  # transient: try again later
    FATAL = "fatal"  # credentials: stop the whole run


RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))


def classify(status: int) -> Verdict:
    """The verdict for an HTTP status."""
    if 200 <= status < 300:
        return Verdict.SENT
    if status in (401, 403):
        return Verdict.FATAL
    if status in RETRYABLE_STATUSES:
        return Verdict.RETRY
    return Verdict.REJECTED


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 60.0,
    retry_after: float | None = None,
    retry_after_cap: float = 300.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt ``attempt + 1`` (attempt counts from 1).

    Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))], so many workers
    that failed together do not retry together. A server's Retry-After wins when it
    asks for longer, up to ``retry_after_cap``.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return delay


def shorten(text: str, limit: int = 200) -> str:
    """A server's reason, on one line and short enough for a spreadsheet cell."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


MIN_MASKED_LENGTH = 4


def mask(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``****``.

    Secrets shorter than four characters are not real API keys and would turn every
    log line into noise, so they are left alone.
    """
    if secret and len(secret) >= MIN_MASKED_LENGTH:
        text = text.replace(secret, "****")
    return text
