"""Mapping rows in chunks: in the main process, or on every core.

Reading stays in the main process: it owns the file, the row numbers, resume and
abort. Records are taken in chunks; a chunk may first be checked against the state
(rows whose raw cells are exactly those last delivered need no mapping at all; with
worker processes, each worker fingerprints and looks up its chunks itself), then
mapped — inline, or by worker processes that run the compiled mapper and send back
compact results: for a valid row its user id, time and content JSON (or nothing at
all when only validating), for an invalid row its reasons. Results come back in input
order with a bounded number of chunks in flight, so memory stays flat.

Workers are forked, so they inherit the mappers compiled for this run (generated code
cannot be pickled) without re-reading the mapping; where fork is unavailable the
mapping runs in the main process instead.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.pool import Pool
from typing import Any, Protocol, cast

from importer.core.messages import MappedRow, RowMapper

CHUNK_ROWS = 1000
# A valid row when only validating: nothing of it is needed beyond "valid".
VALID = MappedRow("", 0, {})

# Set in the parent just before forking; each worker inherits them.
_MAPPERS: dict[str, RowMapper] = {}
_ENCODE = True
_RAW_CHECKS: dict[str, RawCheck] = {}

Record = tuple[int, list[str], str | None]
# Per row: a MappedRow (mapped here) | (user id, time, content JSON, warnings, request
# body) (mapped by a worker, which builds the body too: the sending process has less
# to do) | None (valid, not materialised) | warnings text (valid, not materialised,
# with warnings) | [error text, (reason keys...)] (invalid).
RowResult = MappedRow | tuple[str, int, str, str, bytes] | str | list[Any] | None
ChunkResult = tuple[list[RowResult], dict[str, int]]
# A chunk checked against the state and mapped by a worker: its results and warnings,
# the raw fingerprints of all its rows (8 bytes each, in order), and the positions of
# the rows left out as unchanged.
CheckedResult = tuple[list[RowResult], dict[str, int], bytes, list[int]]
# (user id, raw fingerprint) pairs -> the user ids whose last delivery had the same
# raw fingerprint (see RawCheck).
Unchanged = Callable[[Sequence[tuple[str, bytes]]], set[str]]


def default_workers(encode: bool) -> int:
    """Worker processes to use: every core for validating; when sending, the main
    process drives the network, so one core fewer."""
    if sys.platform != "linux":
        return 0
    cores = len(os.sched_getaffinity(0))
    return max(0, min(cores, 4) - (1 if encode else 0)) if cores > 1 else 0


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group; the main process handles it and
    # stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for check in _RAW_CHECKS.values():
        check.for_worker()


# Cells of a chunk travel to a worker as one string (cells joined by US, rows by RS):
# pickling one string is several times cheaper than a list of lists.
_CELL, _ROW = "\x1f", "\x1e"


def _pack(rows: list[list[str]]) -> str | list[list[str]]:
    packed = _ROW.join(_CELL.join(cells) for cells in rows)
    separators = sum(len(cells) - 1 for cells in rows)
    if (
        not packed  # no rows, or one row of one empty cell: "" cannot tell them apart
        or packed.count(_CELL) != separators
        or packed.count(_ROW) != len(rows) - 1
    ):
        return rows  # e.g. a cell holds a separator character: send the lists as they are
    return packed


def _unpack(rows: str | list[list[str]]) -> list[list[str]]:
    if isinstance(rows, list):
        return rows
    return [row.split(_CELL) for row in rows.split(_ROW)]


def _map_chunk(label: str, packed: str | list[list[str]]) -> ChunkResult:
    """Map rows in a worker; valid rows travel as content JSON, not objects."""
    return _map_rows(_MAPPERS[label], _unpack(packed), _ENCODE, as_objects=False)


def _check_and_map_chunk(label: str, packed: str | list[list[str]]) -> CheckedResult:
    """Fingerprint the raw rows in a worker, leave out those unchanged since their
    last delivery (looked up by the worker itself), and map the rest."""
    rows = _unpack(packed)
    raw, unchanged = _RAW_CHECKS[label].check(
        [(index, cells, None) for index, cells in enumerate(rows)]
    )
    if unchanged:
        rows = [cells for index, cells in enumerate(rows) if index not in unchanged]
    results, warnings = _map_rows(_MAPPERS[label], rows, _ENCODE, as_objects=False)
    return results, warnings, b"".join(raw.values()), sorted(unchanged)


def _map_rows(
    mapper: RowMapper, rows: list[list[str]], encode: bool, as_objects: bool
) -> ChunkResult:
    """Map rows: MappedRow objects (inline) or compact tuples (to cross a process)."""
    map_row = mapper.map_row if encode else mapper.check_row
    results: list[RowResult] = []
    append = results.append
    for cells in rows:
        mapped = map_row(cells)
        if isinstance(mapped, MappedRow):
            notes = mapped.notes
            if not encode:
                append("; ".join(notes) if notes else None)
            elif as_objects:
                append(mapped)
            else:
                append((mapped.user_id, mapped.time, mapped.content, "; ".join(notes),
                        mapped.body))  # fmt: skip
        else:
            append(["; ".join(str(p) for p in mapped), tuple(p.key for p in mapped)])
    warnings = dict(mapper.warnings)
    mapper.warnings.clear()
    return results, warnings


class _Pending(Protocol):
    def get(self) -> ChunkResult: ...


class _PendingChecked(Protocol):
    def get(self) -> CheckedResult: ...


class _Done:
    """A chunk mapped in the main process (quacks like AsyncResult)."""

    def __init__(self, result: ChunkResult) -> None:
        self._result = result

    def get(self) -> ChunkResult:
        return self._result


class MapPool:
    """Maps chunks of rows: in worker processes, or inline when ``workers`` is 0.
    ``close`` stops the workers."""

    def __init__(
        self,
        mappers: dict[str, RowMapper],
        workers: int,
        encode: bool,
        raw_checks: dict[str, RawCheck] | None = None,
    ) -> None:
        """``raw_checks``: the workers also fingerprint raw rows and leave out those
        unchanged (``submit_checked``), each with its own look-ups."""
        global _ENCODE
        self.mappers = mappers
        self.encode = encode
        self.warnings: Counter[str] = Counter()
        self.depth = max(1, workers * 3)
        self._pool: Pool | None = None
        self.checks_raw = (
            workers > 0
            and bool(raw_checks)
            and all(check.worker_safe for check in (raw_checks or {}).values())
        )
        if workers > 0:
            _MAPPERS.clear()
            _MAPPERS.update(mappers)
            _RAW_CHECKS.clear()
            _RAW_CHECKS.update(raw_checks or {})
            _ENCODE = encode
            self._pool = multiprocessing.get_context("fork").Pool(
                workers, initializer=_start_worker
            )

    def close(self) -> None:
        """Stop the workers (they hold nothing that needs saving)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def submit(self, label: str, rows: list[list[str]]) -> _Pending:
        if self._pool is not None:
            return self._pool.apply_async(_map_chunk, (label, _pack(rows)))
        return _Done(_map_rows(self.mappers[label], rows, self.encode, as_objects=True))

    def submit_checked(self, label: str, rows: list[list[str]]) -> _PendingChecked:
        """Check and map in a worker (only when ``checks_raw``)."""
        assert self._pool is not None
        return self._pool.apply_async(_check_and_map_chunk, (label, _pack(rows)))


