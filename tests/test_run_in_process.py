"""A whole run through the engine API, in this process, against a real HTTP server.

No subprocess: ``run_job`` is called as a library would call it, and the test asserts
on what the server received and on the counts.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from importer.core.config import load_mapping
from importer.engine.run import Outputs, run_job
from importer.engine.runner import SendOptions
from importer.engine.sending import RetryPolicy
from importer.errors import ExitCode
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING
from tests.e2e import failure_rows
from tests.http_stub import stub_server

pytestmark = pytest.mark.e2e  # a real HTTP server on 127.0.0.1, in a thread

ROWS = 300  # data rows in the sample file


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    # A run ignores Ctrl-C while it writes its reports, to the end of the process:
    # right for the CLI, not for the test process.
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _run(
    url: str, tmp_path: Path, concurrency: int = 4, dry_run: bool = False
) -> tuple[ExitCode, dict[str, Any]]:
    options = SendOptions(
        endpoint=url, app_id="app", api_key="key", concurrency=concurrency, dry_run=dry_run
    )
    outputs = Outputs(failures=tmp_path / "failures.csv", progress=False)
    result = run_job([str(SAMPLE_CSV)], load_mapping(str(SAMPLE_MAPPING)), options, outputs,
                     retry=RetryPolicy(max_retries=0))  # fmt: skip
    counts = result.summary.as_dict()
    assert counts["rows_total"] == ROWS
    assert (
        counts["rows_total"] == counts["rows_sent"] + counts["rows_failed"] + counts["rows_skipped"]
    )
    return result.exit_code, counts


def test_a_run_sends_each_valid_row_once_and_reports_the_rest(tmp_path: Path) -> None:
    def answer(body: dict[str, object]) -> tuple[int, str]:
        return (400, '{"error": "no"}') if body["customUserId"] == "C0000003" else (200, "{}")

    with stub_server(answer) as (url, received):
        code, counts = _run(url, tmp_path)
    valid = counts["rows_valid"]
    assert code == ExitCode.ROWS_FAILED
    users = [body["customUserId"] for body in received]
    assert len(users) == len(set(users)) == valid
    assert counts["rows_sent"] == valid - 1
    failures = failure_rows(tmp_path / "failures.csv")
    assert len(failures) == counts["rows_failed"] == counts["rows_invalid"] + 1
    assert [f["customer_id"] for f in failures if f["_stage"] == "send"] == ["C0000003"]
    assert {f["_stage"] for f in failures} == {"validate", "send"}


def test_credentials_refused_stop_the_run_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    with stub_server(lambda body: (403, "{}")) as (url, received):
        code, counts = _run(url, tmp_path, concurrency=1)
    assert code == ExitCode.ABORTED
    assert len(received) == 1  # the first refusal stops every worker
    assert counts["rows_sent"] == 0 and counts["rows_skipped"] == 0
    stages = [f["_stage"] for f in failure_rows(tmp_path / "failures.csv")]
    assert len(stages) == ROWS
    assert stages.count("not_sent") == ROWS - counts["rows_invalid"]


def test_a_dry_run_sends_nothing_and_skips_every_valid_row(tmp_path: Path) -> None:
    with stub_server(lambda body: (200, "{}")) as (url, received):
        code, counts = _run(url, tmp_path, dry_run=True)
    assert code == ExitCode.ROWS_FAILED  # the sample has invalid rows
    assert received == []
    assert counts["skipped_reasons"] == {"dry run: would have been sent": counts["rows_valid"]}


def test_validate_counts_soft_limit_warnings_like_a_run(tmp_path: Path) -> None:
    from importer.core.config import parse_mapping
    from importer.engine.validate import validate_job

    data = tmp_path / "long.csv"
    data.write_text("id,note\n" + "".join(f"u{i},{'x' * 600}\n" for i in range(5)))
    mapping = parse_mapping("user_id: id\ncustom: {note: note}\n")
    summary, _ = validate_job(str(data), mapping, tmp_path / "failures.csv", workers=0)
    assert summary.rows_valid == 5
    assert [(key.split(":")[0], count) for key, count in summary.warnings.items()] == [
        ("custom.note", 5)
    ]
