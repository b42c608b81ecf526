"""Run state in SQLite: resume after a crash, --only-changed, and a run lock.

One file (``--state PATH``, WAL mode, small transactions) remembers:

- ``runs``: each run's sources, input and mapping fingerprints, fixed start time (the
  default message ``time``, so a resumed run rebuilds the very same message ids), status
  and final counts;
- ``row_done`` and ``skipped_spans``: which rows of the current run are finished for
  good — sent or failed for good (one entry per row: they finish in any order), or
  skipped (one entry per run of consecutive rows skipped for the same reason: a nightly
  run that skips millions of unchanged rows records a few thousand spans) — so a
  resumed run does not send them again; cleared when the run finishes;
- ``failures``: the current run's failed-for-good rows, so the failure CSV of a resumed
  run still lists the rows that failed before the crash;
- ``delivered``: per customUserId, fingerprints of the content last delivered and of
  the row it came from (for ``--only-changed``); kept across runs;
- ``id_pass``: the duplicate check's result for the inputs' exact content (with the
  mapping, policy and version), so a run over unchanged inputs need not read them twice;
- ``parts_done``: with ``run --engine dask``, the partitions of the current run whose
  every row is recorded, so a resumed run does not even read them (a run on one
  machine ignores them: their rows are in ``row_done``); cleared with ``row_done``.

Rows are recorded as done only after Metrix answered for them, and written in batches:
a crash loses at most the last batch, whose rows are sent again with the same message
ids — Metrix drops the duplicates. SQLite's journal keeps the file readable whatever
instant the process dies at.

The lock is an ``flock`` on ``PATH.lock``: the kernel releases it when the process dies,
even by SIGKILL, so a stale lock never blocks the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from importer.core.outcome import SkipReason, Stage
from importer.core.rowset import RowSet
from importer.edges.outputs import output_error, space_hint
from importer.errors import OutputError, StateError, StateLocked

SCHEMA_VERSION = 2
BATCH_ROWS = 5000
# Status codes kept per done row (short, since there is one per row).
SENT, FAILED, SKIPPED_UNCHANGED, SKIPPED_DUPLICATE, SKIPPED_OTHER = "s", "f", "u", "d", "k"
SKIP_REASONS = {
    SKIPPED_UNCHANGED: SkipReason.UNCHANGED,
    SKIPPED_DUPLICATE: SkipReason.DUPLICATE,
}

_SKIP_CODES: dict[str, str] = {text: code for code, text in SKIP_REASONS.items()}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,             -- running | finished | aborted | interrupted | abandoned
    sources TEXT NOT NULL,            -- JSON list of source labels
    input_fingerprint TEXT NOT NULL,
    mapping_fingerprint TEXT NOT NULL,
    run_time_ms INTEGER NOT NULL,
    counts TEXT                       -- JSON summary, written when the run ends
);
CREATE TABLE IF NOT EXISTS row_done (
    run_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    row INTEGER NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (run_id, source, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS skipped_spans (
    run_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,            -- the rows first..last, inclusive
    status TEXT NOT NULL,             -- as in row_done, one of the skipped codes
    PRIMARY KEY (run_id, source, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures (
    run_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    row INTEGER NOT NULL,
    stage TEXT NOT NULL,
    error TEXT NOT NULL,
    keys TEXT NOT NULL,               -- JSON list of short reasons, for the summary
    cells TEXT NOT NULL,              -- JSON list of the row's cells
    PRIMARY KEY (run_id, source, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (
    user_id TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,        -- of the mapped content, time excluded
    raw BLOB NOT NULL                 -- of the row's cells (with mapping and header)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS id_pass (
    key TEXT PRIMARY KEY,             -- digest of the inputs' bytes, mapping, policy, version
    plan TEXT NOT NULL                -- the duplicate check's result (JSON)
);
CREATE TABLE IF NOT EXISTS parts_done (
    run_id INTEGER NOT NULL,
    part TEXT NOT NULL,               -- the partition: input label and byte range
    blank_rows INTEGER NOT NULL,
    PRIMARY KEY (run_id, part)
) WITHOUT ROWID;
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def input_fingerprint(paths: Sequence[str | Path]) -> str:
    """Identifies the inputs: name, size, modification time and the first/last MiB.

    Cheap even for multi-GB exports; an export rewritten in place (the nightly case)
    changes its modification time, so it is a different input.
    """
    digest = hashlib.sha256()
    for path in paths:
        file = Path(path).resolve()
        info = file.stat()
        digest.update(f"{file}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(1 << 20))
            if info.st_size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
    return digest.hexdigest()


@dataclass
class RunInfo:
    """The run a state file is working on."""

    run_id: int
    run_time_ms: int
    resumed: bool


@dataclass
class Restored:
    """What a resumed run had already done before it was stopped."""

    sent: int = 0
    failed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.sent + self.failed + sum(self.skipped.values())


class StateStore:
    """An open, locked state file. Implements the runner's Ledger."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_file: IO[str] | None = None
        self._acquire_lock()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise StateError(
                f"{self.path}: this is not a metrix-importer state file ({exc}); "
                "give another --state path"
            ) from None
        self.run: RunInfo | None = None
        self._sources: dict[str, int] = {}
        self._done: dict[int, RowSet] = {}
        self._pending_done: list[tuple[int, int, int, str]] = []
        # [run, source, first row, last row, status]: the open span grows in place.
        self._pending_spans: list[list[Any]] = []
        self._pending_failures: list[tuple[int, int, int, str, str, str, str]] = []
        self._pending_delivered: list[tuple[str, bytes, bytes]] = []
        self._pending_parts: list[tuple[int, str, int]] = []

    # --- locking ----------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise output_error(self.path, exc, "the state file") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateLocked(
                f"{self.path} is in use by another run ({holder}). Wait for it to finish; "
                "two runs on one state file would send rows twice."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {_now()}\n")
        handle.flush()
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise StateError(
                f"{self.path} was written by another version of metrix-importer "
                f"(schema {row[0]}, this one reads {SCHEMA_VERSION}); use a new --state path"
            )

    # --- runs -------------------------------------------------------------------------

    def unfinished_run(self) -> sqlite3.Row | None:
        """The latest run that did not finish, if any."""
        self.db.row_factory = sqlite3.Row
        try:
            row: sqlite3.Row | None = self.db.execute(
                "SELECT * FROM runs WHERE status NOT IN ('finished', 'abandoned') "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            self.db.row_factory = None
        return row

    def begin(
        self,
        sources: Sequence[str],
        input_fp: str,
        mapping_fp: str,
        run_time_ms: int,
        restart: bool,
        paths: Sequence[str] = (),
    ) -> RunInfo:
        """Resume the unfinished run on the same input and mapping, or start a new one.
        ``paths``: the input files, shown by ``metrix-import state``."""
        previous = self.unfinished_run()
        if previous is not None and not restart:
            same_input = previous["input_fingerprint"] == input_fp
            same_mapping = previous["mapping_fingerprint"] == mapping_fp
            if same_input and same_mapping:
                self.run = RunInfo(previous["id"], previous["run_time_ms"], resumed=True)
                self._sources = {
                    label: i for i, label in enumerate(json.loads(previous["sources"]))
                }
                self._set_status("running")
                self._load_done()
                return self.run
            what = " and ".join(
                name
                for name, same in (("input file", same_input), ("mapping", same_mapping))
                if not same
            )
            raise StateError(
                f"{self.path} holds an unfinished run (started {previous['started_at']}) on a "
                f"different {what}. Resuming it with other data could skip or repeat rows. "
                "Run again with the original file and mapping to finish it, or add --restart "
                "to start over (users already delivered stay known to --only-changed)."
            )
        if previous is not None:
            self.db.execute(
                "UPDATE runs SET status = 'abandoned', updated_at = ? WHERE id = ?",
                (_now(), previous["id"]),
            )
            self._clear_rows(previous["id"])
        cursor = self.db.execute(
            "INSERT INTO runs (started_at, updated_at, status, sources, input_fingerprint, "
            "mapping_fingerprint, run_time_ms) VALUES (?, ?, 'running', ?, ?, ?, ?)",
            (_now(), _now(), json.dumps(list(sources)), input_fp, mapping_fp, run_time_ms),
        )
        assert cursor.lastrowid is not None
        if paths:
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (f"run {cursor.lastrowid} inputs", json.dumps(list(paths), ensure_ascii=False)),
            )
        self.run = RunInfo(cursor.lastrowid, run_time_ms, resumed=False)
        self._sources = {label: i for i, label in enumerate(sources)}
        return self.run

    def _load_done(self) -> None:
        assert self.run is not None
        for source, row in self.db.execute(
            "SELECT source, row FROM row_done WHERE run_id = ?", (self.run.run_id,)
        ):
            self._done.setdefault(source, RowSet()).add(row)
        for source, first, last in self.db.execute(
            "SELECT source, first, last FROM skipped_spans WHERE run_id = ?", (self.run.run_id,)
        ):
            self._done.setdefault(source, RowSet()).add_range(first, last)

    def restored(self) -> Restored:
        """Counts of what the resumed run had already finished."""
        assert self.run is not None
        result = Restored()
        counts = Counter(
            dict(
                self.db.execute(
                    "SELECT status, COUNT(*) FROM row_done WHERE run_id = ? GROUP BY status",
                    (self.run.run_id,),
                ).fetchall()
            )
        )
        counts.update(_skipped_in_spans(self.db, self.run.run_id))
        for status, count in counts.items():
            if status == SENT:
                result.sent = count
            elif status == FAILED:
                result.failed = count
            else:
                result.skipped[SKIP_REASONS.get(status, "skipped")] += count
        for stage, keys in self.db.execute(
            "SELECT stage, keys FROM failures WHERE run_id = ?", (self.run.run_id,)
        ):
            if stage in (Stage.READ, Stage.VALIDATE):
                result.invalid += 1
            result.reasons.update(json.loads(keys))
        return result

    def prior_failures(self) -> Iterator[tuple[str, int, str, str, list[str]]]:
        """(source, row, stage, error, cells) of rows that failed before a resume."""
        assert self.run is not None
        labels = {i: label for label, i in self._sources.items()}
        for source, row, stage, error, cells in self.db.execute(
            "SELECT source, row, stage, error, cells FROM failures WHERE run_id = ? "
            "ORDER BY source, row",
            (self.run.run_id,),
        ):
            yield labels.get(source, ""), row, stage, error, json.loads(cells)

    def finish(self, status: str, counts: dict[str, Any]) -> None:
        """Record how the run ended; a finished run forgets its rows (the next starts anew)."""
        assert self.run is not None
        self.checkpoint(force=True)
        try:
            self._finish(status, counts)
        except (sqlite3.OperationalError, OSError) as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise _state_write_error(self.path, exc) from None

    def _finish(self, status: str, counts: dict[str, Any]) -> None:
        assert self.run is not None
        self.db.execute("BEGIN")
        self.db.execute(
            "UPDATE runs SET status = ?, updated_at = ?, counts = ? WHERE id = ?",
            (status, _now(), json.dumps(counts, ensure_ascii=False), self.run.run_id),
        )
        if status == "finished":
            self._clear_rows(self.run.run_id)
        self.db.execute("COMMIT")

    def _clear_rows(self, run_id: int) -> None:
        self.db.execute("DELETE FROM row_done WHERE run_id = ?", (run_id,))
        self.db.execute("DELETE FROM skipped_spans WHERE run_id = ?", (run_id,))
        self.db.execute("DELETE FROM failures WHERE run_id = ?", (run_id,))
        self.db.execute("DELETE FROM parts_done WHERE run_id = ?", (run_id,))

    def _set_status(self, status: str) -> None:
        assert self.run is not None
        self.db.execute(
            "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?",
            (status, _now(), self.run.run_id),
        )

    def close(self) -> None:
        """Write what is pending and release the lock."""
        try:
            if self.run is not None:
                # A failure here was already reported by finish() (or the run's stop);
                # what was committed before stays and the next run resumes from it.
                with contextlib.suppress(OutputError):
                    self.checkpoint(force=True)
            self.db.close()
        finally:
            self._release_lock()

    # --- the duplicate check of unchanged inputs --------------------------------------

    def remembered_plan(self, key: str) -> str | None:
        """The duplicate check's result last remembered under ``key`` (None if none)."""
        row = self.db.execute("SELECT plan FROM id_pass WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def remember_plan(self, key: str, plan: str) -> None:
        """Keep ``plan`` under ``key``, in place of any earlier one (only the latest
        inputs can be read again unchanged)."""
        try:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM id_pass")
            self.db.execute("INSERT INTO id_pass VALUES (?, ?)", (key, plan))
            self.db.execute("COMMIT")
        except (sqlite3.OperationalError, OSError) as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise _state_write_error(self.path, exc) from None

    # --- the Ledger the runner writes to ----------------------------------------------

    def _source(self, label: str) -> int:
        index = self._sources.get(label)
        if index is None:
            index = self._sources[label] = len(self._sources)
        return index

    @property
    def has_done(self) -> bool:
        """Whether any row of this run is already finished (so there is anything to skip)."""
        return bool(self._done)

    def is_done(self, source: str, row: int) -> bool:
        done = self._done.get(self._sources.get(source, -1))
        return done is not None and row in done

    def done_rows(self, source: str) -> RowSet | None:
        """The rows of ``source`` finished before this (resumed) run, if any."""
        return self._done.get(self._sources.get(source, -1))

    def parts_done(self) -> dict[str, int]:
        """The partitions finished before this (resumed) run, with their blank rows."""
        assert self.run is not None
        query = "SELECT part, blank_rows FROM parts_done WHERE run_id = ?"
        return dict(self.db.execute(query, (self.run.run_id,)))

    def record_part(self, part: str, blank_rows: int) -> None:
        """Partition ``part`` is finished: every row of it is recorded (committed with
        them at the next checkpoint)."""
        assert self.run is not None
        self._pending_parts.append((self.run.run_id, part, blank_rows))

    def delivered(self, user_ids: list[str]) -> dict[str, tuple[bytes, bytes]]:
        """(content, raw row) fingerprints last delivered, of the known ``user_ids``."""
        found: dict[str, tuple[bytes, bytes]] = {}
        for start in range(0, len(user_ids), 900):  # SQLite's host-parameter limit
            chunk = user_ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT user_id, fingerprint, raw FROM delivered WHERE user_id IN ({marks})"
            for user, fingerprint, raw in self.db.execute(query, chunk):
                found[user] = (fingerprint, raw)
        return found

    def unchanged_users(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        """The users among ``pairs`` whose last delivered content is the same (one query)."""
        return self._same(pairs, "fingerprint")

    def unchanged_raw(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        """The users among ``pairs`` last delivered from exactly the same raw row."""
        return self._same(pairs, "raw")

    def _same(self, pairs: Sequence[tuple[str, bytes]], column: str) -> set[str]:
        return same_values(self.db, pairs, column)

    def raw_lookup(self) -> Callable[[], Callable[[Sequence[tuple[str, bytes]]], set[str]]]:
        """What makes ``unchanged_raw`` in a forked worker process: a read-only
        connection of its own to this file (a connection must not cross a fork)."""
        return functools.partial(_raw_lookup, self.path)

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None:
        assert self.run is not None
        self._pending_done.append((self.run.run_id, self._source(source), row, SENT))
        self._pending_delivered.append((user_id, fingerprint, raw))
        self._maybe_commit()

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        if stage == Stage.NOT_SENT:
            return  # not done: a resumed run sends it
        assert self.run is not None
        index = self._source(source)
        self._pending_done.append((self.run.run_id, index, row, FAILED))
        self._pending_failures.append(
            (
                self.run.run_id, index, row, stage, error,
                json.dumps(list(keys), ensure_ascii=False), json.dumps(cells, ensure_ascii=False),
            )
        )  # fmt: skip
        self._maybe_commit()

    def record_skipped(self, source: str, row: int, reason: str) -> None:
        assert self.run is not None
        code = _SKIP_CODES.get(reason, SKIPPED_OTHER)
        index = self._source(source)
        spans = self._pending_spans
        if spans:
            span = spans[-1]
            if span[3] + 1 == row and span[1] == index and span[4] == code:
                span[3] = row
                return
        spans.append([self.run.run_id, index, row, row, code])
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        if len(self._pending_done) + len(self._pending_spans) >= BATCH_ROWS:
            self.checkpoint(force=True)

    def checkpoint(self, force: bool = False) -> None:
        """Commit pending records in one transaction (called about once a second).

        A full disk (or a file that became read-only) raises ``OutputError``: what was
        committed before stays, so the next run resumes from there."""
        if not (
            self._pending_done
            or self._pending_spans
            or self._pending_delivered
            or self._pending_parts
        ):
            return  # failures are always pending together with their done rows
        try:
            self._commit()
        except (sqlite3.OperationalError, OSError) as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise _state_write_error(self.path, exc) from None

    def _commit(self) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO row_done VALUES (?, ?, ?, ?)", self._pending_done
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO skipped_spans VALUES (?, ?, ?, ?, ?)", self._pending_spans
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?)", self._pending_failures
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO delivered VALUES (?, ?, ?)", self._pending_delivered
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO parts_done VALUES (?, ?, ?)", self._pending_parts
        )
        self.db.execute(
            "UPDATE runs SET updated_at = ? WHERE id = ?",
            (_now(), self.run.run_id if self.run else 0),
        )
        self.db.execute("COMMIT")
        self._pending_done.clear()
        self._pending_spans.clear()
        self._pending_failures.clear()
        self._pending_delivered.clear()
        self._pending_parts.clear()


def _state_write_error(path: Path, exc: Exception) -> OutputError:
    """A failed commit, as an error that names the file and the remedy."""
    if isinstance(exc, OSError):
        return output_error(path, exc, "the state file")
    text = str(exc)
    error: int | None = None
    if "full" in text:
        problem, error = "the disk is full", errno.ENOSPC
    elif "readonly" in text or "read-only" in text:
        problem, error = "the file or its folder became read-only", errno.EROFS
    else:
        problem = text
    return OutputError(
        str(path),
        f"cannot write the state file: {problem}; everything committed before is kept",
        space_hint(path, error),
    )


def same_values(
    db: sqlite3.Connection, pairs: Sequence[tuple[str, bytes]], column: str
) -> set[str]:
    """The users among ``pairs`` whose stored ``column`` equals the value given."""
    wanted = dict(pairs)
    return {
        user for user, value in stored_values(db, list(wanted), column) if wanted[user] == value
    }


def _raw_lookup(path: Path) -> Callable[[Sequence[tuple[str, bytes]]], set[str]]:
    """``unchanged_raw`` over a read-only connection opened on first use."""
    opened: list[sqlite3.Connection] = []

    def unchanged_raw(pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        if not opened:
            uri = path.resolve().as_uri() + "?mode=ro"
            opened.append(sqlite3.connect(uri, uri=True, check_same_thread=False))
        return same_values(opened[0], pairs, "raw")

    return unchanged_raw


def stored_values(
    db: sqlite3.Connection, user_ids: list[str], column: str
) -> Iterator[tuple[str, bytes]]:
    """(user id, ``column``) of the delivered users among ``user_ids``, in batches."""
    for start in range(0, len(user_ids), 900):  # SQLite's host-parameter limit
        chunk = user_ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        yield from db.execute(
            f"SELECT user_id, {column} FROM delivered WHERE user_id IN ({marks})", chunk
        )


def describe_state(path: str | Path) -> str:
    """What a state file holds, for `metrix-import state PATH` (read-only, no lock)."""
    file = Path(path)
    if not file.exists():
        raise StateError(f"{file}: no such state file")
    try:
        db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        runs = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        users = db.execute("SELECT COUNT(*) FROM delivered").fetchone()[0]
        pending = _pending_rows(db)
        parts = _parts_done(db)
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{file}: not a metrix-importer state file ({exc})") from None
    holder = _lock_holder(file)
    lines = [f"{file}: {len(runs)} run(s), {users:,} users delivered (known to --only-changed)"]
    for run in runs:
        sources = _sources(db, run)
        status = run["status"]
        if status == "running":
            status = f"running ({holder})" if holder else "interrupted (resumable)"
        elif status in ("aborted", "interrupted"):
            status += " (resumable)"
        lines.append(
            f"  run {run['id']}: {status}, started {run['started_at']}, "
            f"last update {run['updated_at']}, sources: {sources}"
        )
        if run["counts"]:
            counts = json.loads(run["counts"])
            lines.append(
                "    rows {rows_total:,}: sent {rows_sent:,}, failed {rows_failed:,}, "
                "skipped {rows_skipped:,}".format(**counts)
            )
        if run["status"] not in ("finished", "abandoned"):
            done = parts.get(run["id"])
            lines.append(
                f"    resumable: {pending.get(run['id'], 0):,} rows already done"
                + (f", {done:,} partitions finished (--engine dask)" if done else "")
                + "; run the same command again to resume, or add --restart to start over"
            )
    db.close()
    return "\n".join(lines)


def _pending_rows(db: sqlite3.Connection) -> Counter[int]:
    """Rows already done per unfinished run (a file from before spans has none of them)."""
    pending: Counter[int] = Counter()
    for run, count in db.execute("SELECT run_id, COUNT(*) FROM row_done GROUP BY run_id"):
        pending[run] += count
    with contextlib.suppress(sqlite3.OperationalError):
        for (run,) in db.execute("SELECT DISTINCT run_id FROM skipped_spans").fetchall():
            pending[run] += sum(_skipped_in_spans(db, run).values())
    return pending


def _skipped_in_spans(db: sqlite3.Connection, run_id: int) -> Counter[str]:
    """Rows skipped in ``run_id``'s spans, by status: each row once, however often it was
    recorded (a Dask partition run again after its worker died reports its rows again,
    cut into other spans), and none that ``row_done`` holds too (where a version from
    before spans recorded it while resuming)."""
    in_rows: dict[int, RowSet] = {}
    for source, row in db.execute("SELECT source, row FROM row_done WHERE run_id = ?", (run_id,)):
        in_rows.setdefault(source, RowSet()).add(row)
    counts: Counter[str] = Counter()
    current, reach = -1, -1  # the source, and the last row its spans so far cover
    query = (
        "SELECT source, first, last, status FROM skipped_spans WHERE run_id = ? "
        "ORDER BY source, first"
    )
    for source, first, last, status in db.execute(query, (run_id,)):
        if source != current:
            current, reach = source, -1
        if last <= reach:
            continue  # inside spans already counted
        first, reach = max(first, reach + 1), last
        recorded = in_rows.get(source)
        also_in_rows = len(recorded.between(first, last)) if recorded is not None else 0
        counts[status] += last - first + 1 - also_in_rows
    return counts


def _parts_done(db: sqlite3.Connection) -> dict[int, int]:
    """Partitions done per run (a file from before partitions were kept has none)."""
    try:
        query = "SELECT run_id, COUNT(*) FROM parts_done GROUP BY run_id"
        return {run: count for run, count in db.execute(query)}
    except sqlite3.OperationalError:
        return {}


def _sources(db: sqlite3.Connection, run: sqlite3.Row) -> str:
    """The run's inputs: its labels, or the files it read (one file has no label)."""
    labels = [label for label in json.loads(run["sources"]) if label]
    if labels:
        return ", ".join(labels)
    stored = db.execute("SELECT value FROM meta WHERE key = ?", (f"run {run['id']} inputs",))
    row = stored.fetchone()
    if row is None and run["counts"]:
        return str(json.loads(run["counts"]).get("source") or "?")
    return ", ".join(json.loads(row[0])) if row else "?"


def _lock_holder(file: Path) -> str:
    """Who holds the state file's lock ("" when no run does: a crashed run left it)."""
    lock_path = file.with_name(file.name + ".lock")
    try:
        handle = open(lock_path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        return ""
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return ""


class StateReader:
    """Read-only look-ups in a state file (for `plan`): never locks, never writes."""

    def __init__(self, path: str | Path | None) -> None:
        self.db: sqlite3.Connection | None = None
        if path is not None and Path(path).exists():
            try:
                self.db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
                self.db.execute("SELECT 1 FROM delivered LIMIT 1")
            except sqlite3.DatabaseError as exc:
                raise StateError(f"{path}: not a metrix-importer state file ({exc})") from None

    def classify(self, pairs: Sequence[tuple[str, bytes]]) -> tuple[set[str], set[str]]:
        """(unchanged, changed) users among ``pairs``; the others are new."""
        unchanged: set[str] = set()
        changed: set[str] = set()
        if self.db is None or not pairs:
            return unchanged, changed
        wanted = dict(pairs)
        for user_id, fingerprint in stored_values(self.db, list(wanted), "fingerprint"):
            (unchanged if wanted[user_id] == fingerprint else changed).add(user_id)
        return unchanged, changed

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
