"""Sandbox faults for pacing: a server that queues past its capacity, 429 with no Retry-After."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sandbox_helpers import Reply, start_sandbox
from tests.test_sandbox import envelope, user_message

pytestmark = pytest.mark.e2e  # every test here runs the sandbox as a process


def test_rate_limit_can_answer_429_without_retry_after(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--rate-limit", "3", "--no-retry-after") as sb:
        replies = [sb.post(envelope(f"u{i}", user_message())) for i in range(10)]
        limited = [reply for reply in replies if reply.status == 429]
        assert limited, [reply.status for reply in replies]
        assert all("Retry-After" not in reply.headers for reply in limited)
        assert "no-retry-after" in sb.ready_line


def test_capacity_processes_at_most_n_posts_at_once_and_queues_the_rest(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--capacity", "2", "--latency-ms", "300") as sb:

        def post(i: int) -> Reply:
            return sb.post(envelope(f"u{i}", user_message()))

        with ThreadPoolExecutor(max_workers=6) as pool:
            replies = list(pool.map(post, range(6)))
        assert [reply.status for reply in replies] == [200] * 6
        stats = sb.stats()
        assert stats["processing_peak"] == 2
        assert stats["users"] == 6
        assert stats["latency_ms"]["p50"] is not None  # queueing is part of what it measures
        assert "capacity=2" in sb.ready_line


def test_stats_show_server_side_latency(tmp_path: Path) -> None:
    with start_sandbox(tmp_path) as sb:
        assert sb.stats()["latency_ms"] == {"p50": None, "p95": None}
        sb.post(envelope("u", user_message()))
        stats = sb.stats()
        assert stats["latency_ms"]["p50"] is not None and stats["latency_ms"]["p50"] >= 0
        assert stats["write_errors"] == 0 and stats["users"] == 1
