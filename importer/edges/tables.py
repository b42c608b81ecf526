"""Typed inputs as Sources: Parquet, JSON Lines, DataFrames, Arrow data, dicts.

Each produces what the CSV and Excel readers produce — a header and records of text
cells with 1-based row numbers — with values turned into text by ``typed``. Arrow data
is read a batch at a time (Parquet a row group's batches at a time), so memory stays
flat and no whole frame is ever turned into Python objects at once.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from importer.edges.extras import require
from importer.edges.readers import Record, Source, make_header
from importer.edges.typed import arrow_text_array, value_text
from importer.errors import SourceError

BATCH_ROWS = 65_536  # rows taken from Arrow data in memory at a time
SLICE_ROWS = 4_096  # rows turned into Python text at a time
# Parquet is decoded this many rows at a time, from a buffered stream without reading
# whole row groups ahead: peak memory 116 MB instead of 222 MB for 1M rows (most of
# it the interpreter and pyarrow themselves), at the same speed.
PARQUET_BATCH_ROWS = 8_192
PARQUET_BUFFER_BYTES = 1 << 20
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")

Opener = Callable[[], IO[bytes]]


@dataclass
class TableSource(Source):
    """A Source read from typed data; says what it is in its own words."""

    description: str = ""

    def describe(self) -> str:
        return f"{self.path}: {self.description}"


def _records_of_columns(
    batches: Iterable[Sequence[Any]], source: Source, first: int = 1
) -> Iterator[Record]:
    """Rows of text cells from batches of Arrow columns, numbered from ``first``."""
    number = first - 1
    stats = source.stats
    for columns in batches:
        size = len(columns[0]) if columns else 0
        # Text for a slice at a time: a slice's cells as Python strings take ~1 KB a row.
        for start in range(0, size, SLICE_ROWS):
            for cells in _rows([column.slice(start, SLICE_ROWS) for column in columns]):
                number += 1
                if any(cells):
                    yield number, cells, None
                else:
                    stats.blank_rows += 1


def _rows(columns: Sequence[Any]) -> Iterator[list[str]]:
    """Arrow columns as rows of text cells."""
    texts = [arrow_text_array(column).to_pylist() for column in columns]
    return map(list, zip(*texts, strict=True))


def _table_source(
    name: str, kind: str, names: Sequence[Any], description: str, total: int | None, size: int
) -> TableSource:
    header, display = make_header([str(n) for n in names])
    if not header:
        raise SourceError(name, "the data has no columns")
    return TableSource(
        path=name,
        kind=kind,
        header=header,
        display_header=display,
        records=iter(()),
        size_bytes=size,
        total_rows=total,
        description=description,
    )


# --- Parquet -------------------------------------------------------------------------


@dataclass(frozen=True)
class RowGroups:
    """Row groups ``start`` up to ``end`` (not included) of a Parquet file: one
    partition of it, whose first row is the file's row ``first``."""

    start: int
    end: int
    first: int
    rows: int


def _parquet_opener(location: str | Opener) -> Callable[[], Any]:
    pa = require("pyarrow", "parquet")
    return lambda: pa.OSFile(location) if isinstance(location, str) else location()


def _parquet_meta(name: str, location: str | Opener) -> Any:
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    try:
        with _parquet_opener(location)() as handle:
            return pq.ParquetFile(handle).metadata
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(
            name,
            f"this is not a readable Parquet file ({exc})",
            "Check that the file is complete (a part still being written has no footer).",
        ) from None


def parquet_row_groups(name: str, location: str | Opener) -> list[int]:
    """The rows of each row group of a Parquet file (its footer alone is read)."""
    meta = _parquet_meta(name, location)
    return [meta.row_group(index).num_rows for index in range(meta.num_row_groups)]


def open_parquet(
    name: str, location: str | Opener, size: int, groups: RowGroups | None = None
) -> Source:
    """A Parquet file (a local path, read by Arrow's own I/O, or a stream), read a batch
    of rows at a time with types honoured; with ``groups``, only those row groups,
    numbered as the file's own rows."""
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    opener = _parquet_opener(location)
    meta = _parquet_meta(name, location)
    total, count = meta.num_rows, meta.num_row_groups
    source = _table_source(
        name,
        "parquet",
        meta.schema.to_arrow_schema().names,
        f"Parquet, {total:,} rows in {count} row groups",
        total if groups is None else groups.rows,
        size,
    )
    chosen = None if groups is None else list(range(groups.start, groups.end))

    def batches() -> Iterator[Sequence[Any]]:
        with opener() as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=chosen):
                yield batch.columns

    first = 1 if groups is None else groups.first
    records = _records_of_columns(batches(), source, first)
    source.records = _guarded(name, records, (pa.ArrowException,), first - 1)
    return source


def _guarded(
    name: str, records: Iterator[Record], errors: tuple[type[BaseException], ...], last: int = 0
) -> Iterator[Record]:
    """Records until a read error, which becomes one failure row instead of a traceback
    (``last``: the row before the first)."""
    caught: tuple[type[BaseException], ...] = (OSError, *errors)
    try:
        for record in records:
            last = record[0]
            yield record
    except caught as exc:
        yield (
            last + 1,
            [],
            f"row {last + 1}: the data is damaged or cut short from here on "
            f"({type(exc).__name__}: {exc}); the rows after this point could not be read",
        )


