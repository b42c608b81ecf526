"""``run --engine dask --state``: the coordinator keeps the state file, a killed
coordinator's run resumes, ``--only-changed`` skips what was delivered, and a state
file started by either engine is finished by the other. Against the sandbox, on a
local cluster of 2 worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from importer.core.outcome import SkipReason
from tests.cli_helpers import assert_no_traceback
from tests.e2e import credentials, failure_rows, run_cli, summary
from tests.sandbox_helpers import MakeSandbox, Sandbox
from tests.test_run_e2e import wait_for

pytestmark = pytest.mark.e2e  # runs the CLI, the sandbox and a Dask cluster as processes

DASK = ("--engine", "dask", "--workers", "2", "--partition-rows", "100")
# More partitions than --only-changed keeps under way at once (2 per worker).
SMALL = ("--engine", "dask", "--workers", "2", "--partition-rows", "40")


def _input(tmp_path: Path, rows: int, changed: int | None = None) -> tuple[Path, Path]:
    data = tmp_path / "in.csv"
    lines = [f"r{i},{'new' if i == changed else 'u'}{i}@x.io\n" for i in range(rows)]
    data.write_text("id,email\n" + "".join(lines))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    return data, mapping


def _ids_per_user(sb: Sandbox) -> dict[str, int]:
    """How many different message ids each stored user arrived with."""
    sb.stats()  # flushes the sandbox's write buffer
    with sqlite3.connect(sb.db_path) as db:
        query = "SELECT custom_user_id, COUNT(DISTINCT id) FROM messages GROUP BY custom_user_id"
        return dict(db.execute(query))


def _env(sb: Sandbox) -> dict[str, str]:
    """This environment without any METRIX_ setting, with the sandbox's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRIX_")}
    env.update(credentials(sb))
    return env


def _state_rows(state: Path, table: str) -> int:
    """Rows in a table of the state file (0 before the run has made it), read-only."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
            count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            return count
    except sqlite3.OperationalError:
        return 0


def test_a_dask_run_with_state_then_only_changed_sends_only_what_changed(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    data, mapping = _input(tmp_path, 300)
    state = tmp_path / "s.db"
    first = run_cli(sb, tmp_path, data, "-m", mapping, *SMALL, "--state", state, timeout=300)
    assert_no_traceback(first)
    assert first.returncode == 0, first.stderr
    assert (summary(tmp_path)["rows_sent"], summary(tmp_path)["partitions"]) == (300, 8)
    assert _state_rows(state, "delivered") == 300
    requests = sb.stats()["requests"]

    again = run_cli(sb, tmp_path, data, "-m", mapping, *SMALL, "--state", state,
                    "--only-changed", timeout=300)  # fmt: skip
    assert_no_traceback(again)
    assert again.returncode == 0, again.stderr
    counts = summary(tmp_path)
    assert (counts["rows_total"], counts["rows_sent"], counts["rows_skipped"]) == (300, 0, 300)
    assert counts["skipped_reasons"] == {SkipReason.UNCHANGED: 300}
    assert sb.stats()["requests"] == requests  # nothing sent

    # One user's email changes: exactly that user is sent, by whichever worker reads it.
    _input(tmp_path, 300, changed=250)
    changed = run_cli(sb, tmp_path, data, "-m", mapping, *SMALL, "--state", state,
                      "--only-changed", timeout=300)  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    counts = summary(tmp_path)
    assert (counts["rows_sent"], counts["rows_skipped"]) == (1, 299)
    assert sb.stats()["requests"] == requests + 1
    profile = sb.user("r250")
    assert profile is not None and profile["profile"]["email"] == "new250@x.io"


def _killed_mid_run(
    sb: Sandbox, tmp_path: Path, command: list[str], until: Callable[[], bool], what: str
) -> None:
    """Start ``command``, SIGKILL it (alone: its cluster's workers are orphaned, as
    when a coordinator's machine dies) once ``until()``, then end the orphans."""
    env = _env(sb)
    with subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as run:  # fmt: skip
        try:
            wait_for(until, what)
            os.kill(run.pid, signal.SIGKILL)
            run.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)  # the orphaned workers, if any are left
            run.kill()


