"""Every call from the page into the importer's engine and edges, in one place.

The page converts nothing itself: samples go through ``core.messages.RowMapper`` (the
CLI's row mapper), the draft is ``core.infer.draft_mapping`` (init-mapping's),
whole-file counts are ``validate_job`` (validate's) and imports are ``run_job`` with
``--state`` (run's). Validation and imports run in a child process started fresh
(from a fork server): there the engine has a main thread of its own for its signal handlers and
worker processes, and Stop is a SIGINT, exactly Ctrl-C. The API key reaches the child
through a pipe, never a file, an argument or the environment.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from importer.core.config import Mapping, load_mapping, parse_mapping
from importer.core.delivery import mask
from importer.core.infer import draft_mapping
from importer.core.messages import MappedRow, RowMapper, encode_body
from importer.edges.html_report import CSS_HASH, failures_by_column
from importer.edges.progress import Sample, Snapshot
from importer.edges.readers import list_sheets, open_source
from importer.edges.state import describe_state
from importer.edges.transport import check_endpoint
from importer.engine.pipeline import run_start_millis, sample_rows
from importer.errors import ImporterError

__all__ = [
    "CSS_HASH",
    "ImporterError",
    "Mapping",
    "ReaderSettings",
    "SampleCheck",
    "Table",
    "Task",
    "check_endpoint",
    "check_sample",
    "describe_state",
    "draft",
    "failures_by_column",
    "open_table",
    "parse",
    "preview_row",
    "start_run",
    "start_validation",
]

SAMPLE_ROWS = 2000
SHOWN_SAMPLES = 3


@dataclass(frozen=True)
class ReaderSettings:
    """How to read the file, as the user set it (``auto`` detects)."""

    encoding: str = "auto"
    delimiter: str = "auto"
    header_row: int = 1
    sheet: str | None = None

    def as_source(self) -> dict[str, Any]:
        """The mapping's ``source:`` keys for the settings the user changed."""
        out: dict[str, Any] = {}
        if self.encoding != "auto":
            out["encoding"] = self.encoding
        if self.delimiter != "auto":
            out["delimiter"] = "tab" if self.delimiter == "\t" else self.delimiter
        if self.sheet is not None:
            out["sheet"] = self.sheet
        return out


@dataclass
class Table:
    """An opened file: what was detected, its header and a sample spread through it."""

    path: str
    name: str
    kind: str
    header: list[str]
    description: str
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    sheets: list[str]
    sample: list[list[str]]


def open_table(path: str, name: str, settings: ReaderSettings) -> Table:
    """Open ``path`` the way every command does and sample it as init-mapping does."""
    source = open_source(
        path, sheet=settings.sheet, encoding=settings.encoding,
        delimiter=settings.delimiter, header_row=settings.header_row,
    )  # fmt: skip
    sheets = list_sheets(path) if source.kind == "excel" else []
    description = source.describe().replace(path, name, 1)
    sample = sample_rows(source, SAMPLE_ROWS)
    return Table(
        path, name, source.kind, source.header, description, source.encoding,
        source.delimiter, source.sheet, sheets, sample,
    )  # fmt: skip


def draft(table: Table) -> tuple[str, dict[str, str]]:
    """init-mapping's draft for the table: the YAML text and its CHECK notes by path."""
    result = draft_mapping(
        table.header, table.sample, source_name=table.name,
        sheet=table.sheet if table.kind == "excel" else None,
    )  # fmt: skip
    checks = {}
    for note in result.notes:
        path, _, text = note.partition(": ")
        checks[path] = text
    return result.yaml, checks


def parse(text: str, name: str) -> Mapping:
    """The mapping exactly as the CLI would load it (MappingError lists every problem)."""
    return parse_mapping(text, name)


@dataclass
class ColumnCheck:
    """One column over the sample: converted values and failures."""

    converted: list[str] = field(default_factory=list)
    failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class SampleCheck:
    """The mapping applied to the sample with the CLI's row mapper."""

    rows: int
    invalid: int
    columns: dict[str, ColumnCheck]
    bodies: list[str]  # request bodies of the first valid sampled rows
    problem: str = ""  # the mapping does not fit the file (e.g. a missing column)


