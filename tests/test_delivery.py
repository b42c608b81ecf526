"""HTTP outcome classification and backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core.delivery import (
    Verdict,
    backoff_delay,
    classify,
    mask,
    parse_retry_after,
    shorten,
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SENT), (202, Verdict.SENT),
        (400, Verdict.REJECTED), (404, Verdict.REJECTED), (413, Verdict.REJECTED),
        (401, Verdict.FATAL), (403, Verdict.FATAL),
        (408, Verdict.RETRY), (429, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY),
    ],
)  # fmt: skip
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0, max_value=1e6) | st.none())
def test_backoff_is_bounded_and_honours_retry_after(attempt: int, after: float | None) -> None:
    delay = backoff_delay(
        attempt, cap=60, retry_after=after, retry_after_cap=300, rng=random.Random(1)
    )
    assert 0 <= delay <= 300
    if after is None:
        assert delay <= min(60, 0.5 * 2 ** (attempt - 1))
    else:
        assert delay >= min(after, 300)


def test_shorten_and_mask() -> None:
    assert shorten("a\n  b " + "x" * 300, 10) == "a b xxxxx…"
    assert mask("key=s3cret, again s3cret", "s3cret") == "key=****, again ****"
    assert mask("nothing", "") == "nothing"
    assert mask("/work/k", "k") == "/work/k"