def _command(data: Path, mapping: Path, state: Path, tmp_path: Path, *engine: str) -> list[str]:
    return [sys.executable, "-m", "importer", "run", str(data), "-m", str(mapping),
            *engine, "--concurrency", "2", "--no-progress", "--state", str(state),
            "--failures", str(tmp_path / "failures.csv"),
            "--summary-json", str(tmp_path / "summary.json")]  # fmt: skip


@pytest.mark.parametrize("resume_with", ["dask", "local"])
def test_a_killed_coordinator_resumes_sending_each_user_once_and_counting_each_row_once(
    make_sandbox: MakeSandbox, tmp_path: Path, resume_with: str
) -> None:
    sb = make_sandbox("--latency-ms", "20")
    data, mapping = _input(tmp_path, 1000)
    state = tmp_path / "s.db"
    dask = ("--engine", "dask", "--workers", "2", "--partition-rows", "250")

    def finished_and_unfinished_partitions_recorded() -> bool:
        # Rows beyond the finished partitions' come from partitions still running.
        parts = _state_rows(state, "parts_done")
        return parts >= 1 and _state_rows(state, "row_done") > 250 * parts

    _killed_mid_run(sb, tmp_path, _command(data, mapping, state, tmp_path, *dask),
                    finished_and_unfinished_partitions_recorded,
                    "a partition recorded as finished, and rows of one running")  # fmt: skip
    recorded, parts = _state_rows(state, "row_done"), _state_rows(state, "parts_done")
    assert recorded < 1000
    shown = subprocess.run([sys.executable, "-m", "importer", "state", str(state)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert f"resumable: {recorded:,} rows already done, {parts} partitions finished" in shown.stdout

    engine = dask if resume_with == "dask" else ("--engine", "local")
    resumed = run_cli(sb, tmp_path, data, "-m", mapping, *engine, "--concurrency", "2",
                      "--state", state, timeout=300)  # fmt: skip
    assert_no_traceback(resumed)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the unfinished run" in resumed.stderr
    assert f"resumed: {recorded:,} rows were already done before" in resumed.stdout
    counts = summary(tmp_path)
    assert (counts["rows_total"], counts["rows_sent"], counts["rows_failed"]) == (1000, 1000, 0)
    # Every user arrived, each with one message id however often it was sent.
    ids = _ids_per_user(sb)
    assert len(ids) == 1000 and set(ids.values()) == {1}
    assert _state_rows(state, "row_done") == _state_rows(state, "parts_done") == 0  # finished


def test_a_run_started_on_one_machine_is_finished_on_a_cluster(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox("--latency-ms", "5")
    data, mapping = _input(tmp_path, 1000)
    state = tmp_path / "s.db"
    local = ("--engine", "local")
    _killed_mid_run(sb, tmp_path, _command(data, mapping, state, tmp_path, *local),
                    lambda: sb.stats()["stored_messages"] >= 300, "300 users stored")  # fmt: skip
    recorded = _state_rows(state, "row_done")
    assert 0 < recorded < 1000

    resumed = run_cli(sb, tmp_path, data, "-m", mapping, *DASK, "--state", state, timeout=300)
    assert_no_traceback(resumed)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {recorded:,} rows were already done before" in resumed.stdout
    counts = summary(tmp_path)
    assert (counts["rows_total"], counts["rows_sent"]) == (1000, 1000)
    ids = _ids_per_user(sb)
    assert len(ids) == 1000 and set(ids.values()) == {1}
    # The users delivered by both engines are known to --only-changed on one machine.
    requests = sb.stats()["requests"]
    again = run_cli(sb, tmp_path, data, "-m", mapping, "--state", state, "--only-changed")
    assert again.returncode == 0, again.stderr
    assert summary(tmp_path)["skipped_reasons"] == {SkipReason.UNCHANGED: 1000}
    assert sb.stats()["requests"] == requests
    runs = subprocess.run([sys.executable, "-m", "importer", "state", str(state)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "1,000 users delivered" in runs.stdout


def test_a_run_stopped_by_a_revoked_key_resumes_with_every_unsent_row_and_no_other(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    db = str(tmp_path / "metrix.db")  # one Metrix, whose key is revoked and then restored
    revoked = make_sandbox("--db", db, "--reject-key-after", "150", "--latency-ms", "2")
    data, mapping = _input(tmp_path, 400)
    state = tmp_path / "s.db"
    stopped = run_cli(revoked, tmp_path, data, "-m", mapping, *DASK, "--concurrency", "4",
                      "--state", state, timeout=300)  # fmt: skip
    assert_no_traceback(stopped)
    assert stopped.returncode == 4, stopped.stderr
    first = summary(tmp_path)
    assert first["rows_sent"] == 150 and first["rows_failed"] == 250
    assert _state_rows(state, "parts_done") < 4  # a stopped partition is not done
    revoked.stop()

    restored = make_sandbox("--db", db)
    resumed = run_cli(restored, tmp_path, data, "-m", mapping, *DASK, "--state", state,
                      timeout=300)  # fmt: skip
    assert_no_traceback(resumed)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: 150 rows were already done before" in resumed.stdout
    counts = summary(tmp_path)
    assert (counts["rows_total"], counts["rows_sent"], counts["rows_failed"]) == (400, 400, 0)
    assert restored.stats()["requests"] == 250  # only the rows not sent before
    ids = _ids_per_user(restored)
    assert len(ids) == 400 and set(ids.values()) == {1}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_partitions_writes_the_reports_and_the_run_resumes(
    make_sandbox: MakeSandbox, tmp_path: Path, signum: signal.Signals
) -> None:
    sb = make_sandbox("--latency-ms", "20")
    data, mapping = _input(tmp_path, 1000)
    state = tmp_path / "s.db"
    env = _env(sb)
    command = _command(data, mapping, state, tmp_path, *DASK)
    # A terminal's Ctrl-C reaches every process of the command, the workers too; a
    # SIGTERM (a service manager, `timeout`) reaches the coordinator alone.
    with subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as run:  # fmt: skip
        try:
            wait_for(lambda: _state_rows(state, "row_done") >= 50, "50 rows recorded")
            if signum == signal.SIGINT:
                os.killpg(run.pid, signum)
            else:
                run.send_signal(signum)
            _, err = run.communicate(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, err
    assert "Traceback" not in err and "distributed" not in err, err
    assert err.count("the run was interrupted") == 1, err  # said once, not by every worker
    counts = summary(tmp_path)  # written, and it adds up
    assert counts["rows_total"] == 1000 and counts["aborted"] == "the run was interrupted"
    read = counts["rows_valid"] + counts["rows_invalid"]
    assert counts["rows_total"] == read + counts["rows_unread"]
    assert 50 <= counts["rows_sent"] < 1000
    listed = failure_rows(tmp_path / "failures.csv")
    assert len(listed) == counts["rows_failed"] == 1000 - counts["rows_sent"]
    assert {row["_stage"] for row in listed} == {"not_sent"}
    assert len(_ids_per_user(sb)) == counts["rows_sent"]  # what it says it sent, arrived
    shown = subprocess.run([sys.executable, "-m", "importer", "state", str(state)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert "interrupted (resumable)" in shown.stdout

    resumed = run_cli(sb, tmp_path, data, "-m", mapping, *DASK, "--state", state, timeout=300)
    assert_no_traceback(resumed)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {counts['rows_sent']} rows were already done before" in resumed.stdout
    assert summary(tmp_path)["rows_sent"] == 1000  # the whole job, the first run's rows too
    ids = _ids_per_user(sb)
    assert len(ids) == 1000 and set(ids.values()) == {1}  # each user once


def test_a_stop_while_the_cluster_starts_sends_nothing_and_lists_every_row(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sb = make_sandbox()
    data, mapping = _input(tmp_path, 300)
    state = tmp_path / "s.db"
    env = _env(sb)
    command = _command(data, mapping, state, tmp_path, *DASK)
    with subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as run:  # fmt: skip
        try:
            assert run.stderr is not None
            for line in run.stderr:  # logged just before the local cluster starts
                if "partitions for 1 input" in line:
                    break
            run.send_signal(signal.SIGTERM)
            _, err = run.communicate(timeout=120)
        finally:
            run.kill()
    assert run.returncode == 130, err
    assert "Traceback" not in err, err
    assert (tmp_path / "summary.json").exists(), err
    counts = summary(tmp_path)
    assert (counts["rows_total"], counts["rows_sent"], counts["rows_failed"]) == (300, 0, 300)
    read = counts["rows_valid"] + counts["rows_invalid"]
    assert counts["rows_total"] == read + counts["rows_unread"]
    listed = failure_rows(tmp_path / "failures.csv")
    assert len(listed) == 300 and {row["_error"] for row in listed} == {"the run was interrupted"}
    assert sb.stats()["requests"] == 0
