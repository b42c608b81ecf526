"""Hostile outputs and stops: full disks, read-only folders, outputs that are inputs,
symlinks at output paths, truncated inputs, and the accounting on every exit.

Each test goes through the real command line against the real sandbox where a run
sends; the few that need an exact instant (a second Ctrl-C mid-listing, a disk that
fills on the n-th write) drive the runner in process.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import os
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from importer.core.messages import MappedRow
from importer.core.outcome import Outcome, Stage
from importer.edges.report import FailureWriter, Summary
from importer.edges.transport import Response
from importer.engine.run import lacking
from importer.engine.runner import Runner, SendOptions
from importer.engine.tally import Tally
from importer.errors import ExitCode, OutputError
from tests.cli_helpers import assert_no_traceback, cli
from tests.e2e import credentials, failure_rows, run_cli, stored_ids, summary
from tests.sandbox_helpers import Sandbox, start_sandbox

MAPPING = "user_id: id\nfields:\n  email: email\n"
NOTE = "x" * 300  # makes each failed row big enough to fill a small disk quickly


def write_export(path: Path, rows: int, invalid_every: int = 2) -> tuple[set[str], set[str]]:
    """id,email,note rows; every ``invalid_every``-th has a bad email. Returns the valid
    and the invalid ids."""
    valid: set[str] = set()
    invalid: set[str] = set()
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "email", "note"])
        for number in range(1, rows + 1):
            bad = number % invalid_every == 0
            user = f"u{number:05d}"
            writer.writerow([user, "not-an-email" if bad else f"{user}@example.com", NOTE])
            (invalid if bad else valid).add(user)
    return valid, invalid


def stored_users(sb: Sandbox) -> list[str]:
    """customUserId of every message the sandbox stored (one per delivered row)."""
    import sqlite3

    sb.stats()
    with sqlite3.connect(sb.db_path) as db:
        return [row[0] for row in db.execute("SELECT custom_user_id FROM messages ORDER BY seq")]


@contextmanager
def small_disk(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A real file system of ``size`` (a tmpfs); needs root and mount(8)."""
    where.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); "
                    "test_a_disk_that_fills_mid_run_in_process covers the same path")  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# --- outputs that are inputs, symlinks, unwritable folders ----------------------------


@pytest.mark.e2e
def test_a_failure_path_that_is_the_input_under_another_name_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    write_export(data, 20)
    alias = tmp_path / "alias.csv"
    os.link(data, alias)  # the same file (inode), another name
    before = data.read_bytes()
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    with start_sandbox(tmp_path) as sb:
        result = cli("run", data, "-m", mapping, "--failures", alias, "--no-progress",
                     cwd=tmp_path, env=credentials(sb))  # fmt: skip
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert "is the input file" in result.stderr
        assert stored_ids(sb) == []
    assert data.read_bytes() == before
    assert_no_traceback(result)


