"""Hostile endpoints, through the real CLI: each ends with a clear message and a
documented exit code, in bounded time (the child is killed and the test fails past
``LIMIT_S``) and bounded memory (the child's own peak, from the kernel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import Measured, cli_measured
from tests.e2e import failure_rows
from tests.hostile import servers

pytestmark = pytest.mark.e2e

LIMIT_S = 60  # generous: a run that cannot hang ends in a few seconds
MEMORY_MB = 150  # the importer's own footprint is ~60 MB; the floods are 512 MB
ROWS = 3
KEY = "hostile-test-key-0123456789"


def run(tmp_path: Path, url: str, *extra: str) -> Measured:
    data = tmp_path / "users.csv"
    data.write_text("id,email\n" + "".join(f"u{n},u{n}@example.com\n" for n in range(ROWS)))
    mapping = tmp_path / "users.yaml"
    mapping.write_text("user_id: id\nfields:\n  email: email\n")
    return cli_measured(
        "run", data, "-m", mapping, "--endpoint", url, "--no-progress",
        "--failures", tmp_path / "failures.csv", "--summary-json", tmp_path / "summary.json",
        *extra, cwd=tmp_path, env={"METRIX_APP_ID": "app", "METRIX_API_KEY": KEY},
        timeout=LIMIT_S,
    )  # fmt: skip


def summary(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    return data


def assert_every_row_not_sent(tmp_path: Path, reason: str) -> None:
    rows = failure_rows(tmp_path / "failures.csv")
    assert sorted(row["id"] for row in rows) == [f"u{n}" for n in range(ROWS)]
    for row in rows:
        assert row["_stage"] == "not_sent", row
        assert reason in row["_error"], row


def assert_clean(result: Measured) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert KEY not in result.stderr + result.stdout
    assert result.peak_rss_mb < MEMORY_MB, result.peak_rss_mb


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_dripping_answer_is_cut_off_by_the_deadline_and_retried(
    tmp_path: Path, part: str
) -> None:
    # One byte every 0.1 s: an idle-read timeout never fires; ~60 s for the whole answer.
    with servers.serve(servers.dripping(part, interval=0.1)) as server:
        result = run(tmp_path, server.url, "--timeout", "1", "--max-retries", "1")
    assert_clean(result)
    assert result.returncode == 1, result.stderr
    assert_every_row_not_sent(tmp_path, "not delivered after 2 attempts (last: timeout)")
    assert summary(tmp_path)["status_counts"] == {"timeout": 2 * ROWS}
    assert len(server.requests) == 2 * ROWS


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_answer_is_refused_without_reading_it(tmp_path: Path, declared: bool) -> None:
    with servers.serve(servers.flooding(declared)) as server:
        result = run(tmp_path, server.url, "--max-retries", "1")
    assert_clean(result)
    assert result.returncode == 1, result.stderr
    assert_every_row_not_sent(tmp_path, "answer too large (over 64 KiB")
    assert summary(tmp_path)["status_counts"] == {"answer too large": 2 * ROWS}
    # Each of the six answers stopped long before its 512 MB: nothing was drained.
    assert server.bytes_written < 2 * ROWS * 16 * 1024 * 1024


def test_an_endless_header_block_is_refused(tmp_path: Path) -> None:
    with servers.serve(servers.endless_headers()) as server:
        result = run(tmp_path, server.url, "--max-retries", "1")
    assert_clean(result)
    assert result.returncode == 1, result.stderr
    assert_every_row_not_sent(tmp_path, "malformed answer")
    assert server.bytes_written < 2 * ROWS * 16 * 1024 * 1024


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_stops_the_run_and_nothing_follows_it(tmp_path: Path, status: int) -> None:
    with servers.serve(servers.accepting()) as target:
        elsewhere = target.url.replace("127.0.0.1", "localhost") + "collect?from=redirect"
        with servers.serve(servers.redirecting(status, elsewhere)) as endpoint:
            result = run(tmp_path, endpoint.url, "--concurrency", "1")
    assert_clean(result)
    assert result.returncode == 4, result.stderr
    assert f"redirected the request (HTTP {status}) to {elsewhere}" in result.stderr
    assert "--endpoint" in result.stderr
    assert target.requests == []  # neither the key nor a body ever reached it
    assert len(endpoint.requests) == 1  # the first redirect stopped the run
    assert endpoint.requests[0].headers["x-api-key"] == KEY
    assert_every_row_not_sent(tmp_path, "redirected")
    # An abort like any other: the summary is written and says why.
    assert "redirected the request" in summary(tmp_path)["aborted"]


def test_a_key_echoed_into_the_location_is_masked(tmp_path: Path) -> None:
    with servers.serve(servers.redirecting(307, f"https://elsewhere.example/?key={KEY}")) as server:
        result = run(tmp_path, server.url)
    assert_clean(result)  # the key appears nowhere in the output
    assert result.returncode == 4
    assert "to https://elsewhere.example/?key=****;" in result.stderr
    assert KEY not in (tmp_path / "failures.csv").read_text(encoding="utf-8-sig")
    assert KEY not in (tmp_path / "summary.json").read_text(encoding="utf-8")
