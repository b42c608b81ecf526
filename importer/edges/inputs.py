"""One door for every input named by a path or URL: which reader, and what identifies it.

CSV and Excel go to ``readers``; Parquet and JSON Lines to ``tables``; ``s3://``,
``gs://``, ``az://`` and ``https://`` locations are streamed through ``remote``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from importer.edges import remote
from importer.edges.readers import Marks, Source, open_source, open_stored_csv
from importer.edges.state import input_fingerprint
from importer.edges.tables import (
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    RowGroups,
    open_jsonl,
    open_parquet,
    parquet_row_groups,
)
from importer.errors import SourceError

DATA_SUFFIXES = (*PARQUET_SUFFIXES, *JSONL_SUFFIXES)


def kind_of(path: str) -> str:
    """ "parquet", "jsonl" or "sheet" (CSV, TSV, Excel: the readers tell them apart)."""
    name = path.lower().split("?", 1)[0]
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if not remote.is_url(path):
        try:
            with open(path, "rb") as probe:
                if probe.read(4) == b"PAR1":
                    return "parquet"
        except OSError:
            pass  # the reader says what is wrong with it
    return "sheet"


def open_input(
    path: str,
    *,
    sheet: str | int | None = None,
    encoding: str = "auto",
    delimiter: str = "auto",
    header_row: int = 1,
    marks: Marks | None = None,
    row_groups: RowGroups | None = None,
) -> Source:
    """Open any input named by a path or URL; raises SourceError when it cannot be read.

    ``marks`` notes record starts as a local CSV file is read (its partitions);
    ``row_groups`` reads only those of a Parquet file (one of its partitions)."""
    kind = kind_of(path)
    if remote.is_url(path):
        found = remote.info(path)
        if kind == "parquet":
            return open_parquet(path, lambda: remote.open_binary(path), found.size, row_groups)
        if kind == "jsonl":
            return open_jsonl(path, lambda: remote.open_binary(path), found.size, found.identity())
        return open_stored_csv(
            path, lambda: remote.open_binary(path), found.size,
            encoding=encoding, delimiter=delimiter, header_row=header_row,
        )  # fmt: skip
    if kind == "sheet":
        return open_source(path, sheet=sheet, encoding=encoding, delimiter=delimiter,
                           header_row=header_row, marks=marks)  # fmt: skip
    file = Path(path)
    if not file.is_file():
        raise SourceError(path, "the file does not exist", "Check the path and try again.")
    stat = file.stat()
    if kind == "parquet":
        return open_parquet(path, path, stat.st_size, row_groups)
    identity = f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return open_jsonl(path, lambda: open(file, "rb"), stat.st_size, identity)


def row_groups(path: str) -> list[int]:
    """The rows of each row group of a Parquet file or object (its footer alone is read)."""
    if remote.is_url(path):
        return parquet_row_groups(path, lambda: remote.open_binary(path))
    return parquet_row_groups(path, path)


def expand(pattern: str) -> list[str] | None:
    """The inputs a URL, URL glob or folder stands for; None for a local file or glob,
    which the caller expands as before."""
    if remote.is_url(pattern):
        return remote.expand(pattern)
    folder = Path(pattern)
    if folder.is_dir():
        parts = sorted(
            str(p)
            for p in folder.rglob("*")
            if p.is_file()
            and p.name.lower().endswith(DATA_SUFFIXES)
            and not p.name.startswith(("_", "."))
        )
        if not parts:
            raise SourceError(
                pattern,
                "this folder holds no Parquet or JSON Lines files",
                "Give the path of a file, or a quoted glob.",
            )
        return parts
    return None


def size_of(path: str) -> int:
    """Bytes of the input (0 when unknown), to decide whether worker processes pay."""
    try:
        return remote.info(path).size if remote.is_url(path) else Path(path).stat().st_size
    except (OSError, SourceError):
        return 0


def is_local(path: str) -> bool:
    """Whether the input is a file on this machine (not in object storage)."""
    return not remote.is_url(path)


def content_digest(path: str) -> str:
    """A digest of every byte of a local file: about 0.1 s per 100 MB, where reading
    its rows takes seconds. Equal digests mean equal files, whatever their times say."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise SourceError(path, f"cannot read the file ({exc.strerror})") from None


def fingerprint(paths: Sequence[str]) -> str:
    """What ties a run to its inputs for --state: for files their name, size,
    modification time and first/last MiB; for stored objects their URL, size, ETag and
    version (never the whole object)."""
    local = [path for path in paths if not remote.is_url(path)]
    stored = [path for path in paths if remote.is_url(path)]
    if not stored:
        return input_fingerprint(local)
    digest = hashlib.sha256()
    if local:
        digest.update(input_fingerprint(local).encode())
    for url in stored:
        digest.update(remote.info(url).identity().encode())
    return digest.hexdigest()
