"""Row accounting in one place: every command counts its rows through a ``Tally``.

The promise the importer makes is that every row read is **sent**, **failed** (in the
failure CSV with its reasons) or **skipped** (for a stated ``SkipReason``):

    rows_total == rows_sent + rows_failed + rows_skipped

A row is counted into ``rows_total`` when it is read (``admit``, or ``unread`` for rows
an abort left unread) and settled exactly once (``sent``, ``failed``, ``skipped``);
between the two it is ``in_flight``. When a command ends nothing is in flight, which
is the invariant. The summary, the failure CSV and the state ledger are written here
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from importer.core.messages import MappedRow
from importer.core.outcome import Outcome, SkipReason, Stage
from importer.edges.report import STAGE_WARNING, FailureWriter, Summary
from importer.errors import OutputError

if TYPE_CHECKING:
    from importer.edges.state import Restored


class Ledger(Protocol):
    """Durable bookkeeping for resume and --only-changed (see importer.edges.state)."""

    def is_done(self, source: str, row: int) -> bool: ...

    def unchanged_users(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]: ...

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None: ...

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None: ...

    def record_skipped(self, source: str, row: int, reason: str) -> None: ...

    def checkpoint(self) -> None: ...


class NoLedger:
    """A run without --state: nothing is remembered."""

    def is_done(self, source: str, row: int) -> bool:
        return False

    def unchanged_users(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        return set()

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None:
        pass

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        pass

    def record_skipped(self, source: str, row: int, reason: str) -> None:
        pass

    def checkpoint(self) -> None:
        pass


class Tally:
    """Counts rows into ``summary``; failed rows also go to ``failures`` (when there is
    a failure file), every settled row to ``ledger`` (when there is a state file), and
    valid rows with a warning (a value left out under ``on_invalid: drop_field``, an
    ambiguous phone) to ``warnings`` (when there is a warnings file)."""

    def __init__(
        self,
        summary: Summary,
        failures: FailureWriter | None = None,
        ledger: Ledger | None = None,
        warnings: FailureWriter | None = None,
    ) -> None:
        self.summary = summary
        self.failures = failures
        self.ledger: Ledger = ledger or NoLedger()
        self.warnings = warnings
        # The failure CSV could not be written (a full disk): the first error, and how
        # many failed rows it lacks since. Those rows are not recorded in the ledger
        # either, so a resumed run handles them again.
        self.output_error: OutputError | None = None
        self.unlisted = 0

    # --- the invariant ---------------------------------------------------------------

    @property
    def settled(self) -> int:
        s = self.summary
        return s.rows_sent + s.rows_failed + s.rows_skipped

    @property
    def in_flight(self) -> int:
        """Rows read but not settled yet: 0 whenever a command has finished."""
        return self.summary.rows_total - self.settled

    # --- reading -----------------------------------------------------------------------

    def admit(self, outcome: Outcome) -> MappedRow | None:
        """Count a row just read. A failed or skipped row is settled now; a valid row
        is returned, and the caller settles it (sent, skipped, failed, not sent)."""
        summary = self.summary
        summary.rows_total += 1
        if outcome.mapped is not None:
            summary.rows_valid += 1
            if outcome.warning and self.warnings is not None:
                try:
                    self.warnings.write(
                        outcome.row, STAGE_WARNING, outcome.warning, outcome.cells,
                        outcome.source,
                    )  # fmt: skip
                except OutputError as exc:  # a full disk: the run stops at its next check
                    self.output_error = self.output_error or exc
            return outcome.mapped
        if outcome.stage == Stage.SKIP:
            summary.rows_valid += 1
            self.skipped(outcome.source, outcome.row, outcome.error)
        else:
            summary.rows_invalid += 1
            self.failed(
                outcome.source, outcome.row, outcome.stage, outcome.error,
                outcome.cells, outcome.keys,
            )  # fmt: skip
        return None

    def unread(self, source: str, row: int, cells: list[str], reason: str, skip: str) -> None:
        """A row the run never got to map, after it stopped: skipped when ``skip`` says it
        would have been anyway, else not sent for ``reason``. It is neither valid nor
        invalid: ``rows_total == rows_valid + rows_invalid + rows_unread``."""
        self.summary.rows_total += 1
        self.summary.rows_unread += 1
        if skip:
            self.skipped(source, row, skip)
        else:
            self.not_sent(source, row, cells, reason)

    # --- settling ---------------------------------------------------------------------

    def sent(self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes) -> None:
        self.summary.rows_sent += 1
        self.ledger.record_sent(source, row, user_id, fingerprint, raw)

    def failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        summary = self.summary
        summary.rows_failed += 1
        reasons = summary.reasons
        for key in keys:  # faster than Counter.update for the usual one or two keys
            reasons[key] += 1
        if self.failures is not None:
            try:
                self.failures.write(row, stage, error, cells, source)
            except OutputError as exc:
                self.output_error = self.output_error or exc
                self.unlisted += 1
                return
        self.ledger.record_failed(source, row, stage, error, cells, keys)

    def not_sent(self, source: str, row: int, cells: list[str], reason: str) -> None:
        """Valid but not delivered: the run stopped before (or while) sending it."""
        self.failed(source, row, Stage.NOT_SENT, reason, cells, (f"not sent: {reason}",))

    def skipped(self, source: str, row: int, reason: str) -> None:
        self.summary.rows_skipped += 1
        self.summary.skipped[reason] += 1
        self.ledger.record_skipped(source, row, reason)

    def skipped_unrecorded(self, reason: SkipReason, count: int) -> None:
        """``count`` admitted valid rows skipped for ``reason`` with nothing to remember
        (validate and plan, which have no state file)."""
        self.summary.rows_skipped += count
        self.summary.skipped[reason] += count

    def checkpoint(self) -> None:
        """Make what was settled so far durable (about once a second during a run)."""
        self.ledger.checkpoint()
        if self.failures is not None and self.output_error is None:
            try:
                self.failures.flush()
            except OutputError as exc:
                self.output_error = exc

    # --- resuming ---------------------------------------------------------------------

    def restore(
        self, restored: Restored, prior_failures: Iterable[tuple[str, int, str, str, list[str]]]
    ) -> None:
        """Count what a resumed run had finished before it stopped; its failed rows go
        to this run's failure CSV again (they are already in the ledger)."""
        summary = self.summary
        summary.rows_total += restored.total
        summary.rows_valid += restored.total - restored.invalid
        summary.rows_invalid += restored.invalid
        summary.rows_sent += restored.sent
        summary.rows_failed += restored.failed
        summary.rows_skipped += sum(restored.skipped.values())
        summary.skipped.update(restored.skipped)
        summary.reasons.update(restored.reasons)
        if self.failures is not None:
            for label, row, stage, error, cells in prior_failures:
                self.failures.write(row, stage, error, cells, label)
