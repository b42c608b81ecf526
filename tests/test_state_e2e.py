"""Runs that survive: SIGKILL and resume, --only-changed, the lock, changed inputs,
and the failure file as input. The real CLI against the real sandbox."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.datagen import HEADER, customer_rows
from importer.core.outcome import SkipReason
from importer.edges.state import StateStore
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, assert_no_traceback, cli
from tests.e2e import credentials, expected_ids, failure_rows, run_cli, stored_ids, summary
from tests.sandbox_helpers import MakeSandbox, Sandbox, start_sandbox

DUPLICATE, UNCHANGED = str(SkipReason.DUPLICATE), str(SkipReason.UNCHANGED)

pytestmark = pytest.mark.e2e  # every test here runs the CLI or the sandbox as a process


def write_export(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_sigkill_at_ten_random_points_then_resume_delivers_everything_exactly_once(
    tmp_path: Path,
) -> None:
    rows = list(customer_rows(3000, seed=99, invalid_rate=0.02))
    data = write_export(tmp_path / "export.csv", rows)
    wanted = expected_ids(data, SAMPLE_MAPPING)
    sb = start_sandbox(tmp_path, "--latency-ms", "1-4", "--seed", "5")
    rng = random.Random(2024)
    env = {**os.environ, **credentials(sb)}
    command = [
        sys.executable, "-m", "importer", "run", str(data), "-m", str(SAMPLE_MAPPING),
        "--state", str(tmp_path / "state.db"), "--no-progress", "--concurrency", "4",
        "--failures", str(tmp_path / "failures.csv"),
        "--summary-json", str(tmp_path / "summary.json"),
    ]  # fmt: skip
    try:
        kills = 0
        for _ in range(10):
            process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(rng.uniform(0.4, 1.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=30)
            if process.returncode != -signal.SIGKILL:
                break  # the run finished before this kill; nothing left to interrupt
        assert kills >= 10
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert_no_traceback(result)
        assert result.returncode == 1, result.stderr  # the export has invalid rows
        ids = stored_ids(sb)
        assert len(ids) == len(set(ids)) == len(wanted)
        assert set(ids) == wanted
        data_summary = summary(tmp_path)
        invalid = 3000 - len(wanted)
        assert data_summary["rows_total"] == 3000
        assert data_summary["rows_sent"] == len(wanted)
        assert data_summary["rows_failed"] == invalid
        failures = failure_rows(tmp_path / "failures.csv")
        assert sorted(int(f["_row"]) for f in failures) == sorted(
            i for i, f in enumerate(failures_expected(rows), start=1) if f
        )
        assert {f["_stage"] for f in failures} == {"validate"}
    finally:
        sb.stop()


def failures_expected(rows: list[list[str]]) -> list[bool]:
    """Which rows the mapping rejects."""
    from importer.core.config import load_mapping
    from importer.core.messages import MappedRow, RowMapper

    mapper = RowMapper(load_mapping(SAMPLE_MAPPING), HEADER, 0)
    return [not isinstance(mapper.map_row(row), MappedRow) for row in rows]


def nightly(
    sb: Sandbox, tmp_path: Path, data: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """The nightly command: ``run DATA --state tmp_path/state.db --only-changed``."""
    state = tmp_path / "state.db"
    return run_cli(
        sb, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state, "--only-changed", *extra
    )


# --workers 2: the worker processes fingerprint rows and look them up in the state.
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["inline", "workers"])
def test_only_changed_sends_nothing_unchanged_and_exactly_the_modified_and_new(
    sandbox: Sandbox, tmp_path: Path, workers: list[str]
) -> None:
    count = 2500  # three chunks of rows
    rows = list(customer_rows(count, seed=3, invalid_rate=0.0))
    data = write_export(tmp_path / "export.csv", rows)
    first = nightly(sandbox, tmp_path, data, *workers)
    assert first.returncode == 0, first.stderr
    assert summary(tmp_path)["rows_sent"] == count
    second = nightly(sandbox, tmp_path, data, *workers)
    assert second.returncode == 0
    again = summary(tmp_path)
    assert (again["rows_sent"], again["rows_skipped"], again["requests"]) == (0, count, 0)
    # The nightly export changes: a few users modified (in each chunk), 4 new users.
    modified = {5, 77, 999, 1000, 2499}
    for index in modified:
        rows[index][3] = f"changed.{index}@example.com"
    new_rows = [[f"N{i}", *rows[i][1:]] for i in range(4)]
    write_export(data, rows + new_rows)
    before = sandbox.stats()["accepted_messages"]
    third = nightly(sandbox, tmp_path, data, *workers)
    assert third.returncode == 0, third.stderr
    last = summary(tmp_path)
    assert (last["rows_sent"], last["rows_skipped"]) == (9, count - 5)
    assert sandbox.stats()["accepted_messages"] - before == 9
    for index in modified:
        stored = sandbox.user(rows[index][0])
        assert stored is not None
        assert stored["profile"]["email"] == f"changed.{index}@example.com"
    assert sandbox.user("N0") is not None


def test_a_second_run_on_a_locked_state_exits_5_at_once(sandbox: Sandbox, tmp_path: Path) -> None:
    holder = StateStore(tmp_path / "state.db")
    try:
        result = run_cli(
            sandbox,
            tmp_path,
            SAMPLE_CSV,
            "-m",
            SAMPLE_MAPPING,
            "--state",
            tmp_path / "state.db",
            timeout=60,  # the lock is held for good: a run that waited for it would hang
        )
        assert sandbox.stats()["requests"] == 0
        assert_no_traceback(result)
        assert result.returncode == 5
        assert "in use by another run" in result.stderr and f"pid {os.getpid()}" in result.stderr
        assert stored_ids(sandbox) == []
    finally:
        holder.close()


def test_a_stale_lock_file_does_not_block(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "state.db.lock").write_text("pid 999999, since yesterday\n")
    result = run_cli(
        sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--state", tmp_path / "state.db"
    )
    assert result.returncode == 1, result.stderr
    assert summary(tmp_path)["rows_sent"] == 290


def test_changed_input_is_refused_until_restart(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    rows = list(customer_rows(300, seed=4, invalid_rate=0.0))
    data = write_export(tmp_path / "export.csv", rows)
    state = tmp_path / "state.db"
    sb = make_sandbox("--reject-key-after", "100")
    aborted = run_cli(
        sb, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state, "--concurrency", "1"
    )
    assert aborted.returncode == 4
    assert "resumable" in cli("state", state).stdout
    rows[0][1] = "Changed"
    write_export(data, rows)
    refused = run_cli(sb, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state)
    assert_no_traceback(refused)
    assert refused.returncode == 2
    assert "different input file" in refused.stderr and "--restart" in refused.stderr
    sb.stop()
    sb2 = make_sandbox()
    restarted = run_cli(sb2, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state, "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert summary(tmp_path)["rows_sent"] == 300
    shown = cli("state", state).stdout
    assert "abandoned" in shown and "finished" in shown


def test_resume_after_revoked_key_sends_only_the_rest(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    rows = list(customer_rows(200, seed=8, invalid_rate=0.0))
    data = write_export(tmp_path / "export.csv", rows)
    state = tmp_path / "state.db"
    sb = make_sandbox("--reject-key-after", "60", "--db", str(tmp_path / "one.db"))
    first = run_cli(
        sb, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state, "--concurrency", "1"
    )
    assert first.returncode == 4
    sent_before = len(stored_ids(sb))
    sb.stop()
    sb2 = make_sandbox("--db", str(tmp_path / "one.db"))
    second = run_cli(sb2, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state)
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stdout
    final = summary(tmp_path)
    assert final["rows_total"] == 200 and final["rows_sent"] == 200
    assert final["requests"] == 200 - sent_before
    assert len(stored_ids(sb2)) == 200


def test_failure_file_fixed_in_a_spreadsheet_reruns_only_those_rows(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING)
    assert first.returncode == 1
    failures = failure_rows(tmp_path / "failures.csv")
    assert len(failures) == 10
    fixes = {
        "email": "fixed@example.com", "dob": "01/01/1990", "mobile": "09121234567",
        "sex": "f", "orders": "12", "vip": "yes", "prefs": '{"lang": "fa"}',
        "customer_id": "C9999999", "last_login": "2024-01-01 10:00:00", "spent": "12.50",
    }  # fmt: skip
    for row in failures:
        for reason_column, value in fixes.items():
            if row["_error"].startswith(f"{reason_column}:"):
                row[reason_column] = value
    # Saved the way a spreadsheet program saves CSV: BOM, CRLF, every field quoted.
    edited = tmp_path / "fixed.csv"
    with open(edited, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.DictWriter(
            out, fieldnames=list(failures[0]), quoting=csv.QUOTE_ALL, lineterminator="\r\n"
        )
        writer.writeheader()
        writer.writerows(failures)
    assert edited.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in edited.read_bytes()
    before = set(stored_ids(sandbox))
    rerun = run_cli(sandbox, tmp_path, edited, "-m", SAMPLE_MAPPING)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert summary(tmp_path)["rows_sent"] == 10
    new_ids = set(stored_ids(sandbox)) - before
    assert len(new_ids) == 10
    # A neutralised phone ('+98 ...) was restored before it was parsed.
    restored_phone = [f for f in failures if f["mobile"].startswith("'+")]
    for row in restored_phone:
        stored = sandbox.user(row["customer_id"])
        assert stored is not None and stored["profile"]["phoneNumber"].startswith("09")


def test_unmapped_custom_never_sends_report_columns(sandbox: Sandbox, tmp_path: Path) -> None:
    data = tmp_path / "failures.csv.in"
    data.write_text(
        "_row,_stage,_error,id,note\r\n4,validate,bad,1,hello\r\n", encoding="utf-8-sig"
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nunmapped: custom\n")
    result = run_cli(sandbox, tmp_path, data, "-m", mapping)
    assert result.returncode == 0, result.stderr
    stored = sandbox.user("1")
    assert stored is not None
    assert stored["profile"]["customAttributes"] == {"note": "hello"}


@pytest.mark.parametrize("flag", ["--only-changed"])
def test_only_changed_needs_state(tmp_path: Path, flag: str) -> None:
    env = {"METRIX_APP_ID": "a", "METRIX_API_KEY": "k"}
    result = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, flag, "--dry-run", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "--only-changed needs --state" in result.stderr


def test_only_changed_ignores_a_new_update_time_when_the_profile_is_the_same(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = list(customer_rows(50, seed=31, invalid_rate=0.0))
    data = write_export(tmp_path / "export.csv", rows)
    first = nightly(sandbox, tmp_path, data)
    assert first.returncode == 0, first.stderr
    for row in rows[:10]:
        row[HEADER.index("updated_at")] = "2025-06-01 10:00:00"  # re-exported, same content
    rows[20][HEADER.index("city")] = "Kerman"  # really changed
    write_export(data, rows)
    again = nightly(sandbox, tmp_path, data)
    assert again.returncode == 0, again.stderr
    result = summary(tmp_path)
    assert (result["rows_sent"], result["rows_skipped"]) == (1, 49)
    stored = sandbox.user(rows[20][0])
    assert stored is not None and stored["profile"]["city"] == "Kerman"


def test_a_dry_run_never_touches_the_state(tmp_path: Path) -> None:
    env = {"METRIX_APP_ID": "a", "METRIX_API_KEY": "k"}
    result = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--dry-run", "--state",
                 tmp_path / "state.db", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "plan" in result.stderr
    assert not (tmp_path / "state.db").exists()


def test_only_changed_reads_an_unchanged_export_once_and_a_changed_byte_is_seen(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = list(customer_rows(300, seed=11, invalid_rate=0.0))
    rows[200][0] = rows[20][0]  # one user on two rows: --duplicates last sends row 201
    data = write_export(tmp_path / "export.csv", rows)
    first = nightly(sandbox, tmp_path, data)
    assert first.returncode == 0, first.stderr
    assert "checked 300 rows for duplicates" in first.stderr
    before = summary(tmp_path)
    assert before["duplicates"]["users"] == 1 and before["rows_sent"] == 299
    second = nightly(sandbox, tmp_path, data)
    assert second.returncode == 0, second.stderr
    assert "checked 300 rows for duplicates" not in second.stderr
    assert "byte for byte those checked before" in second.stderr
    again = summary(tmp_path)
    assert again["duplicates"] == before["duplicates"]
    assert again["rows_sent"] == 0
    assert again["skipped_reasons"] == {DUPLICATE: 1, UNCHANGED: 299}
    # One byte changes (row 31's id takes row 32's last digit), size and time kept:
    # the duplicate check runs again and sees the new duplicate.
    info = data.stat()
    old_id, new_id = rows[30][0], rows[31][0]
    assert len(old_id) == len(new_id) and old_id[:-1] == new_id[:-1]
    text = data.read_bytes()
    at = text.index(f"\n{old_id},".encode()) + len(old_id)
    data.write_bytes(text[:at] + new_id[-1].encode() + text[at + 1 :])
    os.utime(data, ns=(info.st_atime_ns, info.st_mtime_ns))
    third = nightly(sandbox, tmp_path, data)
    assert third.returncode == 0, third.stderr
    assert "checked 300 rows for duplicates" in third.stderr
    last = summary(tmp_path)
    assert last["duplicates"]["users"] == 2
    # Row 32 is now the last of its user and unchanged; row 31 is its duplicate.
    assert (last["rows_sent"], last["skipped_reasons"]) == (0, {DUPLICATE: 2, UNCHANGED: 298})
