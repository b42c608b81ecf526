"""Inputs in object storage: the real CLI against a local S3-compatible server (moto's
standalone server, started here on 127.0.0.1) and the real sandbox."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.datagen import HEADER, customer_rows
from tests.cli_helpers import SAMPLE_MAPPING, assert_no_traceback, cli
from tests.e2e import credentials, expected_ids, stored_ids, summary
from tests.sandbox_helpers import Sandbox

pytestmark = pytest.mark.e2e  # an S3-compatible server, a sandbox, the CLI

BUCKET = "exports"


@dataclass
class S3:
    """A running S3-compatible server and a client for it."""

    endpoint: str
    process: subprocess.Popen[bytes]
    client: Any

    def env(self) -> dict[str, str]:
        """What a user sets: the endpoint and credentials, through the environment."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """One server for the module (it takes seconds to start); tests use their own keys."""
    tmp_path = tmp_path_factory.mktemp("s3")
    port = _free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # up to 30 s on a loaded machine
            if process.poll() is not None:
                raise AssertionError((tmp_path / "moto.log").read_text())
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        server = S3(endpoint, process, None)
        server.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip
        server.client.create_bucket(Bucket=BUCKET)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def _parquet_bytes(rows: list[list[str]], row_group_size: int = 500) -> bytes:
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(HEADER)})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


def _jsonl_bytes(rows: list[list[str]]) -> bytes:
    lines = (json.dumps(dict(zip(HEADER, row, strict=True)), ensure_ascii=False) for row in rows)
    return ("\n".join(lines) + "\n").encode()


def _run(
    s3: S3, sb: Sandbox, tmp_path: Path, *args: str | Path
) -> subprocess.CompletedProcess[str]:
    return cli(
        "run", *args, "-m", SAMPLE_MAPPING, "--no-progress", "--failures",
        tmp_path / "failures.csv", "--summary-json", tmp_path / "summary.json",
        cwd=tmp_path, env={**s3.env(), **credentials(sb)},
    )  # fmt: skip


def _ids_of(tmp_path: Path, name: str, rows: list[list[str]]) -> set[str]:
    local = tmp_path / name
    local.write_bytes(_csv_bytes(rows))
    return expected_ids(local, SAMPLE_MAPPING)


def test_parquet_parts_and_jsonl_across_prefixes(s3: S3, sandbox: Sandbox, tmp_path: Path) -> None:
    january = list(customer_rows(300, seed=1, invalid_rate=0.0))
    february = list(customer_rows(300, seed=2, invalid_rate=0.0))
    february = [[f"F{row[0]}", *row[1:]] for row in february]  # other customers
    s3.put("2024/01/part-0.parquet", _parquet_bytes(january[:150], 50))
    s3.put("2024/01/part-1.parquet", _parquet_bytes(january[150:], 50))
    s3.put("2024/02/users.jsonl.gz", gzip.compress(_jsonl_bytes(february)))
    s3.put("2024/02/_SUCCESS", b"")
    checked = cli(
        "validate", f"s3://{BUCKET}/2024/01/", "-m", SAMPLE_MAPPING, cwd=tmp_path, env=s3.env()
    )
    assert checked.returncode == 0, checked.stderr
    assert "300" in checked.stdout
    result = _run(
        s3, sandbox, tmp_path, f"s3://{BUCKET}/2024/*/part-*.parquet",
        f"s3://{BUCKET}/2024/*/*.jsonl.gz",
    )  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    wanted = _ids_of(tmp_path, "jan.csv", january) | _ids_of(tmp_path, "feb.csv", february)
    assert set(stored_ids(sandbox)) == wanted
    assert summary(tmp_path)["rows_sent"] == 600


def test_a_parquet_object_is_split_by_row_groups_on_a_dask_cluster(
    s3: S3, sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = list(customer_rows(300, seed=3, invalid_rate=0.0))
    s3.put("dask/users.parquet", _parquet_bytes(rows, 50))
    result = _run(
        s3, sandbox, tmp_path, f"s3://{BUCKET}/dask/users.parquet", "--engine", "dask",
        "--workers", "2", "--partition-rows", "100",
    )  # fmt: skip
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert summary(tmp_path)["partitions"] == 3  # each worker read its row groups itself
    assert sorted(stored_ids(sandbox)) == sorted(_ids_of(tmp_path, "users.csv", rows))


def test_missing_objects_and_patterns_are_input_errors(s3: S3, tmp_path: Path) -> None:
    for url in (f"s3://{BUCKET}/nothing.parquet", f"s3://{BUCKET}/none/*.parquet"):
        shown = cli("validate", url, "-m", SAMPLE_MAPPING, cwd=tmp_path, env=s3.env())
        assert_no_traceback(shown)
        assert shown.returncode == 3, shown.stderr
        assert url in shown.stderr


def _run_until_killed(command: list[str], env: dict[str, str], sb: Sandbox, sent: int) -> None:
    """Start a run and SIGKILL it once the sandbox holds at least ``sent`` messages."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while process.poll() is None and sb.stats()["stored_messages"] < sent:
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def test_resume_after_a_kill_and_refuse_a_changed_object(
    s3: S3, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    rows = list(customer_rows(2000, seed=9, invalid_rate=0.0))
    s3.put("big/users.parquet", _parquet_bytes(rows))
    wanted = _ids_of(tmp_path, "big.csv", rows)
    sb = make_sandbox("--latency-ms", "5")
    env = {**os.environ, **s3.env(), **credentials(sb)}
    command = [
        sys.executable, "-m", "importer", "run", f"s3://{BUCKET}/big/users.parquet",
        "-m", str(SAMPLE_MAPPING), "--state", str(tmp_path / "state.db"), "--no-progress",
        "--concurrency", "4", "--failures", str(tmp_path / "failures.csv"),
        "--summary-json", str(tmp_path / "summary.json"),
    ]  # fmt: skip
    _run_until_killed(command, env, sb, 300)
    # The object is replaced: resuming would skip or repeat rows, so it is refused.
    s3.put("big/users.parquet", _parquet_bytes(rows[:-1]))
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "unfinished run" in refused.stderr and "different input" in refused.stderr
    # Rewritten with the same bytes: still a new write (another modification time).
    s3.put("big/users.parquet", _parquet_bytes(rows))
    refused_again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert refused_again.returncode == 2, refused_again.stderr
    finished = subprocess.run(
        [*command, "--restart"], env=env, capture_output=True, text=True, timeout=120
    )
    assert_no_traceback(finished)
    assert finished.returncode == 0, finished.stderr
    assert set(stored_ids(sb)) == wanted


def test_csv_and_gzip_csv_resume_after_a_kill_with_every_row_once(
    s3: S3, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    rows = list(customer_rows(2000, seed=4, invalid_rate=0.0))
    others = [[f"J{row[0]}", *row[1:]] for row in rows[:500]]
    s3.put("mixed/a/users.csv.gz", gzip.compress(_csv_bytes(rows)))
    s3.put("mixed/b/users.csv", _csv_bytes(others))
    s3.put("mixed/c/users.jsonl", _jsonl_bytes([[f"K{r[0]}", *r[1:]] for r in rows[:100]]))
    wanted = (
        _ids_of(tmp_path, "a.csv", rows)
        | _ids_of(tmp_path, "b.csv", others)
        | _ids_of(tmp_path, "c.csv", [[f"K{r[0]}", *r[1:]] for r in rows[:100]])
    )
    sb = make_sandbox("--latency-ms", "5")
    env = {**os.environ, **s3.env(), **credentials(sb)}
    command = [
        sys.executable, "-m", "importer", "run", f"s3://{BUCKET}/mixed/*/users.*",
        "-m", str(SAMPLE_MAPPING), "--state", str(tmp_path / "state.db"), "--no-progress",
        "--concurrency", "4", "--failures", str(tmp_path / "failures.csv"),
        "--summary-json", str(tmp_path / "summary.json"),
    ]  # fmt: skip
    _run_until_killed(command, env, sb, 400)
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert_no_traceback(resumed)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    ids = stored_ids(sb)
    assert len(ids) == len(set(ids)) == len(wanted)
    assert set(ids) == wanted
    assert summary(tmp_path)["rows_sent"] == 2600


def test_a_csv_object_reads_as_the_same_file_on_disk(s3: S3, tmp_path: Path) -> None:
    """Sniffing, malformed rows and line numbers are the local reader's own."""
    body = (
        "customer_id;name;email\nC1;سارا;a@example.com\nC2;علي;b@example.com;extra\n"
        "\nC3;Neda;c@example.com\n"
    )
    s3.put("semi/users.csv", body.encode("cp1256"))  # a legacy Persian export
    local = tmp_path / "users.csv"
    local.write_bytes(body.encode("cp1256"))
    mapping = tmp_path / "users.yaml"
    mapping.write_text("user_id: customer_id\nfields:\n  firstName: name\n  email: email\n")
    shown = []
    for source in (f"s3://{BUCKET}/semi/users.csv", str(local)):
        result = cli(
            "validate", source, "-m", mapping, "--failures", tmp_path / "f.csv",
            "--summary-json", tmp_path / "s.json", cwd=tmp_path, env=s3.env(),
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        data = json.loads((tmp_path / "s.json").read_text())
        rows = (tmp_path / "f.csv").read_text(encoding="utf-8-sig")
        shown.append((data["rows_total"], data["blank_rows"], dict(data["reasons"]), rows))
    assert shown[0] == shown[1]
    assert "line 3: has 4 fields but the header has 3" in shown[0][3]
    assert "علي" in shown[0][3]
    assert shown[0][:2] == (3, 1)