def check_sample(mapping: Mapping, table: Table) -> SampleCheck:
    """Map every sampled row; per column the converted values and why cells fail."""
    try:
        mapper = RowMapper(mapping, table.header, run_start_millis())
    except ImporterError as exc:
        return SampleCheck(0, 0, {}, [], str(exc))
    columns = {name: ColumnCheck() for name in table.header}
    targets = {column: path for path, column in mapping.column_specs()}
    invalid = 0
    bodies: list[str] = []
    for index, cells in enumerate(table.sample):
        result = mapper.map_row(_fit(cells, len(table.header)))
        if isinstance(result, MappedRow):
            if len(bodies) < SHOWN_SAMPLES:
                bodies.append(encode_body(result)[0].decode())
        else:
            invalid += 1
        failed = set()
        if not isinstance(result, MappedRow):
            for problem in result:
                column = problem.column or ""
                if column in columns:
                    failed.add(column)
                    columns[column].reasons[problem.reason] += 1
            for column in failed:
                columns[column].failures += 1
        if index < SHOWN_SAMPLES:
            for name, check in columns.items():
                check.converted.append(_converted(result, targets.get(name), name in failed))
    return SampleCheck(len(table.sample), invalid, columns, bodies)


def preview_row(mapping: Mapping, path: str, row: int) -> tuple[str, str]:
    """The request body of data row ``row`` (or why it fails), read from the file."""
    source = open_source(
        path, sheet=mapping.source.sheet, encoding=mapping.source.encoding,
        delimiter=mapping.source.delimiter, header_row=mapping.source.header_row,
    )  # fmt: skip
    mapper = RowMapper(mapping, source.header, run_start_millis())
    for number, cells, problem in source.records:
        if number < row:
            continue
        if number > row:
            break
        if problem is not None:
            return "", problem
        result = mapper.map_row(cells)
        if isinstance(result, MappedRow):
            return encode_body(result)[0].decode(), ""
        return "", "; ".join(str(p) for p in result)
    return "", f"the file has no data row {row}"


def _fit(cells: list[str], width: int) -> list[str]:
    return cells + [""] * (width - len(cells)) if len(cells) < width else cells


def _converted(result: MappedRow | list[Any], path: str | None, failed: bool) -> str:
    if path is None:
        return ""
    if not isinstance(result, MappedRow):
        return "✗ fails" if failed else "(row fails on another column)"
    message = result.message
    if path == "user_id":
        return result.user_id
    if path == "time":
        return str(message.get("time"))
    section, _, key = path.partition(".")
    holder = message.get("customAttributes", {}) if section == "custom" else message
    value = holder.get(key)
    return "(empty: omitted)" if value is None and key not in holder else _text(value)


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- background tasks (validation and imports) -----------------------------------------


@dataclass
class Task:
    """A validation or import running in a child process; ``status`` is what the page
    shows, updated from the child's messages."""

    kind: str  # "validate" | "run"
    folder: Path
    process: Any
    status: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    stops: int = 0

    @property
    def running(self) -> bool:
        return bool(self.status.get("state") == "running")

    def stop(self) -> None:
        """An import stops like Ctrl-C: the first stop is gentle (nothing lost), a second
        one is at once. A validation has nothing to lose: it simply ends."""
        if not self.process.is_alive() or not self.process.pid:
            return
        self.status["stopping"] = True
        if self.kind != "run":
            self.process.terminate()
        elif self.status.get("ready"):
            self.stops += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)
        # else: the child is still starting; it is interrupted as soon as it is ready.

    def wait(self, timeout: float) -> None:
        self.process.join(timeout)


