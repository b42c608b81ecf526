"""`metrix-import run` end to end: the real CLI against the real sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, assert_no_traceback, cli
from tests.e2e import credentials, failure_rows, run_cli, stored_ids, summary
from tests.sandbox_helpers import MakeSandbox, Sandbox

pytestmark = pytest.mark.e2e  # every test here runs the CLI or the sandbox as a process

SAMPLE_ROWS, SAMPLE_VALID = 300, 290


def test_every_valid_row_arrives_once_and_invalid_rows_are_reported(
    sandbox: Sandbox, tmp_path: Path, sample_ids: set[str]
) -> None:
    result = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING)
    assert_no_traceback(result)
    assert result.returncode == 1  # finished, some rows failed
    ids = stored_ids(sandbox)
    assert sorted(ids) == sorted(sample_ids)
    data = summary(tmp_path)
    assert (data["rows_total"], data["rows_sent"], data["rows_failed"]) == (300, 290, 10)
    assert data["requests"] == 290 and data["aborted"] is None
    assert data["status_counts"] == {"200": 290}
    failures = failure_rows(tmp_path / "failures.csv")
    assert len(failures) == 10 and {f["_stage"] for f in failures} == {"validate"}
    profile = sandbox.user("C0000002")
    assert profile is not None
    assert profile["profile"]["phoneNumber"] == "09055356659"
    assert "sent" in result.stdout and "Requests 290" in result.stdout


def test_all_valid_file_exits_0(sandbox: Sandbox, tmp_path: Path) -> None:
    data = tmp_path / "ok.csv"
    data.write_text("id,email\n1,a@b.co\n2,c@d.org\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    result = run_cli(sandbox, tmp_path, data, "-m", mapping)
    assert result.returncode == 0, result.stderr
    assert len(stored_ids(sandbox)) == 2
    assert not (tmp_path / "failures.csv").exists()


def test_faults_latency_5xx_rate_limit_and_drops_lose_and_double_nothing(
    make_sandbox: MakeSandbox, tmp_path: Path, sample_ids: set[str]
) -> None:
    sb = make_sandbox(
        "--latency-ms", "1-15", "--fail-rate", "0.05", "--rate-limit", "400",
        "--drop-rate", "0.01", "--seed", "11",
    )  # fmt: skip
    result = run_cli(
        sb,
        tmp_path,
        SAMPLE_CSV,
        "-m",
        SAMPLE_MAPPING,
        "--concurrency",
        "32",
        "--max-retries",
        "10",
    )
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    ids = stored_ids(sb)
    assert len(ids) == len(set(ids)) == SAMPLE_VALID
    assert set(ids) == sample_ids
    data = summary(tmp_path)
    assert data["rows_sent"] == SAMPLE_VALID and data["retries"] > 0
    counts = data["status_counts"]
    assert any(k in counts for k in ("500", "503")), counts
    assert "connection dropped" in counts or "connection error" in counts, counts
    assert [f["_stage"] for f in failure_rows(tmp_path / "failures.csv")] == ["validate"] * 10


def test_retry_after_is_honoured(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sb = make_sandbox("--rate-limit", "20")
    result = run_cli(sb, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--concurrency", "8")
    assert result.returncode == 1
    data = summary(tmp_path)
    assert data["rows_sent"] == SAMPLE_VALID
    assert data["status_counts"].get("429", 0) > 0


def test_retry_after_pauses_every_worker(tmp_path: Path) -> None:
    # The first request is told to come back in 10 s; every other answer is 200. A run
    # that honours Retry-After for all its workers sends nothing more once it has read
    # that answer (a few requests already on their way may still arrive); one that only
    # delays the refused row would send the other 289 rows at once.
    from tests.http_stub import stub_server

    told = threading.Event()

    def answer(body: dict[str, object]) -> tuple[int, str] | tuple[int, str, dict[str, str]]:
        if not told.is_set():
            told.set()
            return 429, '{"error": "slow down"}', {"Retry-After": "10"}
        return 200, "{}"

    with stub_server(answer) as (url, received):
        env = {**os.environ, "METRIX_APP_ID": "a", "METRIX_API_KEY": "k", "METRIX_ENDPOINT": url}
        process = subprocess.Popen(
            [sys.executable, "-m", "importer", "run", str(SAMPLE_CSV), "-m", str(SAMPLE_MAPPING),
             "--no-progress", "--concurrency", "4",
             "--failures", str(tmp_path / "failures.csv"),
             "--summary-json", str(tmp_path / "summary.json")],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert told.wait(60), "the run sent nothing"
        time.sleep(3)  # well inside the pause; without it every row would go in this time
        during_pause = len(received)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err  # the sample's invalid rows; every valid one sent
    assert during_pause <= 1 + 2 * 4, during_pause
    data = summary(tmp_path)
    assert data["rows_sent"] == SAMPLE_VALID and data["status_counts"]["429"] == 1


def test_revoked_key_stops_within_seconds_with_exit_4_and_every_unsent_row_reported(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
) -> None:
    sb = make_sandbox("--reject-key-after", "50", "--latency-ms", "2")
    result = run_cli(
        sb, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--concurrency", "4", timeout=60
    )
    assert_no_traceback(result)
    assert result.returncode == 4
    # Stopped at the first refusal: only the requests already in flight met a 403.
    assert 1 <= sb.stats()["responses_by_status"]["403"] <= 4
    assert "credentials" in result.stderr and "METRIX_API_KEY" in result.stderr
    assert "allow-list" in result.stderr
    data = summary(tmp_path)
    assert data["rows_total"] == SAMPLE_ROWS
    assert data["rows_sent"] == len(stored_ids(sb)) == 50
    failures = failure_rows(tmp_path / "failures.csv")
    not_sent = [f for f in failures if f["_stage"] == "not_sent"]
    assert len(failures) == SAMPLE_ROWS - 50
    assert len(not_sent) >= SAMPLE_VALID - 50 - 4
    assert data["aborted"]


def test_unreachable_endpoint_gives_up_with_exit_4(tmp_path: Path) -> None:
    env = {"METRIX_APP_ID": "a", "METRIX_API_KEY": "k", "METRIX_ENDPOINT": "http://127.0.0.1:9/"}
    result = cli(
        "run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--no-progress", "--give-up-after", "2",
        "--failures", tmp_path / "f.csv", "--summary-json", tmp_path / "summary.json",
        env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 4
    data = summary(tmp_path)
    assert data["rows_sent"] == 0 and data["rows_failed"] == SAMPLE_ROWS
    assert "endpoint" in data["aborted"]


def test_ctrl_c_stops_writes_reports_and_exits_130(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox("--latency-ms", "100")
    env = {**os.environ, **credentials(sb)}
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(SAMPLE_CSV), "-m", str(SAMPLE_MAPPING),
         "--no-progress", "--concurrency", "2", "--failures", str(tmp_path / "failures.csv"),
         "--summary-json", str(tmp_path / "summary.json")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert "Traceback" not in err
    assert process.returncode == 130, err
    data = summary(tmp_path)
    assert data["rows_total"] == SAMPLE_ROWS
    assert 0 < data["rows_sent"] < SAMPLE_VALID
    assert data["rows_sent"] == len(stored_ids(sb))
    not_sent = [f for f in failure_rows(tmp_path / "failures.csv") if f["_stage"] == "not_sent"]
    assert len(not_sent) >= SAMPLE_VALID - data["rows_sent"] - 10
    assert "interrupted" in data["aborted"]


def test_a_400_fails_only_its_row_with_the_servers_reason(tmp_path: Path) -> None:
    # The importer never builds a message the sandbox rejects, so a small real server
    # stands in for a Metrix that refuses one user with 400.
    from tests.http_stub import stub_server

    def answer(body: dict[str, object]) -> tuple[int, str]:
        if body["customUserId"] == "C0000003":
            return 400, '{"error": "customAttributes.is_vip: unsupported value"}'
        return 200, "{}"

    with stub_server(answer) as (url, received):
        env = {"METRIX_APP_ID": "a", "METRIX_API_KEY": "secret-key", "METRIX_ENDPOINT": url}
        result = cli(
            "run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--no-progress",
            "--failures", tmp_path / "failures.csv", "--summary-json", tmp_path / "summary.json",
            env=env, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1
    data = summary(tmp_path)
    assert data["rows_sent"] == SAMPLE_VALID - 1
    assert data["requests"] == SAMPLE_VALID  # a 400 is not retried
    assert len(received) == SAMPLE_VALID
    sent_rows = [f for f in failure_rows(tmp_path / "failures.csv") if f["_stage"] == "send"]
    assert [r["customer_id"] for r in sent_rows] == ["C0000003"]
    assert "HTTP 400" in sent_rows[0]["_error"] and "unsupported value" in sent_rows[0]["_error"]


def test_the_api_key_never_appears_anywhere(sandbox: Sandbox, tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    result = cli(
        "run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "-v", "--log-file", log_file,
        "--api-key", sandbox.api_key, "--app-id", sandbox.app_id, "--endpoint", sandbox.url,
        "--failures", tmp_path / "failures.csv", "--summary-json", tmp_path / "summary.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    texts = [result.stdout, result.stderr, log_file.read_text()]
    texts += [
        p.read_text(encoding="utf-8-sig")
        for p in (tmp_path / "failures.csv", tmp_path / "summary.json")
    ]
    for text in texts:
        assert sandbox.api_key not in text
    assert "reading" in log_file.read_text()


def test_wrong_key_from_the_start_exits_4_fast(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**credentials(sandbox), "METRIX_API_KEY": "wrong-key-123"}
    result = cli(
        "run",
        SAMPLE_CSV,
        "-m",
        SAMPLE_MAPPING,
        "--no-progress",
        "--failures",
        tmp_path / "f.csv",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 4
    assert "wrong-key-123" not in result.stdout + result.stderr
    assert stored_ids(sandbox) == []


def test_dry_run_sends_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--dry-run")
    assert result.returncode == 1
    data = summary(tmp_path)
    assert data["rows_sent"] == 0 and data["rows_skipped"] == SAMPLE_VALID
    assert data["requests"] == 0
    assert stored_ids(sandbox) == []


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, [], "no credentials: set METRIX_APP_ID and METRIX_API_KEY"),
        (
            {"METRIX_APP_ID": "a", "METRIX_API_KEY": "k"},
            ["--endpoint", "http://example.com/"],
            "refusing to send customer data over plain http",
        ),
        (
            {"METRIX_APP_ID": "a", "METRIX_API_KEY": "k"},
            ["--endpoint", "ftp://x/"],
            "not an http(s) URL",
        ),
        (  # a key pasted from a file with its newline would add a header line
            {"METRIX_APP_ID": "a", "METRIX_API_KEY": "k\nX-Injected: 1"},
            [],
            "METRIX_API_KEY contains a line break",
        ),
    ],
)
def test_run_usage_errors_exit_2_before_any_network(
    tmp_path: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    result = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, *args, env=env, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 2
    assert message in result.stderr


def test_with_worker_processes_an_abort_still_accounts_for_every_row(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    from benchmarks.datagen import write_csv

    data = tmp_path / "export.csv"
    write_csv(data, 6000, seed=21, invalid_rate=0.0)
    sb = make_sandbox("--reject-key-after", "700")
    result = run_cli(sb, tmp_path, data, "-m", SAMPLE_MAPPING, "--workers", "1",
                     "--concurrency", "4")  # fmt: skip
    assert result.returncode == 4, result.stderr
    outcome = summary(tmp_path)
    assert outcome["rows_total"] == 6000
    assert outcome["rows_sent"] == len(stored_ids(sb)) == 700
    failures = failure_rows(tmp_path / "failures.csv")
    assert len(failures) == 6000 - 700
    assert sorted(int(f["_row"]) for f in failures) == sorted(
        set(range(1, 6001)) - set(sent_rows(sb, data))
    )


def test_with_worker_processes_every_row_arrives(
    sandbox: Sandbox, tmp_path: Path, sample_ids: set[str]
) -> None:
    result = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert sorted(stored_ids(sandbox)) == sorted(sample_ids)


def sent_rows(sb: Sandbox, data: Path) -> list[int]:
    """Data row numbers of the users the sandbox stored (ids are C + row number)."""
    import sqlite3

    sb.stats()
    with sqlite3.connect(sb.db_path) as db:
        users = [row[0] for row in db.execute("SELECT custom_user_id FROM messages")]
    return [int(user[1:]) for user in users]


def test_a_second_ctrl_c_stops_at_once_and_still_leaves_readable_files(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # The sandbox holds every request 20 s and the grace is 60 s: after the first Ctrl-C
    # the run waits for its requests; the second must end it before any is answered.
    sb = make_sandbox("--latency-ms", "20000")
    env = {**os.environ, **credentials(sb)}
    stderr_path = tmp_path / "run.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "importer", "run", str(SAMPLE_CSV), "-m",
             str(SAMPLE_MAPPING), "--no-progress", "--concurrency", "4",
             "--grace-seconds", "60", "--failures", str(tmp_path / "failures.csv"),
             "--summary-json", str(tmp_path / "summary.json")],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
        )  # fmt: skip
    wait_for(lambda: sb.stats()["requests"] == 4, "four requests in flight")
    process.send_signal(signal.SIGINT)
    wait_for(lambda: "interrupted" in stderr_path.read_text(), "the first Ctrl-C seen")
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    # Ended while the sandbox still held all four requests: it waited for none.
    assert sb.stats()["responses_by_status"] == {}
    err = stderr_path.read_text()
    assert "Traceback" not in err
    assert process.returncode == 130
    data = summary(tmp_path)  # readable, and it accounts for every row it read
    assert data["rows_sent"] == len(stored_ids(sb)) == 0
    assert len(failure_rows(tmp_path / "failures.csv")) == data["rows_failed"]


def wait_for(condition: Callable[[], bool], what: str, tries: int = 3000) -> None:
    """Poll ``condition`` every 10 ms (the tries bound only a test that would hang)."""
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_one_ctrl_c_stops_a_run_held_by_a_long_retry_after(tmp_path: Path) -> None:
    # Every answer asks for a 5-minute wait: the senders sleep and the queue fills. One
    # Ctrl-C must still end the run after its grace period, with every row accounted for.
    from tests.http_stub import stub_server

    def answer(body: dict[str, object]) -> tuple[int, str, dict[str, str]]:
        return 429, '{"error": "slow down"}', {"Retry-After": "300"}

    with stub_server(answer) as (url, received):
        env = {**os.environ, "METRIX_APP_ID": "a", "METRIX_API_KEY": "k", "METRIX_ENDPOINT": url}
        process = subprocess.Popen(
            [sys.executable, "-m", "importer", "run", str(SAMPLE_CSV), "-m", str(SAMPLE_MAPPING),
             "--no-progress", "--concurrency", "2", "--grace-seconds", "1",
             "--failures", str(tmp_path / "failures.csv"),
             "--summary-json", str(tmp_path / "summary.json")],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received, "the run sent nothing"
        time.sleep(0.5)  # let the queue fill behind the paused senders
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)  # 300 s if the pause held the stop
    assert process.returncode == 130, err
    data = summary(tmp_path)
    assert data["rows_sent"] == 0 and data["rows_failed"] == SAMPLE_ROWS
    stages = [row["_stage"] for row in failure_rows(tmp_path / "failures.csv")]
    assert len(stages) == SAMPLE_ROWS and set(stages) <= {"validate", "not_sent"}
