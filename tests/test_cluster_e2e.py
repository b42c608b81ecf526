"""``run --engine dask`` on a local cluster of 2 worker processes, against the sandbox:
the same inputs give what a single-machine run gives."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, SAMPLE_XLSX, assert_no_traceback, cli
from tests.e2e import credentials, failure_rows, run_cli, stored_ids, summary
from tests.sandbox_helpers import MakeSandbox, Sandbox
from tests.test_run_e2e import wait_for

pytestmark = pytest.mark.e2e  # runs the CLI, the sandbox and a Dask cluster as processes

COUNTS = ("rows_total", "rows_valid", "rows_invalid", "rows_sent", "rows_failed",
          "rows_skipped", "blank_rows", "reasons", "skipped_reasons", "warnings")  # fmt: skip


def _messages(sb: Sandbox) -> dict[str, Any]:
    """Every stored message, body included, by id."""
    sb.stats()  # flushes the sandbox's write buffer
    with sqlite3.connect(sb.db_path) as db:
        query = "SELECT id, custom_user_id, type, time, raw FROM messages"
        return {row[0]: row[1:] for row in db.execute(query)}


def _profile(sb: Sandbox, user: str) -> dict[str, Any]:
    found = sb.user(user)
    assert found is not None
    profile: dict[str, Any] = found["profile"]
    return profile


def _input(tmp_path: Path) -> Path:
    """The sample with a city written over two quoted lines, a blank line, and a
    customer repeated at the end (the last row wins)."""
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace(",تهران,", ',"تهران\nشمال",', 1)
    assert "\n" in lines[1].rstrip("\n")
    repeated = lines[3].replace("Leila", "Leyla", 1)
    path = tmp_path / "customers.csv"
    path.write_text("".join([*lines[:100], "\n", *lines[100:], repeated]), encoding="utf-8")
    return path


def test_a_dask_run_stores_and_reports_what_a_single_machine_run_does(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    data = _input(tmp_path)
    local_dir, dask_dir = tmp_path / "local", tmp_path / "dask"
    local_dir.mkdir()
    dask_dir.mkdir()
    local_sb, dask_sb = make_sandbox(), make_sandbox()
    # The workbook holds the same customers: the CSV's rows, read last, win.
    sources = (SAMPLE_XLSX, data, "-m", SAMPLE_MAPPING)
    local = run_cli(local_sb, local_dir, *sources)
    clustered = run_cli(dask_sb, dask_dir, *sources, "--engine", "dask", "--workers", "2",
                        "--partition-rows", "40", timeout=300)  # fmt: skip
    assert_no_traceback(clustered)
    assert (local.returncode, clustered.returncode) == (1, 1), clustered.stderr
    local_summary, dask_summary = summary(local_dir), summary(dask_dir)
    assert dask_summary["partitions"] == 9  # 302 records of the CSV in 8 ranges, the sheet
    assert {k: dask_summary[k] for k in COUNTS} == {k: local_summary[k] for k in COUNTS}
    assert dask_summary["rows_skipped"] > 0  # duplicates across files and partitions
    assert sorted(stored_ids(dask_sb)) == sorted(stored_ids(local_sb))
    assert _messages(dask_sb) == _messages(local_sb)
    assert _profile(dask_sb, "C0000003")["firstName"] == "Leyla"
    assert _profile(dask_sb, "C0000001")["city"] == "تهران\nشمال"

    def rows(folder: Path) -> Counter[tuple[str, ...]]:
        return Counter(tuple(row.values()) for row in failure_rows(folder / "failures.csv"))

    assert rows(dask_dir) == rows(local_dir) and sum(rows(dask_dir).values()) > 0


def _parquet(source: Path, target: Path, rows_per_group: int) -> Path:
    """``source``'s rows (a CSV file) as a Parquet file of text columns."""
    import pyarrow as pa  # the parquet extra, installed for the tests
    import pyarrow.parquet as pq

    with open(source, encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(header)})
    pq.write_table(table, target, row_group_size=rows_per_group)
    return target