class RawCheck:
    """Recognises rows whose cells are exactly those last delivered for their user.

    The raw fingerprint covers the importer version, the mapping and the header, so
    equal cells can only map to equal content: such rows are skipped before any
    mapping work, which is what keeps a nightly --only-changed pass fast.
    """

    def __init__(
        self,
        mapper: RowMapper,
        unchanged: Unchanged | None,
        version: str,
        in_worker: Callable[[], Unchanged] | None = None,
    ) -> None:
        """``in_worker`` makes the look-up a worker process uses (its own connection)."""
        self._user_id_of = mapper.user_id_of
        self._unchanged = unchanged
        self._in_worker = in_worker
        salt = "\x1e".join([version, mapper.mapping.fingerprint, *mapper.header])
        self._salt = salt.encode() + b"\x1d"

    def fingerprint(self, cells: list[str]) -> bytes:
        return hashlib.blake2b(
            self._salt + "\x1f".join(cells).encode("utf-8", "surrogatepass"), digest_size=8
        ).digest()

    @property
    def worker_safe(self) -> bool:
        """Whether a worker can run it: it looks nothing up, or has its own look-up."""
        return self._unchanged is None or self._in_worker is not None

    def for_worker(self) -> None:
        """In a forked worker: look up with a connection of its own."""
        if self._unchanged is not None and self._in_worker is not None:
            self._unchanged = self._in_worker()
            self._in_worker = None

    def check(self, chunk: list[Record]) -> tuple[dict[int, bytes], set[int]]:
        """Raw fingerprints of the readable rows, and which rows are unchanged."""
        raw: dict[int, bytes] = {}
        users: dict[int, str] = {}
        for number, cells, problem in chunk:
            if problem is None:
                raw[number] = self.fingerprint(cells)
                if self._unchanged is not None and (user := self._user_id_of(cells)):
                    users[number] = user
        if not users or self._unchanged is None:
            return raw, set()
        same = self._unchanged([(users[n], raw[n]) for n in users])
        return raw, {n for n, user in users.items() if user in same}