def _context() -> Any:
    """A fork server started once, with the importer already imported: each task then
    starts in milliseconds, in a clean single-threaded process (never a fork of the
    page's own process, whose threads and event loop must not be copied)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["importer.ui.engine_bridge", "importer.engine.run", "importer.engine.validate"]
    )
    return context


def _spawn(kind: str, folder: Path, target: Any, job: dict[str, Any]) -> Task:
    context = _context()
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(child, job), daemon=True)
    task = Task(kind, folder, process, {"state": "running", "kind": kind})
    process.start()
    child.close()
    threading.Thread(target=_listen, args=(task, parent), daemon=True).start()
    return task


def _listen(task: Task, conn: Connection) -> None:
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            break
        if kind == "ready":
            task.status["ready"] = True
            if task.status.get("stopping"):
                task.stop()
        elif kind == "progress":
            task.status.update(payload)
        elif kind == "done":
            task.status.update(payload, state="done")
        elif kind == "error":
            task.status.update(state="error", error=payload)
    task.process.join()
    if task.status.get("state") == "running":
        code = task.process.exitcode
        task.status.update(state="error", error=f"the {task.kind} process ended (exit {code})")


def start_validation(path: str, mapping_file: Path, folder: Path) -> Task:
    """validate_job over the whole file in the background, with progress."""
    job = {"path": path, "mapping": str(mapping_file), "folder": str(folder)}
    return _spawn("validate", folder, _validate_child, job)


def start_run(
    path: str, mapping_file: Path, folder: Path, *, endpoint: str, app_id: str, api_key: str,
    concurrency: int | None = None, restart: bool = False,
) -> Task:  # fmt: skip
    """run_job with --state in the background (pacing like the CLI: adaptive unless a
    concurrency is given); the report and failures land in ``folder``."""
    job = {
        "path": path, "mapping": str(mapping_file), "folder": str(folder),
        "endpoint": endpoint, "app_id": app_id, "api_key": api_key,
        "concurrency": concurrency, "restart": restart,
    }  # fmt: skip
    return _spawn("run", folder, _run_child, job)


def run_paths(folder: Path) -> dict[str, Path]:
    """Where a run in ``folder`` writes what it has to say."""
    return {
        "state": folder / "state.db",
        "failures": folder / "failures.csv",
        "summary": folder / "summary.json",
        "report": folder / "report.html",
        "log": folder / "import.log",
    }


def _validate_child(conn: Connection, job: dict[str, Any]) -> None:
    from importer.engine.reporting import save_report
    from importer.engine.validate import validate_job

    try:
        mapping = load_mapping(job["mapping"])
        folder = Path(job["folder"])
        started = time.monotonic()

        def progress(rows: int, fraction: float | None) -> None:
            conn.send(("progress", {"rows": rows, "fraction": fraction,
                                    "elapsed": time.monotonic() - started}))  # fmt: skip

        summary, described = validate_job(
            job["path"], mapping, folder / "failures.csv", None, progress=progress
        )
        save_report(folder / "report.html", summary, mapping, described)
        conn.send(("done", {"summary": summary.as_dict(), "fraction": 1.0}))
    except ImporterError as exc:
        conn.send(("error", str(exc)))
    except KeyboardInterrupt:
        conn.send(("error", "stopped"))
    except Exception as exc:  # a bug: say so on the page, never a traceback
        conn.send(("error", f"internal error ({type(exc).__name__}: {exc})"))


def _run_child(conn: Connection, job: dict[str, Any]) -> None:
    from importer.engine.run import Outputs, run_job
    from importer.engine.runner import SendOptions

    secret = job.pop("api_key")
    folder = Path(job["folder"])
    paths = run_paths(folder)
    conn.send(("ready", None))
    try:
        _log_to(paths["log"], secret)
        mapping = load_mapping(job["mapping"])

        def watch(snapshot: Snapshot, sample: Sample) -> None:
            conn.send(("progress", {
                "done": snapshot.done, "sent": snapshot.sent, "failed": snapshot.failed,
                "skipped": snapshot.skipped, "retrying": snapshot.retrying,
                "retries": snapshot.retries, "fraction": snapshot.fraction,
                "elapsed": sample.seconds,
            }))  # fmt: skip

        options = SendOptions(
            endpoint=job["endpoint"], app_id=job["app_id"], api_key=secret,
            concurrency=job["concurrency"],
        )  # fmt: skip
        outputs = Outputs(
            failures=paths["failures"], summary_json=paths["summary"], progress=False,
            progress_interval=0.5, report=paths["report"], watch=watch,
        )  # fmt: skip
        result = run_job(
            [job["path"]], mapping, options, outputs, state_path=str(paths["state"]),
            restart=job["restart"],
        )  # fmt: skip
        conn.send(("done", {"summary": result.summary.as_dict(), "advice": result.advice,
                            "exit_code": int(result.exit_code)}))  # fmt: skip
    except ImporterError as exc:
        conn.send(("error", _masked(str(exc), secret)))
    except KeyboardInterrupt:
        conn.send(("error", "stopped before the first row was sent; nothing was sent"))
    except Exception as exc:
        conn.send(("error", _masked(f"internal error ({type(exc).__name__}: {exc})", secret)))


def _masked(text: str, secret: str) -> str:
    return mask(text, secret)


class _Masking(logging.Filter):
    """The key never reaches the log, whatever put it in a message."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage(), self.secret), None
        return True


def _log_to(path: Path, secret: str) -> None:
    """The import's log lines go to its folder only (the page's terminal stays quiet)."""
    root = logging.getLogger("metrix_importer")
    root.handlers.clear()
    root.setLevel(logging.INFO)
    root.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_Masking(secret))
    root.addHandler(handler)
