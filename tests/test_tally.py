"""Row accounting: whatever happens to the rows, every one is sent, failed or skipped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from importer.core.messages import MappedRow
from importer.core.outcome import Fate, Outcome, SkipReason, Stage, skipped
from importer.edges.report import FailureWriter, Summary
from importer.edges.state import SKIP_REASONS, Restored
from importer.engine.tally import NoLedger, Tally


class CountingLedger(NoLedger):
    """Remembers how often each row was settled."""

    def __init__(self) -> None:
        self.settled: Counter[tuple[str, int]] = Counter()

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None:
        self.settled[source, row] += 1

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        self.settled[source, row] += 1

    def record_skipped(self, source: str, row: int, reason: str) -> None:
        self.settled[source, row] += 1


class CountingFailures(FailureWriter):
    def __init__(self) -> None:
        super().__init__(Path("unused.csv"), ["id"])
        self.rows: list[tuple[int | str, str]] = []

    def write(
        self, row: int | str, stage: str, error: str, cells: list[str], source: str = ""
    ) -> None:
        self.rows.append((row, stage))


READ = st.sampled_from(["valid", "invalid", "unreadable", "duplicate", "unchanged"])
# What becomes of a valid row after reading.
SETTLE = st.sampled_from(["sent", "rejected", "not_sent", "dry_run", "unchanged"])


def _outcome(row: int, kind: str) -> Outcome:
    cells = [str(row)]
    if kind == "valid":
        return Outcome(row, cells, MappedRow(f"u{row}", 1, {}), source="a")
    if kind == "invalid":
        return Outcome(row, cells, None, Stage.VALIDATE, "bad", ("bad email",), "a")
    if kind == "unreadable":
        return Outcome(row, cells, None, Stage.READ, "line 2: bad", ("unreadable",), "a")
    reason = SkipReason.DUPLICATE if kind == "duplicate" else SkipReason.UNCHANGED
    return skipped(row, cells, reason, "a")


def _settle(tally: Tally, outcome: Outcome, how: str) -> None:
    source, row = outcome.source, outcome.row
    if how == "sent":
        tally.sent(source, row, f"u{row}", b"f", b"r")
    elif how == "rejected":
        tally.failed(source, row, Stage.SEND, "400", outcome.cells, ("rejected",))
    elif how == "not_sent":
        tally.not_sent(source, row, outcome.cells, "the run was interrupted")
    else:
        reason = SkipReason.DRY_RUN if how == "dry_run" else SkipReason.UNCHANGED
        tally.skipped(source, row, reason)


@given(
    rows=st.lists(st.tuples(READ, SETTLE), max_size=60),
    unread=st.lists(st.booleans(), max_size=20),
    resumed=st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)),
)
def test_every_row_is_sent_failed_or_skipped_exactly_once(
    rows: list[tuple[str, str]], unread: list[bool], resumed: tuple[int, int, int]
) -> None:
    summary, failures, ledger = Summary(mode="run"), CountingFailures(), CountingLedger()
    tally = Tally(summary, failures, ledger)
    sent, failed, dup = resumed
    prior = Restored(sent=sent, failed=failed, invalid=failed, skipped=Counter(duplicate=dup))
    tally.restore(prior, [("a", -n, Stage.VALIDATE, "bad", []) for n in range(failed)])
    for row, (kind, how) in enumerate(rows, start=1):
        outcome = _outcome(row, kind)
        assert tally.in_flight == 0
        mapped = tally.admit(outcome)
        assert (mapped is not None) == (outcome.fate is Fate.SEND)
        if mapped is not None:
            assert tally.in_flight == 1
            _settle(tally, outcome, how)
    for offset, is_duplicate in enumerate(unread, start=len(rows) + 1):
        tally.unread("a", offset, [], "stopped", SkipReason.DUPLICATE if is_duplicate else "")

    assert tally.in_flight == 0
    assert summary.rows_total == summary.rows_sent + summary.rows_failed + summary.rows_skipped
    assert summary.rows_total == sent + failed + dup + len(rows) + len(unread)
    assert summary.rows_skipped == sum(summary.skipped.values())
    assert len(failures.rows) == summary.rows_failed  # the failure CSV lists every failed row
    fresh = len(rows) + len(unread)
    assert sorted(ledger.settled) == [("a", n) for n in range(1, fresh + 1)]
    assert set(ledger.settled.values()) <= {1}


def test_skip_reasons_keep_the_texts_state_files_and_summaries_hold() -> None:
    # Stored in state files and printed in summaries: changing one breaks resumes.
    assert {reason.name: str(reason) for reason in SkipReason} == {
        "UNCHANGED": "unchanged since the last run",
        "DUPLICATE": "duplicate",
        "DRY_RUN": "dry run: would have been sent",
        "VALIDATED": "validated only, not sent",
        "PLANNED": "plan only, not sent",
    }
    assert SKIP_REASONS == {"u": SkipReason.UNCHANGED, "d": SkipReason.DUPLICATE}
    assert [str(stage) for stage in Stage] == ["read", "validate", "send", "not_sent", "skip"]
