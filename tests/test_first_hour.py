"""What a newcomer meets in the first hour: the state listing, a missing column, the
plan's reasons, a key on the command line, the failure file of a failure file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from importer.cli.app import default_failures_path
from importer.edges.state import StateStore, describe_state
from importer.errors import ExitCode
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, assert_no_traceback, cli

MAPPING = "user_id: id\nfields:\n  email: email\n"


def _export(path: Path, rows: int = 10, bad: int = 3) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "email"])
        for number in range(1, rows + 1):
            email = "broken" if number <= bad else f"u{number}@example.com"
            writer.writerow([f"u{number}", email])
    return path


@pytest.mark.e2e
def test_state_shows_the_sources_and_a_crashed_run_as_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.begin([""], "input-fp", "mapping-fp", 0, False, paths=["exports/customers.csv"])
    held = describe_state(path)
    assert "running (pid" in held  # a live run holds the lock
    assert "sources: exports/customers.csv" in held
    store.close()  # as a crash would: the kernel releases the lock, the status stays
    shown = cli("state", path).stdout
    assert "interrupted (resumable)" in shown
    assert "sources: exports/customers.csv" in shown
    assert "sources: ?" not in shown


@pytest.mark.e2e
def test_a_missing_column_names_both_causes_and_the_files_header(tmp_path: Path) -> None:
    data = _export(tmp_path / "export.csv")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields:\n  email: e_mail_address\n")
    result = cli("validate", data, "-m", mapping, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert_no_traceback(result)
    assert "Either the export changed" in result.stderr
    assert f"{data} has the header id, email" in result.stderr
    assert "or the mapping names the wrong column" in result.stderr


@pytest.mark.e2e
def test_plan_puts_a_heading_over_the_reasons(tmp_path: Path) -> None:
    data = _export(tmp_path / "export.csv")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    result = cli("plan", data, "-m", mapping, cwd=tmp_path)
    assert result.returncode == ExitCode.ROWS_FAILED, result.stderr
    lines = result.stdout.splitlines()
    heading = lines.index("  why rows are invalid (most common first):")
    assert "3" in lines[heading + 1]


@pytest.mark.e2e
def test_a_key_on_the_command_line_is_warned_about_without_showing_it(tmp_path: Path) -> None:
    flag = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--dry-run", "--no-progress",
               "--app-id", "app", "--api-key", "s3cret-key-value", cwd=tmp_path)  # fmt: skip
    assert "--api-key is visible" in flag.stderr and "METRIX_API_KEY" in flag.stderr
    assert "s3cret-key-value" not in flag.stderr + flag.stdout
    env = cli("run", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--dry-run", "--no-progress",
              cwd=tmp_path, env={"METRIX_APP_ID": "app", "METRIX_API_KEY": "k"})  # fmt: skip
    assert "visible" not in env.stderr


def test_the_failure_file_of_a_failure_file_counts_up() -> None:
    assert default_failures_path("in/customers.csv") == Path("customers.csv.failures.csv")
    assert default_failures_path("customers.csv.failures.csv") == Path(
        "customers.csv.failures-2.csv"
    )
    assert default_failures_path("x/customers.csv.failures-2.csv") == Path(
        "customers.csv.failures-3.csv"
    )


@pytest.mark.e2e
def test_validating_a_failure_file_writes_the_next_numbered_one(tmp_path: Path) -> None:
    data = _export(tmp_path / "export.csv")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    first = cli("validate", data, "-m", mapping, cwd=tmp_path)
    assert first.returncode == ExitCode.ROWS_FAILED, first.stderr
    assert (tmp_path / "export.csv.failures.csv").exists()
    second = cli("validate", "export.csv.failures.csv", "-m", mapping, cwd=tmp_path)
    assert second.returncode == ExitCode.ROWS_FAILED, second.stderr
    assert (tmp_path / "export.csv.failures-2.csv").exists()
    assert not (tmp_path / "export.csv.failures.csv.failures.csv").exists()
