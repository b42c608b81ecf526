"""The duplicate check's result, remembered in the state for inputs whose bytes have not
changed: reused exactly, and never for a file that differs by one byte."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from importer.core.config import load_mapping
from importer.edges.duplicates import DuplicatePlan, plan_from_text, plan_to_text
from importer.edges.state import StateStore
from importer.engine.inputs import Job, expand_inputs
from importer.engine.run import duplicate_plan

HEADER = ["customer_id", "first_name", "email", "updated_at"]


def write_rows(path: Path, ids: list[str]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for index, user in enumerate(ids, start=1):
            writer.writerow([user, f"Name{index}", f"u{index}@example.com", "2024-01-02 03:04:05"])
    return path


MAPPING_TEXT = """user_id: customer_id
time: {column: updated_at, format: "%Y-%m-%d %H:%M:%S"}
fields:
  firstName: first_name
  email: email
"""


def job_for(path: Path, tmp_path: Path) -> Job:
    mapping_file = tmp_path / "mapping.yaml"
    if not mapping_file.exists():
        mapping_file.write_text(MAPPING_TEXT, encoding="utf-8")
    mapping = load_mapping(mapping_file)
    return Job(expand_inputs([str(path)], mapping), mapping, 0)


def shape(plan: DuplicatePlan) -> tuple[object, ...]:
    """Everything a plan decides, comparable."""
    skipped = {
        label: sorted(r for r in range(200) if r in rows) for label, rows in plan.skip.items()
    }
    return (plan.as_dict(), plan.rows, plan.duplicate_rows, skipped, plan.error)


class CountingJob:
    """Counts the id passes a Job makes (the real pass runs)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.passes = 0
        original = job.duplicate_plan

        def counted(policy: str, progress: bool = True) -> DuplicatePlan:
            self.passes += 1
            return original(policy, progress=False)

        job.duplicate_plan = counted  # type: ignore[method-assign,assignment]


IDS = ["A", "B", "A", "C", "B", "A", "D", "E"]  # A on 3 rows, B on 2


@pytest.mark.parametrize("policy", ["last", "first", "error"])
def test_an_unchanged_input_reuses_the_check_and_gets_the_same_plan(
    tmp_path: Path, policy: str
) -> None:
    data = write_rows(tmp_path / "export.csv", IDS)
    fresh = job_for(data, tmp_path).duplicate_plan(policy, progress=False)
    assert fresh.duplicate_users == 2 and fresh.duplicate_rows == (5 if policy == "error" else 3)
    state = StateStore(tmp_path / "state.db")
    try:
        first = CountingJob(job_for(data, tmp_path))
        assert shape(duplicate_plan(first.job, state, policy, False)) == shape(fresh)
        assert first.passes == 1
        again = CountingJob(job_for(data, tmp_path))
        assert shape(duplicate_plan(again.job, state, policy, False)) == shape(fresh)
        assert again.passes == 0  # read once, not twice
    finally:
        state.close()


def test_one_byte_changed_with_the_same_size_and_time_is_checked_again(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "export.csv", IDS)
    state = StateStore(tmp_path / "state.db")
    try:
        first = CountingJob(job_for(data, tmp_path))
        before = duplicate_plan(first.job, state, "last", False)
        assert before.duplicate_users == 2
        # Row 7's "D" becomes "E": same size, and the modification time is put back.
        info = data.stat()
        text = data.read_bytes()
        at = text.index(b"\nD,") + 1
        data.write_bytes(text[:at] + b"E" + text[at + 1 :])
        os.utime(data, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert (data.stat().st_size, data.stat().st_mtime_ns) == (info.st_size, info.st_mtime_ns)
        again = CountingJob(job_for(data, tmp_path))
        after = duplicate_plan(again.job, state, "last", False)
        assert again.passes == 1
        assert after.duplicate_users == 3  # A, B and now E
        assert shape(after) == shape(job_for(data, tmp_path).duplicate_plan("last", False))
    finally:
        state.close()


def test_another_policy_or_mapping_is_checked_again(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "export.csv", IDS)
    state = StateStore(tmp_path / "state.db")
    try:
        duplicate_plan(job_for(data, tmp_path), state, "last", False)
        other = CountingJob(job_for(data, tmp_path))
        assert duplicate_plan(other.job, state, "first", False).policy == "first"
        assert other.passes == 1
        (tmp_path / "mapping.yaml").write_text(
            MAPPING_TEXT.replace("customer_id", "email"), encoding="utf-8"
        )
        by_email = CountingJob(job_for(data, tmp_path))
        assert duplicate_plan(by_email.job, state, "first", False).duplicate_users == 0
        assert by_email.passes == 1
    finally:
        state.close()


def test_without_state_or_with_all_nothing_is_remembered(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "export.csv", IDS)
    for _ in range(2):
        counted = CountingJob(job_for(data, tmp_path))
        duplicate_plan(counted.job, None, "last", False)
        assert counted.passes == 1
    state = StateStore(tmp_path / "state.db")
    try:
        assert duplicate_plan(job_for(data, tmp_path), state, "all", False).duplicate_users == 0
        assert state.db.execute("SELECT COUNT(*) FROM id_pass").fetchone()[0] == 0
    finally:
        state.close()


def test_a_damaged_remembered_plan_is_ignored(tmp_path: Path) -> None:
    assert plan_from_text("not json") is None
    assert plan_from_text('{"policy": "last"}') is None
    assert plan_from_text('{"policy": "last", "skip": {"": "***"}, "error": {}, "rows": 1, '
                          '"users": 0, "duplicate_rows": 0, "examples": []}') is None  # fmt: skip
    data = write_rows(tmp_path / "export.csv", IDS)
    state = StateStore(tmp_path / "state.db")
    try:
        job = job_for(data, tmp_path)
        key = job.id_pass_key("last")
        assert key is not None
        state.remember_plan(key, "{broken")
        counted = CountingJob(job)
        assert duplicate_plan(counted.job, state, "last", False).duplicate_users == 2
        assert counted.passes == 1
    finally:
        state.close()


def test_plans_survive_text(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "export.csv", IDS * 30)
    for policy in ("last", "first", "error"):
        plan = job_for(data, tmp_path).duplicate_plan(policy, progress=False)
        again = plan_from_text(plan_to_text(plan))
        assert again is not None and shape(again) == shape(plan)


def test_the_key_covers_every_byte(tmp_path: Path) -> None:
    """The key changes with any byte of the input, even past the first and last MiB."""
    data = write_rows(tmp_path / "big.csv", [f"C{i:07d}" for i in range(60_000)])
    assert data.stat().st_size > 2 * 1024 * 1024
    job = job_for(data, tmp_path)
    before = job.id_pass_key("last")
    assert before is not None and before == job.id_pass_key("last")
    text = bytearray(data.read_bytes())
    middle = text.index(b"C0030000")
    text[middle + 1 : middle + 2] = b"X"
    data.write_bytes(bytes(text))
    assert job.id_pass_key("last") != before