# --- JSON Lines ----------------------------------------------------------------------


def _lines(opener: Opener) -> Iterator[bytes]:
    with opener() as raw:
        head = raw.read(2)
        raw.seek(0)
        stream: IO[bytes] = raw
        if head == b"\x1f\x8b":
            stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        yield from stream


def _parse(line: bytes, number: int) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(line)
    except UnicodeDecodeError:
        return None, f"line {number}: has bytes that are not valid UTF-8 text"
    except ValueError as exc:
        return None, f"line {number}: is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"line {number}: is a JSON {type(value).__name__}, not an object"
    return value, None


# identity (path or URL, size, modification time or ETag) -> keys; a run opens each
# input several times, the keys are found once.
_KEYS: dict[str, tuple[str, ...]] = {}


def _jsonl_keys(identity: str, opener: Opener) -> tuple[str, ...]:
    """Every key of every object, in first-seen order: one pass before reading, so a
    key that first appears on the millionth line is a column like any other."""
    known = _KEYS.get(identity)
    if known is not None:
        return known
    keys: dict[str, None] = {}
    for line in _lines(opener):
        if line.strip():
            value, _ = _parse(line, 0)
            if value is not None:
                keys.update(dict.fromkeys(value))
    if len(_KEYS) >= 8:
        _KEYS.clear()
    _KEYS[identity] = found = tuple(keys)
    return found


def open_jsonl(name: str, opener: Opener, size: int, identity: str) -> Source:
    """JSON Lines (optionally gzip): one object per line, its keys are the columns.

    JSON types are honoured: a number is its digits, true/false are booleans, null is
    an empty cell, and a nested object or list stays JSON for a ``type: json`` attribute.
    """
    try:
        keys = _jsonl_keys(identity, opener)
    except (OSError, EOFError) as exc:
        raise SourceError(name, f"cannot read the file ({exc})") from None
    if not keys:
        raise SourceError(name, "the file holds no JSON objects", "Give one JSON object per line.")
    source = _table_source(name, "jsonl", keys, "JSON Lines", None, size)

    def records() -> Iterator[Record]:
        number = 0
        for line in _lines(opener):
            number += 1
            if not line.strip():
                source.stats.blank_rows += 1
                continue
            value, problem = _parse(line, number)
            if value is None:
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                yield number, [text], problem
                continue
            cells = [value_text(value.get(key)) for key in keys]
            if any(cells):
                yield number, cells, None
            else:
                source.stats.blank_rows += 1

    source.records = _guarded(name, records(), (EOFError,))
    return source


# --- In-memory tables ----------------------------------------------------------------


