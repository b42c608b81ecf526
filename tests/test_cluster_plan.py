"""The coordinator's side of --engine dask without a cluster: partitions planned from
the duplicate check's read, and each partition run by the worker function in-process."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from importer.core.config import load_mapping
from importer.edges.duplicates import no_plan
from importer.engine.cluster import Piece, _for_label, _plain_local_file, _Planner, run_piece
from importer.engine.inputs import Input, Job, expand_inputs
from importer.engine.runner import SendOptions
from importer.engine.sending import RetryPolicy


def _job(tmp_path: Path) -> Job:
    rows = "".join(f'u{i % 90},"line\nbreak",{i}\n' for i in range(100))  # 10 users twice
    data = tmp_path / "in.csv"
    data.write_text("id,note,n\n" + rows + "\n,empty id,1\n", encoding="utf-8")
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text("user_id: id\ncustom: {note: note, n: {column: n, type: int}}\n")
    mapping = load_mapping(mapping_file)
    return Job(expand_inputs([str(data)], mapping), mapping, 1_700_000_000_000)


@pytest.mark.parametrize("policy", ["last", "all"])
def test_partitions_are_planned_from_the_read_the_duplicate_check_makes(
    tmp_path: Path, policy: str
) -> None:
    job = _job(tmp_path)
    planner = _Planner(job, 25)
    job.duplicate_plan(policy, False, planner.open)
    assert (policy == "last") == bool(planner.read)  # "all" has no duplicate check
    pieces = list(planner.pieces())
    assert [piece.index for piece in pieces] == [0, 1, 2, 3, 4]
    plan = pieces[0].plan
    assert plan is not None and [part.rows for part in plan.parts] == [0, 25, 50, 75, 100]


def test_the_partitions_together_count_what_one_run_counts(tmp_path: Path) -> None:
    job = _job(tmp_path)
    planner = _Planner(job, 25)
    duplicates = job.duplicate_plan("last", False, planner.open)
    options = SendOptions(dry_run=True)
    totals = {"rows_total": 0, "rows_valid": 0, "rows_skipped": 0, "rows_failed": 0}
    failed_rows: list[int] = []
    skipped: Counter[str] = Counter()
    for piece in planner.pieces():
        label = piece.item.label
        result = run_piece(piece, job.mapping, options, RetryPolicy(), job.run_time_ms,
                           _for_label(duplicates, label))  # fmt: skip
        for key in totals:
            totals[key] += getattr(result.summary, key)
        failed_rows += [row for row, *_ in result.failures]
        skipped.update(result.summary.skipped)
    # 101 records (the blank line is not one): 10 users' first rows skipped as
    # duplicates, the row without an id failed, the rest valid (and, in a dry run, skipped).
    assert totals == {"rows_total": 101, "rows_valid": 100, "rows_skipped": 100,
                      "rows_failed": 1}  # fmt: skip
    assert skipped["duplicate"] == 10
    assert failed_rows == [102]  # the input's own row number, after the blank row 101


def test_a_whole_input_is_one_piece(tmp_path: Path) -> None:
    job = _job(tmp_path)
    piece = Piece(job.inputs[0])
    result = run_piece(piece, job.mapping, SendOptions(dry_run=True), RetryPolicy(),
                       job.run_time_ms, no_plan("all"))  # fmt: skip
    assert result.summary.rows_total == 101 and result.summary.blank_rows == 1


def test_duplicates_error_fails_every_row_of_a_duplicated_user_across_partitions(
    tmp_path: Path,
) -> None:
    job = _job(tmp_path)
    planner = _Planner(job, 25)
    duplicates = job.duplicate_plan("error", False, planner.open)
    failed: list[int] = []
    for piece in planner.pieces():
        result = run_piece(piece, job.mapping, SendOptions(dry_run=True), RetryPolicy(),
                           job.run_time_ms, _for_label(duplicates, piece.item.label))  # fmt: skip
        failed += [row for row, _, error, _, _ in result.failures if "--duplicates error" in error]
    # Users u0..u9 are on rows 1-10 and 91-100: the first and the last partition.
    assert sorted(failed) == [*range(1, 11), *range(91, 101)]


def test_the_api_key_is_not_in_the_options_a_worker_gets_logged_with() -> None:
    # Dask logs a failed task's arguments; the options are one of them.
    options = SendOptions(endpoint="https://x.example/", app_id="app", api_key="s3cr3t-key")
    assert "s3cr3t-key" not in repr(options) and "app" in repr(options)
    assert options.api_key == "s3cr3t-key"


@pytest.mark.parametrize(
    ("name", "data", "split"),
    [
        ("in.csv", b"id\n1\n", True),
        ("in.txt", b"id\n1\n", True),
        ("in.jsonl", b'{"id": 1}\n', False),
        ("in.parquet", b"PAR1", False),
        ("in.xlsx", b"PK\x03\x04", False),
        ("csvs.zip", b"PK\x03\x04", False),
    ],
)
def test_only_a_plain_local_file_is_planned_for_splitting(
    tmp_path: Path, name: str, data: bytes, split: bool
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert _plain_local_file(Input("", str(path))) is split
    assert not _plain_local_file(Input("", "s3://bucket/in.csv"))
    assert not _plain_local_file(Input("", str(path), sheet="all"))


def _parquet_job(tmp_path: Path, rows_per_group: int) -> Job:
    import pyarrow as pa  # the parquet extra, installed for the tests
    import pyarrow.parquet as pq

    ids = [f"u{i % 90}" for i in range(100)] + ["", ""]  # 10 users twice, a blank row
    notes = ["x"] * 100 + ["", "no id"]
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ids, "note": notes}), data, row_group_size=rows_per_group)
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text("user_id: id\ncustom: {note: note}\n")
    mapping = load_mapping(mapping_file)
    return Job(expand_inputs([str(data)], mapping), mapping, 1_700_000_000_000)


def test_a_parquet_file_is_split_by_row_groups_numbered_as_the_files_rows(
    tmp_path: Path,
) -> None:
    job = _parquet_job(tmp_path, 10)  # 11 row groups: 10 of 10 rows, 1 of 2
    planner = _Planner(job, 25)
    duplicates = job.duplicate_plan("last", False, planner.open)
    pieces = list(planner.pieces())
    spans = [(p.groups.start, p.groups.end, p.groups.first) for p in pieces if p.groups]
    assert spans == [(0, 3, 1), (3, 6, 31), (6, 9, 61), (9, 11, 91)]
    assert "row groups 4-6, rows 31-60" in pieces[1].describe()
    totals: Counter[str] = Counter()
    failed: list[int] = []
    for piece in pieces:
        result = run_piece(piece, job.mapping, SendOptions(dry_run=True), RetryPolicy(),
                           job.run_time_ms, _for_label(duplicates, piece.item.label))  # fmt: skip
        totals.update(rows=result.summary.rows_total, blank=result.summary.blank_rows,
                      duplicate=result.summary.skipped["duplicate"])  # fmt: skip
        failed += [row for row, *_ in result.failures]
    assert totals == {"rows": 101, "blank": 1, "duplicate": 10}
    assert failed == [102]  # the file's own row number, after the blank row 101


def test_a_parquet_file_of_one_row_group_is_one_piece(tmp_path: Path) -> None:
    job = _parquet_job(tmp_path, 1_000)
    planner = _Planner(job, 25)
    job.duplicate_plan("last", False, planner.open)
    (piece,) = planner.pieces()
    assert piece.groups is None and piece.describe().endswith("(whole)")