def _by_number(
    chunk: list[Record], blob: bytes, left_out: list[int]
) -> tuple[dict[int, bytes], set[int]]:
    """A worker's answer by row number: the raw fingerprint of each readable row (8
    bytes each, in order), and the rows left out as unchanged (by position)."""
    numbers = [number for number, _, problem in chunk if problem is None]
    raw = {number: blob[i * 8 : i * 8 + 8] for i, number in enumerate(numbers)}
    return raw, {numbers[i] for i in left_out}


# One record after mapping: (number, cells, problem, result, raw fingerprint, unchanged)
Mapped = tuple[int, list[str], str | None, RowResult, bytes, bool]


class MappedRecords:
    """Records of one source, mapped in chunks by a MapPool, in order.

    Records read ahead but not yet yielded are kept, so that after an abort
    ``leftovers`` can account for them.
    """

    def __init__(
        self,
        records: Iterator[Record],
        label: str,
        pool: MapPool,
        skip: Callable[[str, int], bool] | None = None,
        raw_check: RawCheck | None = None,
    ) -> None:
        self._records = records
        self._label = label
        self._pool = pool
        self._skip = skip
        self._raw_check = raw_check
        self._pending: deque[
            tuple[list[Record], _Pending | _PendingChecked, dict[int, bytes] | None, set[int]]
        ] = deque()
        self._current: list[Record] = []
        self._position = 0

    def _chunks(self) -> Iterator[list[Record]]:
        chunk: list[Record] = []
        skip, label = self._skip, self._label
        for record in self._records:
            if skip is not None and skip(label, record[0]):
                continue
            chunk.append(record)
            if len(chunk) >= CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _submit(self, chunk: list[Record]) -> None:
        raw: dict[int, bytes] = {}
        unchanged: set[int] = set()
        if self._raw_check is not None and self._pool.checks_raw:
            readable = [cells for _, cells, problem in chunk if problem is None]
            checked = self._pool.submit_checked(self._label, readable)
            self._pending.append((chunk, checked, None, unchanged))  # None: the worker's
            return
        if self._raw_check is not None:
            raw, unchanged = self._raw_check.check(chunk)
        rows = [cells for number, cells, problem in chunk
                if problem is None and number not in unchanged]  # fmt: skip
        self._pending.append((chunk, self._pool.submit(self._label, rows), raw, unchanged))

    def __iter__(self) -> Iterator[Mapped]:
        chunks = self._chunks()
        exhausted = False
        while True:
            while not exhausted and len(self._pending) < self._pool.depth:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                self._submit(chunk)
            if not self._pending:
                return
            chunk, future, known, unchanged = self._pending[0]
            if known is None:  # checked by a worker
                results, warnings, blob, left_out = cast(_PendingChecked, future).get()
                raw, unchanged = _by_number(chunk, blob, left_out)
            else:
                results, warnings = cast(_Pending, future).get()
                raw = known
            self._pending.popleft()
            self._pool.warnings.update(warnings)
            self._current, self._position = chunk, 0
            answers = iter(results)
            for number, cells, problem in chunk:
                self._position += 1
                if problem is not None:
                    yield number, cells, problem, None, b"", False
                elif number in unchanged:
                    yield number, cells, None, None, raw[number], True
                else:
                    yield number, cells, None, next(answers), raw.get(number, b""), False
            self._current = []

    def leftovers(self) -> Iterator[tuple[int, list[str]]]:
        """Rows read from the file but not yielded yet (after the consumer stopped)."""
        for number, cells, _ in self._current[self._position :]:
            yield number, cells
        self._current = []
        while self._pending:
            chunk, *_ = self._pending.popleft()
            for number, cells, _ in chunk:
                yield number, cells
