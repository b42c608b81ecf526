"""One read of every input, in order, that knows where it is.

``Reading`` owns the read position: iterating it yields every row of every input as
an ``Outcome``; after the consumer stops early (an abort), ``leftovers()`` yields the
rows it has not yet seen — read ahead, unread in the current input, and every later
input — and ``fraction()`` says how far into the current CSV the read has come.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from importer.core.outcome import Outcome, SkipReason, Stage, skipped
from importer.edges.duplicates import DuplicatePlan
from importer.edges.progress import PhaseProgress
from importer.edges.readers import Record, Source
from importer.engine.parallel import MappedRecords
from importer.engine.pipeline import mapped_outcomes
from importer.errors import ImporterError, SourceError

if TYPE_CHECKING:
    from importer.engine.inputs import Job

# (source label, row, cells, the reason it would be skipped anyway or "")
Leftover = tuple[str, int, list[str], str]

# What a file that ends early or is damaged part-way raises while it is read: XML
# parsers raise SyntaxError subclasses, zip members BadZipFile/zlib.error/EOFError.
DAMAGED = (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError, OSError)


class Reading:
    """Every row of ``job``'s inputs, once, in order; duplicates are marked, not mapped.

    ``skip(label, row)`` names rows finished before (a resumed run): they are not read
    into outcomes at all.
    """

    def __init__(
        self, job: Job, skip: Callable[[str, int], bool] | None, duplicates: DuplicatePlan
    ) -> None:
        self.job = job
        self.skip = skip
        self.duplicates = duplicates
        self.blank_rows = 0
        self._index = 0  # the input being read (len(inputs) when all are read)
        self._current: Source | None = None
        self._mapped: MappedRecords | None = None  # its records, as they are mapped
        self._row = 0  # the last row read of the current input

    def __iter__(self) -> Iterator[Outcome]:
        job, duplicates = self.job, self.duplicates
        for index, item in enumerate(job.inputs):
            source = job.open(item)
            self._index, self._current = index, source
            label = item.label
            check = job.raw_checks.get(label)
            records = guarded(source.records, item.path)
            self._mapped = MappedRecords(records, label, job.pool, self.skip, check)
            self._row = 0
            for outcome in mapped_outcomes(self._mapped, label):
                row = self._row = outcome.row
                if duplicates.skip and duplicates.is_skipped(label, row):
                    yield skipped(row, outcome.cells, SkipReason.DUPLICATE, label)
                elif duplicates.error and (count := duplicates.error_count(label, row)):
                    yield self._duplicated(outcome, count)
                else:
                    yield outcome
            self.blank_rows += source.stats.blank_rows
            job.read_warnings.update(source.stats.warnings)
        self._index, self._current = len(job.inputs), None

    def _duplicated(self, outcome: Outcome, count: int) -> Outcome:
        user = self.job.mappers[outcome.source].user_id_of(outcome.cells)
        reason = (
            f"customer id '{user}' is on {count} rows; with --duplicates error "
            "none of them is sent (keep one, or use --duplicates last)"
        )
        return Outcome(outcome.row, outcome.cells, None, Stage.VALIDATE, reason,
                       ("duplicate customer id",), outcome.source)  # fmt: skip

    def leftovers(self) -> Iterator[Leftover]:
        """After the consumer stopped: the unread rows of the current input, then every
        later one, each with the reason it would be skipped anyway ("" if none)."""
        plan = self.duplicates
        inputs = self.job.inputs
        for index in range(self._index, len(inputs)):
            item = inputs[index]
            label = item.label
            if index == self._index and self._current is not None:
                if self._mapped is not None:
                    for row, cells in self._mapped.leftovers():
                        yield label, row, cells, _skip_reason(plan, label, row)
                records: Iterator[Record] = guarded(self._current.records, item.path)
            else:
                records = guarded(self.job.open(item).records, item.path)
            for row, cells, _ in records:
                yield label, row, cells, _skip_reason(plan, label, row)

    def fraction(self) -> float | None:
        """Share of the current CSV read, for progress when the row count is unknown."""
        source = self._current
        if source is None or source.kind != "csv" or not source.size_bytes:
            return None
        return min(1.0, source.bytes_read() / source.size_bytes)

    def overall(self) -> float | None:
        """Share of all the inputs read so far, when it can be known."""
        return input_share(self._index, len(self.job.inputs), self._current, self._row)


T = TypeVar("T")


def input_share(index: int, count: int, source: Source | None, row: int) -> float | None:
    """Share of ``count`` inputs read when input ``index`` is at ``row``: by bytes for a
    CSV, by rows for a sheet whose size is known."""
    if source is None or count == 0:
        return None
    if source.kind == "csv" and source.size_bytes:
        share = source.bytes_read() / source.size_bytes
    elif source.total_rows:
        share = row / source.total_rows
    else:
        return None
    return min(1.0, (index + min(share, 1.0)) / count)


def tracked(
    items: Iterable[T], progress: PhaseProgress, where: Callable[[], float | None]
) -> Iterator[T]:
    """``items`` unchanged, telling ``progress`` every 1,024 items how far they are."""
    count = 0
    for item in items:
        yield item
        count += 1
        if not count & 1023:
            progress.update(count, where())
    progress.update(count)  # the input may be closed by now: no share to ask for


def guarded(records: Iterator[Record], path: str) -> Iterator[Record]:
    """``records``, with a file that ends early or is damaged part-way (a truncated
    sheet) turned into a ``SourceError`` naming the last row read. Only the reader's
    own errors: a failure of the mapping workers stays what it is."""
    row = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except ImporterError:
            raise
        except DAMAGED as exc:
            raise damaged(path, row, exc) from None
        row = record[0]
        yield record


def damaged(path: str, row: int, exc: BaseException) -> SourceError:
    """A file that could not be read past ``row`` (0: not even its first data row)."""
    where = f"after data row {row}" if row else "before its first data row"
    return SourceError(
        path,
        f"the file could not be read {where}: it is truncated or damaged "
        f"({type(exc).__name__}: {exc})",
        "Export or copy the file again and run it again.",
    )


def _skip_reason(plan: DuplicatePlan, label: str, row: int) -> str:
    return SkipReason.DUPLICATE if plan.is_skipped(label, row) else ""
