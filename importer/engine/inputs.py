"""The inputs of a command: expanded, opened and checked before any row is used.

``Job`` holds the inputs, the mapping compiled against each input's header, the
worker pool that maps rows, and what the reports need to know about the inputs
(headers for the failure CSV, encodings and descriptions for the summary).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from importer import __version__
from importer.core.config import Mapping
from importer.core.messages import RowMapper
from importer.edges import inputs as input_kinds
from importer.edges import limits
from importer.edges.duplicates import (
    DuplicatePlan,
    IdStream,
    id_stream,
    no_plan,
    plan_duplicates,
)
from importer.edges.paths import expand_paths
from importer.edges.progress import PhaseProgress
from importer.edges.readers import Marks, Record, Source, list_sheets
from importer.edges.report import FailureWriter
from importer.edges.tables import TableInput
from importer.engine.parallel import MapPool, RawCheck, Unchanged, default_workers
from importer.engine.reading import Reading, input_share, tracked
from importer.errors import MappingError, UsageProblem

log = logging.getLogger("metrix_importer")

# Below this much input, starting worker processes costs more than it saves.
AUTO_WORKERS_MIN_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Input:
    """One table to read: a file, or one sheet of a workbook."""

    label: str  # names the input in state and in the failure CSV's _source
    path: str
    sheet: str | int | None = None
    row_prefix: str = ""  # "Customers:" when every sheet of a workbook is read
    table: TableInput | None = None  # data handed over in memory (the Python API)


def expand_inputs(patterns: Sequence[str | TableInput], mapping: Mapping) -> list[Input]:
    """Paths, URLs, folders and quoted globs to inputs, with the mapping's sheet (where
    the CLI's ``--sheet`` has put it); ``all`` makes one input per sheet. Data in memory
    (the Python API) is an input as it is."""
    sheet = mapping.source.sheet
    paths: list[str] = []
    tables = [pattern for pattern in patterns if isinstance(pattern, TableInput)]
    for pattern in patterns:
        if isinstance(pattern, TableInput):
            continue
        expanded = input_kinds.expand(pattern)  # URLs, URL globs, folders of parts
        paths += expanded if expanded is not None else expand_paths([pattern])
    if len(set(paths)) != len(paths):
        raise UsageProblem("the same file is named twice; give each input once")
    several = len(paths) + len(tables) > 1
    inputs: list[Input] = [
        Input(table.name if several else "", table.name, table=table) for table in tables
    ]
    for path in paths:
        if sheet == "all":
            for name in list_sheets(path):
                label = f"{path}:{name}" if several else name
                inputs.append(Input(label, path, name, f"{name}:"))
        else:
            inputs.append(Input(path if several else "", path, sheet))
    return inputs


class Job:
    """Inputs and mapping of one command, checked before any row is used."""

    def __init__(self, inputs: list[Input], mapping: Mapping, run_time_ms: int) -> None:
        self.inputs = inputs
        self.read_warnings: Counter[str] = Counter()  # added by Reading as it reads
        self.mapping = mapping
        self.run_time_ms = run_time_ms
        self.mappers: dict[str, RowMapper] = {}
        self.headers: dict[str, list[str]] = {}
        self.encodings: set[str] = set()
        self.descriptions: list[str] = []
        self.raw_checks: dict[str, RawCheck] = {}
        self._pool: MapPool | None = None
        for item in self.inputs:
            # Open every input once up front so a missing column or an unreadable
            # file in the tenth file stops the run before anything is sent.
            source = self.open(item)
            self.mappers[item.label] = _mapper(mapping, source, item, run_time_ms)
            self.headers[item.label] = source.display_header
            if source.encoding:
                self.encodings.add(source.encoding)
            self.descriptions.append(source.describe())
            log.info("reading %s", source.describe())
            _close(source)

    @property
    def encoding(self) -> str | None:
        """The inputs' encodings, for the summary."""
        return ", ".join(sorted(self.encodings)) or None

    def open(self, item: Input, marks: Marks | None = None) -> Source:
        """``marks``: note record starts while reading (a local CSV file's partitions)."""
        if item.table is not None:
            return item.table.open()
        options = self.mapping.source
        return input_kinds.open_input(
            item.path,
            sheet=item.sheet,
            encoding=options.encoding,
            delimiter=options.delimiter,
            header_row=options.header_row,
            marks=marks,
        )

    def reading(
        self,
        skip: Callable[[str, int], bool] | None = None,
        duplicates: DuplicatePlan | None = None,
    ) -> Reading:
        """A fresh read of every input (``skip``: rows finished before a resume)."""
        return Reading(self, skip, duplicates or no_plan("all"))

    def failure_writer(self, path: Path) -> FailureWriter:
        """One failure CSV for all inputs (with ``_source`` when there are several)."""
        union: list[str] = []
        for header in self.headers.values():
            union += [name for name in header if name not in union]
        layouts = {
            label: [header.index(name) if name in header else -1 for name in union]
            for label, header in self.headers.items()
            if header != union
        }
        prefixes = {item.label: item.row_prefix for item in self.inputs if item.row_prefix}
        sources = {item.label: item.path for item in self.inputs}
        return FailureWriter(
            path, union, with_source=len(set(sources.values())) > 1,
            layouts=layouts, row_prefixes=prefixes, source_names=sources,
        )  # fmt: skip

    @property
    def pool(self) -> MapPool:
        if self._pool is None:
            self._pool = MapPool(self.mappers, 0, encode=True)
        return self._pool

    def start_workers(self, workers: int | None, encode: bool) -> None:
        """Map rows in worker processes (None: as many as suit this machine and input)."""
        if workers is None:
            small = sum(_size(item) for item in self.inputs) < AUTO_WORKERS_MIN_BYTES
            workers = 0 if small else default_workers(encode)
        self._pool = MapPool(self.mappers, workers, encode, self.raw_checks)

    def remember_raw(
        self, unchanged: Unchanged | None, in_worker: Callable[[], Unchanged] | None = None
    ) -> None:
        """Fingerprint raw rows for the state; with ``unchanged``, skip rows whose cells
        are those last delivered before mapping them. Call before ``start_workers``:
        the workers then do both, each looking up with what ``in_worker`` makes."""
        self.raw_checks = {
            label: RawCheck(mapper, unchanged, __version__, in_worker)
            for label, mapper in self.mappers.items()
        }

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def warnings(self) -> Counter[str]:
        """Soft-limit warnings from every mapper, wherever it ran, and what the readers
        saw (values in unlabelled columns, long runs of empty rows)."""
        found: Counter[str] = Counter(self.read_warnings)
        for mapper in self.mappers.values():
            found.update(mapper.warnings)
        if self._pool is not None:
            found.update(self._pool.warnings)
        return found

    def id_pass_key(self, policy: str) -> str | None:
        """Everything the duplicate check's result depends on, as a digest: every byte
        of every input, how each is read (label, sheet, the mapping's ``source:``), the
        mapping, the policy, the reading limits and this version. None when an input is
        not a local file (its bytes cannot be read again cheaply)."""
        if any(item.table is not None or not input_kinds.is_local(item.path)
               for item in self.inputs):  # fmt: skip
            return None
        digest = hashlib.sha256()
        parts = [__version__, policy, self.mapping.fingerprint, repr(self.mapping.source),
                 limits.settings()]  # fmt: skip
        digest.update("\0".join(parts).encode())
        contents: dict[str, str] = {}
        for item in self.inputs:
            if item.path not in contents:
                contents[item.path] = input_kinds.content_digest(item.path)
            where = [item.label, repr(item.sheet), item.row_prefix, contents[item.path]]
            digest.update(("\x1e" + "\0".join(where)).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def duplicate_plan(
        self,
        policy: str,
        progress: bool = True,
        opened: Callable[[Input], Source] | None = None,
    ) -> DuplicatePlan:
        """Find duplicated users across all inputs (one extra, id-only read), showing
        how far it has come (a bar on a terminal, else a log line every 10 s).
        ``opened`` opens the inputs for it, when the read should serve something else
        too (the partition plan of ``run --engine dask``)."""
        open_input = opened or self.open
        if policy == "all":
            return no_plan(policy)
        started = time.monotonic()
        where: list[tuple[int, Source]] = []  # the input being read, for progress
        last_row = [0]

        def opener(index: int, item: Input) -> Callable[[], Iterator[Record]]:
            def records() -> Iterator[Record]:
                source = open_input(item)
                where[:] = [(index, source)]
                return source.records

            return records

        def share() -> float | None:
            if not where:
                return None
            index, source = where[0]
            return input_share(index, len(self.inputs), source, last_row[0])

        def rows_of(stream: IdStream) -> IdStream:
            for entry in stream:
                last_row[0] = entry[1]
                yield entry

        stream = id_stream(
            [(item.label, opener(i, item)) for i, item in enumerate(self.inputs)],
            lambda label, cells: self.mappers[label].user_id_of(cells),
        )
        shown = PhaseProgress("checking duplicates", enabled=progress)
        try:
            plan = plan_duplicates(tracked(rows_of(stream), shown, share), policy)
        finally:
            shown.close()
        log.info(
            "checked %d rows for duplicates in %.1f s: %d users on more than one row",
            plan.rows, time.monotonic() - started, plan.duplicate_users,
        )  # fmt: skip
        return plan


def _mapper(mapping: Mapping, source: Source, item: Input, run_time_ms: int) -> RowMapper:
    """The mapping compiled against this input's header. A missing column may be the
    mapping's fault or the export's (a column renamed or dropped since): say both."""
    try:
        return RowMapper(mapping, source.header, run_time_ms)
    except MappingError as exc:
        if not any("has no column" in problem.message for problem in exc.problems):
            raise
        where = f"{item.path}" + (f", sheet '{item.sheet}'" if item.sheet is not None else "")
        shown = ", ".join(name or "(blank)" for name in source.display_header)
        raise MappingError(
            exc.source,
            exc.problems,
            f"Either the export changed since the mapping was written (a column renamed or "
            f"removed: {where} has the header {shown}), or the mapping names the wrong "
            "column. Fix whichever is wrong — the mapping's column names, or the export "
            "— and run the command again.",
        ) from None


def _size(item: Input) -> int:
    return item.table.size_hint if item.table is not None else input_kinds.size_of(item.path)


def inputs_fingerprint(inputs: Sequence[Input]) -> str:
    """What ties an unfinished run to its inputs (see ``edges.inputs.fingerprint``; data
    in memory by a digest of every cell)."""
    tables = [item.table.fingerprint() for item in inputs if item.table is not None]
    paths = sorted({item.path for item in inputs if item.table is None})
    return "\0".join([input_kinds.fingerprint(paths) if paths else "", *tables])


def named(patterns: Sequence[str | TableInput]) -> str:
    """The inputs as the summary names them."""
    return ", ".join(p.name if isinstance(p, TableInput) else p for p in patterns)


def _close(source: Source) -> None:
    close = getattr(source.records, "close", None)
    if close is not None:
        close()