def test_a_parquet_file_is_split_by_row_groups_and_stores_what_one_machine_does(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    data = _parquet(SAMPLE_CSV, tmp_path / "customers.parquet", 50)
    local_dir, dask_dir = tmp_path / "local", tmp_path / "dask"
    local_dir.mkdir()
    dask_dir.mkdir()
    local_sb, dask_sb = make_sandbox(), make_sandbox()
    local = run_cli(local_sb, local_dir, data, "-m", SAMPLE_MAPPING)
    clustered = run_cli(dask_sb, dask_dir, data, "-m", SAMPLE_MAPPING, "--engine", "dask",
                        "--workers", "2", "--partition-rows", "100", timeout=300)  # fmt: skip
    assert_no_traceback(clustered)
    assert (local.returncode, clustered.returncode) == (1, 1), clustered.stderr
    local_summary, dask_summary = summary(local_dir), summary(dask_dir)
    assert dask_summary["partitions"] == 3  # 300 rows in 6 row groups, 2 to a partition
    assert {k: dask_summary[k] for k in COUNTS} == {k: local_summary[k] for k in COUNTS}
    assert _messages(dask_sb) == _messages(local_sb) and len(_messages(dask_sb)) == 290
    local_failed = failure_rows(local_dir / "failures.csv")
    dask_failed = failure_rows(dask_dir / "failures.csv")
    assert dask_failed == local_failed and len(dask_failed) == 10  # the file's own rows


def test_one_rate_holds_for_the_whole_cluster(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    """2 workers at --rate 40: the requests arrive 40 a second in all, not 40 each. The
    check is a lower bound on the time the requests took to arrive, which a loaded
    machine can only make longer."""
    sb = make_sandbox()
    data = tmp_path / "in.csv"
    data.write_text("id,email\n" + "".join(f"r{i},u{i}@x.io\n" for i in range(120)))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    result = run_cli(sb, tmp_path, data, "-m", mapping, "--engine", "dask", "--workers", "2",
                     "--partition-rows", "20", "--rate", "40", timeout=300)  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert summary(tmp_path)["partitions"] == 6
    sb.stats()  # flushes the sandbox's write buffer
    with sqlite3.connect(sb.db_path) as db:
        arrived = sorted(row[0] for row in db.execute("SELECT received_at FROM messages"))
    assert len(arrived) == 120
    # 120 requests at 40/s take 119/40 = 2.98 s; at 40/s per worker they would take half.
    assert arrived[-1] - arrived[0] >= 0.9 * 119 / 40


def test_one_adaptive_limit_holds_for_the_whole_cluster(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Without --rate, 2 workers against a hidden rate limit (429s without Retry-After)
    learn it together: the endpoint never sees more than the one ceiling in flight
    (8, where each worker on its own would start with 8), and few requests meet a 429."""
    sb = make_sandbox("--rate-limit", "100", "--no-retry-after", "--latency-ms", "20")
    data = tmp_path / "in.csv"
    data.write_text("id,email\n" + "".join(f"r{i},u{i}@x.io\n" for i in range(600)))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    result = run_cli(sb, tmp_path, data, "-m", mapping, "--engine", "dask", "--workers", "2",
                     "--partition-rows", "100", "--max-concurrency", "8", timeout=300)  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    data_summary = summary(tmp_path)
    assert data_summary["rows_sent"] == len(stored_ids(sb)) == 600
    stats = sb.stats()
    assert stats["processing_peak"] <= 8
    limited = stats["responses_by_status"].get("429", 0)
    pacing = data_summary["pacing"]  # the cluster's one limiter, as on one machine
    assert pacing["rate_limited"] == limited >= 1 and pacing["rate_per_second"] is not None
    # 2-2.5% on this machine (1.6% for one machine alone); 3-4.5% and 16 in flight
    # when each worker had a limiter of its own.
    assert limited / data_summary["requests"] <= 0.035, (limited, data_summary["requests"])


def test_a_revoked_key_stops_every_worker_with_exit_4_and_every_unsent_row_reported(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox("--reject-key-after", "50", "--latency-ms", "2")
    result = run_cli(sb, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--engine", "dask",
                     "--workers", "2", "--partition-rows", "40", "--concurrency", "4",
                     timeout=300)  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 4, result.stderr
    assert "credentials" in result.stderr and "METRIX_API_KEY" in result.stderr
    data = summary(tmp_path)
    assert data["rows_total"] == 300 and data["aborted"]
    assert data["rows_sent"] == len(stored_ids(sb)) == 50
    failures = failure_rows(tmp_path / "failures.csv")
    assert len(failures) == data["rows_failed"] == 300 - 50
    assert sorted(int(f["_row"]) for f in failures) == sorted(
        set(range(1, 301)) - set(_sent_rows(sb))
    )
    # The first refusal stops every worker: the requests in flight on the two workers
    # (4 each), and at most one partition starting before it hears; without the shared
    # stop each of the 8 partitions met its own refusals (28 on this machine).
    assert sb.stats()["responses_by_status"]["403"] <= 4 * 3


def _sent_rows(sb: Sandbox) -> list[int]:
    """The sample's row numbers of the stored users (C0000042 is row 42)."""
    sb.stats()
    with sqlite3.connect(sb.db_path) as db:
        return [int(row[0][1:]) for row in db.execute("SELECT custom_user_id FROM messages")]


def _spawned_workers(parent: int) -> list[int]:
    """The Dask worker processes a local cluster started under ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("victims", [1, 2])
def test_a_worker_killed_mid_run_has_its_partition_run_again(
    make_sandbox: MakeSandbox, tmp_path: Path, victims: int
) -> None:
    """One worker killed, or both (then surely the one holding the pace's actor: the
    partitions run again on the restarted workers, each pacing itself)."""
    sb = make_sandbox("--latency-ms", "20")
    data = tmp_path / "in.csv"
    data.write_text("id,email\n" + "".join(f"r{i},u{i}@x.io\n" for i in range(1000)))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    command = [sys.executable, "-m", "importer", "run", str(data), "-m", str(mapping),
               "--engine", "dask", "--workers", "2", "--partition-rows", "100",
               "--max-concurrency", "2", "--no-progress", "--failures", str(tmp_path / "f.csv"),
               "--summary-json", str(tmp_path / "summary.json")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRIX_")}
    env.update(credentials(sb))
    with subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as run:  # fmt: skip
        try:
            wait_for(lambda: sb.stats()["stored_messages"] >= 100, "100 users stored")
            workers = _spawned_workers(run.pid)
            assert len(workers) == 2, workers
            for pid in workers[:victims]:
                os.kill(pid, signal.SIGKILL)
            _, err = run.communicate(timeout=300)
        finally:
            run.kill()
    assert "Traceback" not in err, err
    assert run.returncode == 0, err
    if victims == 2:
        assert "the worker keeping the cluster's pace was lost" in err
    data_summary = summary(tmp_path)
    assert (data_summary["rows_total"], data_summary["rows_sent"]) == (1000, 1000)
    sb.stats()  # flushes the sandbox's write buffer
    with sqlite3.connect(sb.db_path) as db:
        ids = dict(db.execute("SELECT custom_user_id, COUNT(DISTINCT id) FROM messages "
                              "GROUP BY custom_user_id"))  # fmt: skip
    # Every user arrived, each with one message id however often it was sent.
    assert len(ids) == 1000 and set(ids.values()) == {1}


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--engine", "dask", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"),
         "give --scheduler or --workers, not both"),
        (("--scheduler", "tcp://127.0.0.1:1"), "--scheduler is for --engine dask"),
    ],
)  # fmt: skip
def test_what_the_dask_engine_cannot_do_is_refused_before_anything_starts(
    tmp_path: Path, options: tuple[str, ...], said: str
) -> None:
    env = {
        "METRIX_APP_ID": "app",
        "METRIX_API_KEY": "key",
        "METRIX_ENDPOINT": "http://127.0.0.1:9/",
    }
    result = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, *options, cwd=tmp_path, env=env)
    assert_no_traceback(result)
    assert result.returncode == 2
    assert said in result.stderr
    assert not (tmp_path / "s.db").exists()
