"""The state's row ledger: runs of skipped rows are one entry each, and a resumed run
knows every row the stopped one finished, however it was recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from importer.core.outcome import SkipReason, Stage
from importer.core.rowset import RowSet
from importer.edges.state import StateStore, describe_state

UNCHANGED, DUPLICATE = str(SkipReason.UNCHANGED), str(SkipReason.DUPLICATE)


def begin(path: Path) -> StateStore:
    store = StateStore(path)
    store.begin(["a.csv", "b.csv"], "input", "mapping", 1_700_000_000_000, restart=False)
    return store


def spans(path: Path) -> list[tuple[int, int, int, str]]:
    with sqlite3.connect(path) as db:
        query = "SELECT source, first, last, status FROM skipped_spans ORDER BY source, first"
        return list(db.execute(query))


def test_a_nightly_run_of_unchanged_rows_records_spans_and_resumes_from_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = begin(path)
    for row in range(1, 10_001):
        if row == 4000:
            store.record_failed("a.csv", row, Stage.VALIDATE, "bad", ["x"], ["email: bad"])
        elif row in (7000, 7001):
            store.record_sent("a.csv", row, f"u{row}", b"f" * 8, b"r" * 8)
        elif row > 9000:
            store.record_skipped("a.csv", row, DUPLICATE)
        else:
            store.record_skipped("a.csv", row, UNCHANGED)
    for row in range(1, 501):
        store.record_skipped("b.csv", row, UNCHANGED)
    store.checkpoint()
    assert spans(path) == [
        (0, 1, 3999, "u"), (0, 4001, 6999, "u"), (0, 7002, 9000, "u"), (0, 9001, 10_000, "d"),
        (1, 1, 500, "u"),
    ]  # fmt: skip
    store.close()  # killed: the run never finished

    resumed = begin(path)
    assert resumed.run is not None and resumed.run.resumed
    done = resumed.restored()
    assert (done.sent, done.failed) == (2, 1)
    assert done.skipped == {UNCHANGED: 8997 + 500, DUPLICATE: 1000}
    assert done.total == 10_500
    assert all(resumed.is_done("a.csv", row) for row in range(1, 10_001))
    assert not resumed.is_done("a.csv", 10_001) and not resumed.is_done("b.csv", 501)
    assert "10,500 rows already done" in describe_state(path)
    resumed.finish("finished", {})
    assert spans(path) == []  # a finished run forgets its rows
    resumed.close()


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=12))
def test_a_range_adds_exactly_its_rows(ranges: list[tuple[int, int]]) -> None:
    rows, expected = RowSet(), set[int]()
    for first, length in ranges:
        rows.add_range(first, first + length - 1)  # length 0: an empty range
        expected.update(range(first, first + length))
    assert len(rows) == len(expected)
    assert {row for row in range(400) if row in rows} == expected


def test_rows_recorded_twice_in_other_spans_count_once(tmp_path: Path) -> None:
    # A Dask partition run again after its worker died reports its rows again, cut at
    # other rows; a version from before spans, resuming, writes skipped rows one by one.
    path = tmp_path / "state.db"
    store = begin(path)
    for first, last in ((1, 37), (38, 80), (1, 60), (61, 100)):
        for row in range(first, last + 1):
            store.record_skipped("a.csv", row, UNCHANGED)
        store.checkpoint()
    assert len(spans(path)) >= 3  # spans overlap (one replaced another starting at row 1)
    store.close()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO row_done VALUES (1, 0, ?, 'u')", [(row,) for row in range(90, 111)]
        )

    resumed = begin(path)
    done = resumed.restored()
    assert done.skipped == {UNCHANGED: 110} and done.total == 110
    assert "110 rows already done" in describe_state(path)
    assert all(resumed.is_done("a.csv", row) for row in range(1, 111))
    resumed.close()
