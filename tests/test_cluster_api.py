"""``importer.run(..., engine="dask")``: the command line's ``--engine dask`` from Python."""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import importer
from importer.core.outcome import SkipReason
from importer.edges.report import Summary
from importer.errors import UsageProblem
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, assert_no_traceback
from tests.e2e import failure_rows, run_cli, summary
from tests.sandbox_helpers import MakeSandbox, Sandbox

COUNTS = ("rows_total", "rows_valid", "rows_invalid", "rows_sent", "rows_failed",
          "rows_skipped", "blank_rows", "reasons", "skipped_reasons", "warnings",
          "partitions", "engine")  # fmt: skip


def _messages(sb: Sandbox) -> dict[str, Any]:
    sb.stats()  # flushes the sandbox's write buffer
    with sqlite3.connect(sb.db_path) as db:
        query = "SELECT id, custom_user_id, type, time, raw FROM messages"
        return {row[0]: row[1:] for row in db.execute(query)}


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A local cluster of 2 worker processes, as a caller of the API would make one."""
    distributed: Any = importlib.import_module("distributed")  # untyped
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=None) as cluster,
        distributed.Client(cluster) as made,
    ):  # fmt: skip
        yield made


@pytest.mark.e2e  # a sandbox, the CLI and a Dask cluster as processes
def test_an_api_dask_run_is_the_command_lines(
    make_sandbox: MakeSandbox, tmp_path: Path, client: Any
) -> None:
    cli_sb, api_sb = make_sandbox(), make_sandbox()
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    cli_dir.mkdir()
    api_dir.mkdir()
    by_cli = run_cli(cli_sb, cli_dir, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--engine", "dask",
                     "--workers", "2", "--partition-rows", "100", timeout=300)  # fmt: skip
    assert_no_traceback(by_cli)
    assert by_cli.returncode == 1, by_cli.stderr  # the sample has invalid rows

    credentials: dict[str, Any] = {
        "app_id": api_sb.app_id,
        "api_key": api_sb.api_key,
        "endpoint": api_sb.url,
    }
    state = api_dir / "s.db"
    by_api = importer.run(
        SAMPLE_CSV, SAMPLE_MAPPING, engine="dask", client=client, partition_rows=100,
        failures=api_dir / "failures.csv", summary_json=api_dir / "summary.json",
        state=state, **credentials,
    )  # fmt: skip
    assert isinstance(by_api, Summary)
    assert by_api.extra["partitions"] == 3
    wanted, got = summary(cli_dir), summary(api_dir)
    assert {k: got[k] for k in COUNTS} == {k: wanted[k] for k in COUNTS}
    assert _messages(api_sb) == _messages(cli_sb)
    assert failure_rows(api_dir / "failures.csv") == failure_rows(cli_dir / "failures.csv")
    assert client.status == "running"  # the caller's client is left open

    # The same state again with only_changed: nothing is sent, every valid row skipped.
    requests = api_sb.stats()["requests"]
    again = importer.run(SAMPLE_CSV, SAMPLE_MAPPING, engine="dask", client=client,
                         partition_rows=100, failures=api_dir / "failures.csv", state=state,
                         only_changed=True, **credentials)  # fmt: skip
    assert again.rows_sent == 0 and again.rows_failed == wanted["rows_failed"]
    assert again.skipped == {SkipReason.UNCHANGED: wanted["rows_sent"]}
    assert api_sb.stats()["requests"] == requests


CREDENTIALS: dict[str, Any] = {"app_id": "app", "api_key": "key", "endpoint": "http://127.0.0.1:9/"}


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"engine": "spark"}, "expected 'local' or 'dask'"),
        ({"client": object()}, "client= and scheduler= are for engine='dask'"),
        ({"engine": "dask", "client": object(), "workers": 2}, "not several"),
        ({"engine": "dask", "scheduler": "tcp://127.0.0.1:1", "workers": 2}, "not both"),
    ],
)
def test_what_an_api_dask_run_cannot_do_is_refused_before_anything_starts(
    tmp_path: Path, options: dict[str, Any], said: str
) -> None:
    with pytest.raises(UsageProblem, match=said):
        importer.run(SAMPLE_CSV, SAMPLE_MAPPING, failures=tmp_path / "f.csv", **options,
                     **CREDENTIALS)  # fmt: skip
    assert not (tmp_path / "f.csv").exists()


def test_data_in_memory_is_refused_by_the_dask_engine(tmp_path: Path) -> None:
    rows = [{"id": "u1", "email": "a@x.io"}]
    with pytest.raises(UsageProblem, match="give paths or URLs"):
        importer.run(rows, {"user_id": "id", "fields": {"email": "email"}}, engine="dask",
                     failures=tmp_path / "f.csv", **CREDENTIALS)  # fmt: skip


def test_without_the_dask_extra_the_api_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(UsageProblem, match=r"pip install 'metrix-importer\[dask\]'"):
        importer.run(SAMPLE_CSV, SAMPLE_MAPPING, engine="dask", failures=tmp_path / "f.csv",
                     **CREDENTIALS)  # fmt: skip
