"""Mapping rows on every core.

Reading stays in the main process: it owns the file, the row numbers, resume and
abort. Chunks of cells go to worker processes that run the compiled mapper and send
back compact results — for a valid row its user id, time and content JSON (or nothing
at all when only validating), for an invalid row its reasons. Results come back in
input order, with a bounded number of chunks in flight, so memory stays flat.

Workers are forked, so they inherit the mappers compiled for this run (generated code
cannot be pickled) without re-reading the mapping; where fork is unavailable the
mapping runs in the main process instead.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult, Pool
from typing import Any

from importer.messages import MappedRow, RowMapper

CHUNK_ROWS = 1000
# A valid row when only validating: nothing of it is needed beyond "valid".
VALID = MappedRow("", 0, {})

# Set in the parent just before forking; each worker inherits them.
_MAPPERS: dict[str, RowMapper] = {}
_ENCODE = True

# Per row: (user id, time, content JSON) | None (valid, not materialised) |
# [error text, (reason keys...)] for an invalid row.
RowResult = tuple[str, int, str] | list[Any] | None
ChunkResult = tuple[list[RowResult], dict[str, int]]


def default_workers(encode: bool) -> int:
    """Worker processes to use: every core for validating; when sending, the main
    process drives the network, so one core fewer."""
    if sys.platform != "linux":
        return 0
    cores = len(os.sched_getaffinity(0))
    return max(0, min(cores, 4) - (1 if encode else 0)) if cores > 1 else 0


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the main process handles it and
    # stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _map_chunk(label: str, rows: list[list[str]]) -> ChunkResult:
    mapper = _MAPPERS[label]
    map_row = mapper.map_row
    results: list[RowResult] = []
    append = results.append
    for cells in rows:
        mapped = map_row(cells)
        if isinstance(mapped, MappedRow):
            append((mapped.user_id, mapped.time, mapped.content) if _ENCODE else None)
        else:
            append(["; ".join(str(p) for p in mapped), tuple(p.key for p in mapped)])
    warnings = dict(mapper.warnings)
    mapper.warnings.clear()
    return results, warnings


class MapPool:
    """Worker processes mapping chunks of rows; use as a context manager."""

    def __init__(self, mappers: dict[str, RowMapper], workers: int, encode: bool) -> None:
        global _ENCODE
        _MAPPERS.clear()
        _MAPPERS.update(mappers)
        _ENCODE = encode
        self.encode = encode
        self.warnings: Counter[str] = Counter()
        self.depth = workers * 3
        self._pool: Pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=_ignore_interrupts
        )

    def __enter__(self) -> MapPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (they hold nothing that needs saving)."""
        self._pool.terminate()
        self._pool.join()

    def submit(self, label: str, rows: list[list[str]]) -> AsyncResult[ChunkResult]:
        return self._pool.apply_async(_map_chunk, (label, rows))


class PooledRecords:
    """Records of one source mapped by a MapPool, in order.

    Iterating yields ``(number, cells, problem, result)``. Records read ahead but not
    yet yielded are kept, so that after an abort ``leftovers`` can account for them.
    """

    def __init__(
        self,
        records: Iterator[tuple[int, list[str], str | None]],
        label: str,
        pool: MapPool,
        skip: Any = None,
    ) -> None:
        self._records = records
        self._label = label
        self._pool = pool
        self._skip = skip
        self._pending: deque[
            tuple[list[tuple[int, list[str], str | None]], AsyncResult[ChunkResult]]
        ] = deque()
        self._current: list[tuple[int, list[str], str | None]] = []
        self._position = 0

    def _chunks(self) -> Iterator[list[tuple[int, list[str], str | None]]]:
        chunk: list[tuple[int, list[str], str | None]] = []
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

    def __iter__(self) -> Iterator[tuple[int, list[str], str | None, RowResult]]:
        chunks = self._chunks()
        exhausted = False
        while True:
            while not exhausted and len(self._pending) < self._pool.depth:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                rows = [cells for _, cells, problem in chunk if problem is None]
                self._pending.append((chunk, self._pool.submit(self._label, rows)))
            if not self._pending:
                return
            chunk, future = self._pending[0]
            results, warnings = future.get()
            self._pending.popleft()
            self._pool.warnings.update(warnings)
            self._current, self._position = chunk, 0
            answers = iter(results)
            for number, cells, problem in chunk:
                self._position += 1
                yield number, cells, problem, (None if problem is not None else next(answers))
            self._current = []

    def leftovers(self) -> Iterator[tuple[int, list[str]]]:
        """Rows read from the file but not yielded yet (after the consumer stopped)."""
        for number, cells, _ in self._current[self._position :]:
            yield number, cells
        self._current = []
        while self._pending:
            chunk, _ = self._pending.popleft()
            for number, cells, _ in chunk:
                yield number, cells