@pytest.mark.e2e
def test_validate_refuses_a_failure_path_that_is_the_input(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    write_export(data, 20)
    before = data.read_bytes()
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    result = cli("validate", data, "-m", mapping, "--failures", data, cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "is the input file" in result.stderr
    assert data.read_bytes() == before


@pytest.mark.e2e
def test_a_symlink_at_the_failure_path_is_replaced_never_written_through(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    _, invalid = write_export(data, 40)
    precious = tmp_path / "precious.txt"
    precious.write_text("do not touch\n")
    (tmp_path / "failures.csv").symlink_to(precious)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    with start_sandbox(tmp_path) as sb:
        result = run_cli(sb, tmp_path, data, "-m", mapping)
        assert result.returncode == ExitCode.ROWS_FAILED, result.stderr
    assert precious.read_text() == "do not touch\n"
    failures = tmp_path / "failures.csv"
    assert not failures.is_symlink()
    assert {row["id"] for row in failure_rows(failures)} == invalid


@pytest.mark.e2e
def test_an_unwritable_failure_folder_stops_the_run_before_the_first_request(
    tmp_path: Path,
) -> None:
    data = tmp_path / "export.csv"
    write_export(data, 40)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    if os.geteuid() == 0:  # root writes through permissions: use a read-only mount
        folder_context = small_disk(tmp_path / "ro", "1m", read_only=True)
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        folder_context = _same(tmp_path / "ro")
    with folder_context as folder, start_sandbox(tmp_path) as sb:
        target = folder / "failures.csv"
        result = cli("run", data, "-m", mapping, "--failures", target, "--no-progress",
                     cwd=tmp_path, env=credentials(sb))  # fmt: skip
        assert result.returncode == ExitCode.OUTPUT_FAILED, result.stderr
        assert str(target) in result.stderr
        assert "cannot write" in result.stderr
        assert stored_ids(sb) == []
    assert_no_traceback(result)


@contextmanager
def _same(path: Path) -> Iterator[Path]:
    yield path


# --- a disk that fills up mid-run -------------------------------------------------------


@pytest.mark.e2e
def test_a_disk_that_fills_mid_run_stops_cleanly_and_the_next_run_loses_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "export.csv"
    valid, invalid = write_export(data, 1200)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    state = tmp_path / "state.db"
    with small_disk(tmp_path / "disk", "160k") as disk, start_sandbox(tmp_path) as sb:
        target = disk / "failures.csv"
        args = (data, "-m", mapping, "--state", state, "--failures", target, "--summary-json",
                tmp_path / "summary.json", "--no-progress", "-c", "4")  # fmt: skip
        first = cli("run", *args, cwd=tmp_path, env=credentials(sb))
        assert first.returncode == ExitCode.OUTPUT_FAILED, first.stderr
        assert_no_traceback(first)
        assert str(target) in first.stderr
        assert "disk is full" in first.stderr
        assert "Free some space" in first.stderr
        assert "--state" in first.stderr and "continues where this run stopped" in first.stderr
        stopped = summary(tmp_path)
        assert stopped["aborted"]
        sent_first = stored_users(sb)
        # Requests cut off in flight may have arrived: they count as not sent, and the
        # next run sends them again with the same message id (stored once).
        assert stopped["rows_sent"] <= len(sent_first) < len(valid)
        # Free the space and run the same command again.
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        second = cli("run", *args, cwd=tmp_path, env=credentials(sb))
        assert second.returncode == ExitCode.ROWS_FAILED, second.stderr
        users = stored_users(sb)
        assert set(users) == valid
        assert len(users) == len(valid)  # nothing sent twice
        assert {row["id"] for row in failure_rows(target)} == invalid
        assert not (disk / "failures.csv.partial").exists()
        done = summary(tmp_path)
        assert done["rows_total"] == 1200 == done["rows_valid"] + done["rows_invalid"]


@pytest.mark.e2e
def test_a_state_file_whose_disk_fills_keeps_what_was_committed(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    valid, _ = write_export(data, 8000, invalid_every=10**9)  # every row valid
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    with small_disk(tmp_path / "disk", "300k") as disk, start_sandbox(tmp_path) as sb:
        state = disk / "state.db"
        args = (data, "-m", mapping, "--state", state, "--failures", tmp_path / "failures.csv",
                "--summary-json", tmp_path / "summary.json", "--no-progress")  # fmt: skip
        first = cli("run", *args, cwd=tmp_path, env=credentials(sb))
        assert first.returncode == ExitCode.OUTPUT_FAILED, first.stderr
        assert_no_traceback(first)
        assert f"{state}: cannot write the state file: the disk is full" in first.stderr
        stopped = summary(tmp_path)
        # The failure CSV is on another disk: sent plus listed is the whole input.
        assert stopped["rows_sent"] + len(failure_rows(tmp_path / "failures.csv")) == 8000
        # The end could not be recorded either: a run nobody holds is shown as resumable.
        assert "interrupted (resumable)" in cli("state", state).stdout
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        second = cli("run", *args, cwd=tmp_path, env=credentials(sb))
        assert second.returncode == ExitCode.OK, second.stderr
        assert "resuming" in second.stderr
        assert set(stored_users(sb)) == valid


class FullFile(io.StringIO):
    """A file on a disk with room for ``room`` characters."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)


class FillingWriter(FailureWriter):
    def _open(self) -> None:
        super()._open()
        assert self._file is not None
        self._file.close()
        self._file = FullFile(2000)
        self._writer = csv.writer(self._file)


class AlwaysOk:
    async def send(self, body: bytes) -> Response:
        await asyncio.sleep(0)
        return Response(200)


def _mixed(count: int) -> Iterator[Outcome]:
    for row in range(1, count + 1):
        if row % 2:
            yield Outcome(row, [str(row)], MappedRow(f"u{row}", 1, {"email": f"{row}@x.co"}))
        else:
            yield Outcome(row, [str(row)], None, Stage.VALIDATE, "bad email", ("bad email",))


def test_a_disk_that_fills_mid_run_in_process(tmp_path: Path) -> None:
    writer = FillingWriter(tmp_path / "f.csv", ["id"])
    tally = Tally(Summary(mode="run"), writer)
    options = SendOptions(endpoint="http://127.0.0.1/", app_id="a", api_key="k", concurrency=2)
    runner = Runner(options, tally, AlwaysOk())
    rest: Iterator[tuple[str, int, list[str], str]] = (
        ("", r, [str(r)], "") for r in range(5001, 6001)
    )

    async def go() -> None:
        await asyncio.wait_for(runner.run(_mixed(5000), rest), timeout=30)

    with pytest.raises(OutputError, match="disk is full") as caught:
        asyncio.run(go())
    assert str(tmp_path / "f.csv") in str(caught.value)
    assert runner.abort is not None
    assert tally.unlisted > 0
    assert runner.missing_from is not None  # the unread rows could not be listed
    assert "could not be written" in lacking(runner)
    assert tally.summary.rows_sent < 2500  # the run stopped instead of carrying on


# --- the accounting promise on every exit -------------------------------------------------


@pytest.mark.e2e
def test_an_aborted_run_keeps_both_summary_identities_and_lists_every_row(
    tmp_path: Path,
) -> None:
    data = tmp_path / "export.csv"
    write_export(data, 3000, invalid_every=7)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    with start_sandbox(tmp_path) as sb:
        env = {**credentials(sb), "METRIX_API_KEY": "wrong-key"}
        result = cli("run", data, "-m", mapping, "--no-progress", "-c", "1",
                     "--failures", tmp_path / "failures.csv", "--summary-json",
                     tmp_path / "summary.json", cwd=tmp_path, env=env)  # fmt: skip
        assert result.returncode == ExitCode.ABORTED, result.stderr
    data_json = summary(tmp_path)
    assert data_json["rows_unread"] > 0
    assert data_json["rows_total"] == 3000
    assert data_json["rows_total"] == (
        data_json["rows_valid"] + data_json["rows_invalid"] + data_json["rows_unread"]
    )
    listed = failure_rows(tmp_path / "failures.csv")
    assert len(listed) + data_json["rows_sent"] == 3000


def test_a_second_ctrl_c_during_the_listing_says_exactly_which_rows_are_missing(
    tmp_path: Path,
) -> None:
    tally = Tally(Summary(mode="run"), FailureWriter(tmp_path / "f.csv", ["id"]))
    options = SendOptions(dry_run=True)
    runner = Runner(options, tally, None)

    def rest() -> Iterator[tuple[str, int, list[str], str]]:
        for row in range(1, 10_001):
            if row == 4001:
                runner.interrupt()  # the second Ctrl-C arrives while listing
            yield "", row, [str(row)], ""

    runner.interrupt()  # the first Ctrl-C: stop before reading anything
    asyncio.run(runner.run(iter(()), rest()))
    tally.failures.close() if tally.failures else None
    assert runner.missing_from == ("", 4001)
    assert "every row from row 4001 on" in lacking(runner)
    listed = failure_rows(tmp_path / "f.csv")
    assert [int(r["_row"]) for r in listed] == list(range(1, 4001))
    assert tally.summary.rows_total == 4000 == tally.summary.rows_unread


# --- an input that ends early while rows are being sent -----------------------------------


def _truncated_workbook(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Customers")
    sheet.append(["id", "email", "dob"])
    for number in range(1, rows + 1):
        sheet.append([f"u{number:05d}", f"u{number}@example.com", "01/02/1990"])
    whole = path.with_suffix(".whole.xlsx")
    book.save(whole)
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            content = src.read(info)
            if info.filename.startswith("xl/worksheets/"):
                text = content.decode()
                # A dimension lets the streaming reader start without a full scan; the
                # sheet's XML is then cut in the middle, as a broken copy would be.
                text = text.replace("<sheetData>", f'<dimension ref="A1:C{rows + 1}"/><sheetData>')
                content = text.encode()[: len(text) // 2]
            out.writestr(info, content)


@pytest.mark.e2e
def test_a_truncated_sheet_read_while_sending_is_accounted_for(
    tmp_path: Path,
) -> None:
    book = tmp_path / "export.xlsx"
    _truncated_workbook(book, 3000)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        'user_id: id\ntime: {column: dob, format: "%d/%m/%Y"}\nfields:\n  email: email\n'
    )
    with start_sandbox(tmp_path) as sb:
        env = {**credentials(sb), "METRIX_EXCEL_READER": "streaming"}
        result = cli("run", book, "-m", mapping, "--duplicates", "all", "--no-progress",
                     "--failures", tmp_path / "failures.csv", "--summary-json",
                     tmp_path / "summary.json", cwd=tmp_path, env=env)  # fmt: skip
        # The reader turns the cut into one failure row "from here on"; the rows before
        # it were sent, and the summary accounts for both.
        assert result.returncode == ExitCode.ROWS_FAILED, result.stderr
        assert_no_traceback(result)
        data = summary(tmp_path)
        assert 0 < data["rows_sent"] == len(stored_ids(sb))
        listed = failure_rows(tmp_path / "failures.csv")
        assert len(listed) == data["rows_failed"] == 1
        assert "cut short" in listed[0]["_error"]


def test_a_reader_error_part_way_becomes_exit_3_naming_the_last_row() -> None:
    from xml.etree.ElementTree import ParseError

    from importer.engine.reading import guarded
    from importer.errors import SourceError

    def records() -> Iterator[tuple[int, list[str], str | None]]:
        for row in (1, 2, 3):
            yield row, [str(row)], None
        raise ParseError("unclosed token: line 1, column 12345")

    read: list[int] = []
    with pytest.raises(SourceError, match="after data row 3: it is truncated or damaged") as err:
        for row, _, _ in guarded(records(), "export.xlsx"):
            read.append(row)
    assert read == [1, 2, 3]
    assert err.value.exit_code == ExitCode.INPUT_UNREADABLE


def test_ctrl_c_before_the_first_request_says_nothing_was_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importer.core.config import load_mapping
    from importer.engine.inputs import Job
    from importer.engine.run import Outputs, run_job
    from importer.errors import Interrupted

    data = tmp_path / "export.csv"
    write_export(data, 20)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)

    def interrupted(self: Job, policy: str, progress: bool = True) -> None:
        raise KeyboardInterrupt  # Ctrl-C during the duplicate check

    monkeypatch.setattr(Job, "duplicate_plan", interrupted)
    options = SendOptions(endpoint="http://127.0.0.1:9/", app_id="a", api_key="k")
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(Interrupted, match="this run sent nothing") as caught:
            run_job([str(data)], load_mapping(str(mapping)), options,
                    Outputs(failures=tmp_path / "f.csv", progress=False))  # fmt: skip
    finally:  # the run ignores signals from its stop on: give pytest its own back
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert caught.value.exit_code == ExitCode.INTERRUPTED


@pytest.mark.e2e
def test_init_mapping_never_writes_its_draft_over_the_input(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    write_export(data, 20)
    before = data.read_bytes()
    result = cli("init-mapping", data, "-o", data, "--force", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "is the input file" in result.stderr
    assert data.read_bytes() == before


def test_sigterm_before_the_first_request_stops_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importer.core.config import load_mapping
    from importer.engine.inputs import Job
    from importer.engine.run import Outputs, run_job
    from importer.errors import Interrupted

    data = tmp_path / "export.csv"
    write_export(data, 20)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)

    def terminated(self: Job, policy: str, progress: bool = True) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. systemd stopping the job

    monkeypatch.setattr(Job, "duplicate_plan", terminated)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        options = SendOptions(endpoint="http://127.0.0.1:9/", app_id="a", api_key="k")
        with pytest.raises(Interrupted, match="this run sent nothing"):
            run_job([str(data)], load_mapping(str(mapping)), options,
                    Outputs(failures=tmp_path / "f.csv", progress=False))  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
