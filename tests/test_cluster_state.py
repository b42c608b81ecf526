"""The state of a Dask run, without a cluster: what the coordinator ships to a
partition, what a worker keeps and reports, what the coordinator records."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.core.config import Mapping
from importer.core.outcome import SkipReason, Stage
from importer.core.rowset import RowSet
from importer.edges.report import FailureWriter, Summary
from importer.engine.cluster import _PieceJob, _Planner, piece_users
from importer.engine.cluster_state import ClusterState, PieceLedger, PieceState, Settled
from importer.engine.inputs import Job, expand_inputs

MAPPING = Mapping.from_dict({"user_id": "id", "fields": {"email": "email"}})


def _state(tmp_path: Path, restart: bool = False) -> ClusterState:
    data = tmp_path / "in.csv"
    if not data.exists():
        data.write_text("id,email\n" + "".join(f"u{i},u{i}@x.io\n" for i in range(1, 11)))
    return ClusterState(str(tmp_path / "s.db"), expand_inputs([str(data)], MAPPING), MAPPING,
                        restart)  # fmt: skip


def _ledger_of_five(state: PieceState) -> PieceLedger:
    ledger = PieceLedger(state)
    for row in (1, 2, 3):
        ledger.record_sent("", row, f"u{row}", b"fp%d" % row, b"raw%d" % row)
    ledger.record_failed("", 4, Stage.VALIDATE, "bad email", ["u4", "x"], ["email: bad"])
    ledger.record_skipped("", 5, SkipReason.DUPLICATE)
    return ledger


def test_a_worker_reports_each_settled_row_once_and_keeps_only_what_is_unreported() -> None:
    ledger = _ledger_of_five(PieceState())
    batch, marks = ledger.unreported()
    assert [len(part) for part in batch] == [3, 1, 1]
    ledger.record_sent("", 6, "u6", b"fp6", b"raw6")  # settled while the report was made
    ledger.reported(marks)
    assert ledger.settled == Settled([("", 6, "u6", b"fp6", b"raw6")], [], [])
    assert [len(part) for part in ledger.unreported()[0]] == [1, 0, 0]


def test_a_partition_answers_only_changed_and_resume_from_what_it_was_shipped() -> None:
    state = PieceState(known={"u1": (b"fp1", b"raw1"), "u2": (b"old", b"raw2")})
    ledger = PieceLedger(state)
    assert ledger.unchanged_users([("u1", b"fp1"), ("u2", b"fp2"), ("u3", b"fp3")]) == {"u1"}
    assert state.unchanged_raw([("u1", b"raw1"), ("u2", b"raw2"), ("u3", b"raw3")]) == {
        "u1",
        "u2",
    }
    assert not state.has_done and not ledger.is_done("", 1)


def test_the_coordinator_resumes_from_recorded_rows_and_finished_partitions(
    tmp_path: Path,
) -> None:
    first = _state(tmp_path)
    assert not first.resumed
    ledger = _ledger_of_five(PieceState())
    first.record("part 1", ledger.settled, blank_rows=2, complete=True)
    running = PieceLedger(PieceState())
    running.record_sent("", 7, "u7", b"fp7", b"raw7")
    running.record_failed("", 8, Stage.NOT_SENT, "stopped", ["u8", "u8@x.io"], ["not sent"])
    first.record("part 2", running.settled, blank_rows=0, complete=False)
    run_time = first.run_time_ms
    first.close()  # as if killed: the run never finished

    again = _state(tmp_path)
    try:
        assert again.resumed and again.run_time_ms == run_time  # the same message ids
        assert again.parts == {"part 1": 2}  # part 2 is read again
        shipped = again.piece("", 6, 10, ["u7", "u8", "u9"])
        assert shipped.done is not None and len(shipped.done) == 1  # row 7; 8 was not sent
        assert shipped.skip("", 7) and not shipped.skip("", 8) and not shipped.skip("", 1)
        assert shipped.known == {"u7": (b"fp7", b"raw7")}
        summary = Summary(mode="run")
        failures = FailureWriter(tmp_path / "f.csv", ["id", "email"])
        notes = again.restore(summary, failures)
        failures.close()
        assert (summary.rows_total, summary.rows_sent, summary.rows_failed) == (6, 4, 1)
        assert summary.skipped == {SkipReason.DUPLICATE: 1} and summary.blank_rows == 2
        assert notes == [
            "resumed: 6 rows were already done before; finished partitions not read again: 1"
        ]
        assert "bad email" in (tmp_path / "f.csv").read_text(encoding="utf-8-sig")
    finally:
        again.close()


@pytest.mark.parametrize("every", [1, 3, 7, 25])
def test_a_partitions_rows_lie_in_the_span_its_shipped_state_covers(
    tmp_path: Path, every: int
) -> None:
    """Blank lines (which use up row numbers), quoted fields over several lines and an
    unclosed quote: every row a partition reads lies within ``Piece.rows()``, so the
    done rows shipped to it are all it needs, and ``piece_users`` names its users."""
    lines = []
    for i in range(1, 61):
        lines.append(f'u{i},"two\nlines"\n' if i % 7 == 0 else f"u{i},x{i}\n")
        if i % 11 == 0:
            lines.append("\n,\n")  # blank rows
    lines.append('u61,"never closed\nu62,y\n')
    data = tmp_path / "in.csv"
    data.write_text("id,note\n" + "".join(lines), encoding="utf-8")
    mapping = Mapping.from_dict({"user_id": "id", "custom": {"note": "note"}})
    job = Job(expand_inputs([str(data)], mapping), mapping, 1_700_000_000_000)
    planner = _Planner(job, every)
    job.duplicate_plan("last", False, planner.open)
    pieces = list(planner.pieces())
    assert len(pieces) > 1
    seen: list[int] = []
    for piece in pieces:
        first, last = piece.rows()
        records = list(_PieceJob(piece, mapping, 0).open(piece.item).records)
        rows = [row for row, _, _ in records]
        assert all(first <= row and (last is None or row <= last) for row in rows), piece
        seen += rows
        done = RowSet()
        for row in rows[::2]:  # every other row was done before a resume
            done.add(row)
        users = piece_users(piece, mapping, 0, PieceState(done.between(first, last)))
        wanted = {cells[0] for row, cells, problem in records
                  if problem is None and row not in done and cells[0]}  # fmt: skip
        assert users == sorted(wanted)
    whole = [row for row, _, _ in Job(job.inputs, mapping, 0).open(job.inputs[0]).records]
    assert seen == whole