@dataclass
class TableInput:
    """Data handed over in memory (a DataFrame, Arrow data, dicts), readable again and
    again: a run reads its inputs more than once (header check, duplicates, rows)."""

    name: str
    open: Callable[[], Source]
    size_hint: int = 0
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A digest of every cell, for --state: resuming needs the same data."""
        digest = hashlib.sha256()
        source = self.open()
        digest.update("\0".join(source.header).encode())
        for number, cells, _ in source.records:
            digest.update(f"{number}\0".encode())
            digest.update("\x1f".join(cells).encode("utf-8", errors="surrogatepass"))
        return digest.hexdigest()

    def close(self) -> None:
        """Remove what a one-shot stream was spooled to."""
        while self._cleanup:
            self._cleanup.pop()()


def _kind(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def table_input(data: Any, name: str = "", index_columns: Sequence[str] = ()) -> TableInput:
    """Wrap in-memory data: a pandas or polars DataFrame, a pyarrow Table or
    RecordBatchReader, or an iterable of dicts. ``index_columns`` are pandas index
    levels to read as columns (the index is ignored otherwise)."""
    kind = _kind(data)
    if kind == "pandas.DataFrame":
        return _pandas_input(data, name or "DataFrame", index_columns)
    if kind == "polars.DataFrame":
        require("pyarrow", "polars", "Reading a polars DataFrame")
        return _arrow_input(data.to_arrow(), name or "DataFrame", "polars DataFrame")
    if kind == "polars.LazyFrame":
        raise SourceError(
            name or "LazyFrame", "a polars LazyFrame is a query, not data", "Pass frame.collect()."
        )
    if kind == "pyarrow.Table":
        return _arrow_input(data, name or "Table", "Arrow table")
    if kind == "pyarrow.RecordBatchReader":
        return _spooled_arrow(data, name or "RecordBatchReader")
    if isinstance(data, dict):
        raise SourceError(
            name or "dict", "a single dict is one row", "Pass a list of dicts (one per row)."
        )
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        return _dicts_input(data, name or "rows")
    raise SourceError(
        name or type(data).__name__,
        f"cannot read a {type(data).__name__}",
        "Give a path, a pandas or polars DataFrame, a pyarrow Table or RecordBatchReader, "
        "or an iterable of dicts.",
    )


def _pandas_input(frame: Any, name: str, index_columns: Sequence[str]) -> TableInput:
    pa = require("pyarrow", "pandas", "Reading a pandas DataFrame")
    wanted = [level for level in frame.index.names if level is not None and level in index_columns]
    if wanted:
        frame = frame.reset_index(level=wanted)
    rows, width = frame.shape

    def column(part: Any, position: int) -> Any:
        series = part.iloc[:, position]
        try:
            array = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            array = None  # mixed Python objects in one column
        if array is None or pa.types.is_nested(array.type):
            # Value by value, by the same rules; dicts stay as they are (Arrow would
            # give every dict of a column every key seen in it).
            return pa.array([value_text(v) for v in series], pa.string())
        return array

    def batches() -> Iterator[Sequence[Any]]:
        for start in range(0, rows, BATCH_ROWS):
            part = frame.iloc[start : start + BATCH_ROWS]
            yield [column(part, i) for i in range(width)]

    def opener() -> Source:
        source = _table_source(name, "table", list(frame.columns), "pandas DataFrame", rows, 0)
        source.records = _records_of_columns(batches(), source)
        return source

    return TableInput(name, opener, int(frame.memory_usage(index=False, deep=False).sum()))


def _arrow_input(table: Any, name: str, description: str) -> TableInput:
    def opener() -> Source:
        source = _table_source(name, "table", table.schema.names, description, table.num_rows, 0)
        batches = (batch.columns for batch in table.to_batches(max_chunksize=BATCH_ROWS))
        source.records = _records_of_columns(batches, source)
        return source

    return TableInput(name, opener, int(table.nbytes))


def _spooled_arrow(reader: Any, name: str) -> TableInput:
    """A one-shot Arrow stream, written once to a temporary Arrow file and read from
    there (memory-mapped) as often as the run needs: flat memory, no re-computation."""
    pa = require("pyarrow", "parquet")
    handle, path = tempfile.mkstemp(prefix="metrix-import-", suffix=".arrow")
    os.close(handle)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)

    def opener() -> Source:
        with pa.memory_map(path) as mapped:
            schema = pa.ipc.open_file(mapped).schema
        source = _table_source(name, "table", schema.names, "Arrow stream", None, 0)

        def batches() -> Iterator[Sequence[Any]]:
            with pa.memory_map(path) as mapped:
                file = pa.ipc.open_file(mapped)
                for index in range(file.num_record_batches):
                    yield file.get_batch(index).columns

        source.records = _records_of_columns(batches(), source)
        return source

    table = TableInput(name, opener, os.path.getsize(path))
    table._cleanup.append(lambda: Path(path).unlink(missing_ok=True))
    return table


def _dicts_input(rows: Iterable[Any], name: str) -> TableInput:
    """Dicts, one per row. A list is read in place; a one-shot iterator (a generator, a
    database cursor) is spooled once to a temporary JSON Lines file."""
    if isinstance(rows, Sequence):
        return _dict_sequence(rows, name)
    handle, path = tempfile.mkstemp(prefix="metrix-import-", suffix=".jsonl")
    with os.fdopen(handle, "w", encoding="utf-8") as spool:
        for position, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                Path(path).unlink(missing_ok=True)
                raise SourceError(name, f"item {position} is a {type(row).__name__}, not a dict")
            spool.write(_spool_line(row))
    size = os.path.getsize(path)

    def opener() -> Source:
        source = open_jsonl(name, lambda: open(path, "rb"), size, f"{path}\0{size}")  # noqa: SIM115
        assert isinstance(source, TableSource)
        source.description = "rows of dicts"
        return source

    table = TableInput(name, opener, size)
    table._cleanup.append(lambda: Path(path).unlink(missing_ok=True))
    return table


def _spool_line(row: dict[Any, Any]) -> str:
    # Values go as their cell text where JSON would change them (dates, decimals, NaN).
    plain = {
        str(key): value if isinstance(value, (str, int, dict, list)) else value_text(value)
        for key, value in row.items()
    }
    return json.dumps(plain, ensure_ascii=False, default=value_text) + "\n"


def _dict_sequence(rows: Sequence[Any], name: str) -> TableInput:
    keys: dict[str, None] = {}
    for position, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise SourceError(name, f"item {position} is a {type(row).__name__}, not a dict")
        keys.update(dict.fromkeys(str(key) for key in row))
    header = list(keys)

    def opener() -> Source:
        if not header:
            raise SourceError(name, "the rows have no keys", "Give one dict per row.")
        source = _table_source(name, "table", header, "rows of dicts", len(rows), 0)

        def records() -> Iterator[Record]:
            for number, row in enumerate(rows, start=1):
                texts = {str(key): value for key, value in row.items()}
                cells = [value_text(texts.get(key)) for key in header]
                if any(cells):
                    yield number, cells, None
                else:
                    source.stats.blank_rows += 1

        source.records = records()
        return source

    return TableInput(name, opener, 0)
