"""What the page is working on: the open file, the mapping being edited, the background
validation and import, the embedded sandbox, and the credentials (memory only)."""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer import __version__
from importer.ui import engine_bridge as bridge
from importer.ui.mapping_doc import MappingDoc, from_yaml, to_yaml

DEFAULT_ENDPOINT = "https://entry.metrix.ir/"
SANDBOX_APP_ID, SANDBOX_KEY = "sandbox-app", "sandbox-key"


@dataclass
class Credentials:
    """Where the import goes. The key lives here, in memory, and nowhere else."""

    endpoint: str = DEFAULT_ENDPOINT
    app_id: str = ""
    api_key: str = field(default="", repr=False)

    @property
    def masked(self) -> str:
        return "set (hidden)" if self.api_key else "not set"


class Workspace:
    """One person's work in one server process."""

    def __init__(self, runs_dir: Path, max_upload: int) -> None:
        self.private = Path(tempfile.mkdtemp(prefix="metrix-ui-"))  # mode 0700
        self.runs_dir = runs_dir
        self.max_upload = max_upload
        self.table: bridge.Table | None = None
        self.uploaded = False
        self.settings = bridge.ReaderSettings()
        self.doc: MappingDoc | None = None
        self.mapping_text = ""
        self.mapping_problem = ""
        self.sample: bridge.SampleCheck | None = None
        self.validation: bridge.Task | None = None
        self.run: bridge.Task | None = None
        self.run_target = ""
        self.picked: tuple[int, str, str] | None = None  # row, body, problem
        self.credentials = Credentials()
        self.sandbox: subprocess.Popen[str] | None = None
        self.sandbox_url = ""
        self.error = ""
        self._count = 0

    # --- files ----------------------------------------------------------------------

    def new_folder(self, kind: str, base: Path | None = None) -> Path:
        self._count += 1
        folder = (base or self.private) / f"{kind}-{self._count}"
        folder.mkdir(parents=True, mode=0o700)
        return folder

    def open(self, path: str, name: str, uploaded: bool, settings: bridge.ReaderSettings) -> None:
        """Open a file, draft its mapping (or keep the one loaded) and check it."""
        table = bridge.open_table(path, name, settings)
        same_header = self.table is not None and self.table.header == table.header
        self.table, self.uploaded, self.settings = table, uploaded, settings
        self.picked = None
        if not (same_header and self.doc is not None):
            text, checks = bridge.draft(table)
            head = [line[2:] for line in text.splitlines()[1:4] if line.startswith("# ")]
            title = "\n".join([f"Metrix mapping made with `metrix-import ui` from {name}.", *head])
            self.set_doc(from_yaml(text, table.header, title, checks))
        else:
            self.set_doc(self.doc)

    def load_mapping(self, text: str, name: str) -> None:
        """A mapping file the user already has, applied to the open file."""
        assert self.table is not None
        raw_source = _source_section(text)
        title = f"Mapping {name}, edited with `metrix-import ui` {__version__}."
        settings = bridge.ReaderSettings(
            encoding=str(raw_source.get("encoding", "auto")),
            delimiter=str(raw_source.get("delimiter", "auto")).replace("tab", "\t"),
            header_row=int(raw_source.get("header_row", 1)),
            sheet=None if raw_source.get("sheet") is None else str(raw_source["sheet"]),
        )
        if settings != self.settings:
            self.table = bridge.open_table(self.table.path, self.table.name, settings)
            self.settings = settings
        self.set_doc(from_yaml(text, self.table.header, title))

    def set_doc(self, doc: MappingDoc) -> None:
        """Make ``doc`` the mapping: write its text, check the sample, validate the file."""
        assert self.table is not None
        self.doc = doc
        self.mapping_text = to_yaml(doc, self.settings.header_row, self.settings.as_source())
        self.mapping_problem = _conflicts(doc)
        self.sample = None
        if not self.mapping_problem:
            try:
                mapping = bridge.parse(self.mapping_text, "mapping.yaml")
                self.sample = bridge.check_sample(mapping, self.table)
                self.mapping_problem = self.sample.problem
            except bridge.ImporterError as exc:
                self.mapping_problem = str(exc)
        self.start_validation()

    def start_validation(self) -> None:
        if self.validation is not None and self.validation.running:
            self.validation.stop()
        self.validation = None
        if self.mapping_problem or self.table is None:
            return
        folder = self.new_folder("validate")
        mapping_file = folder / "mapping.yaml"
        mapping_file.write_text(self.mapping_text, encoding="utf-8")
        self.validation = bridge.start_validation(self.table.path, mapping_file, folder)

    # --- runs -----------------------------------------------------------------------

    def start_run(self, target: str, restart: bool = False) -> None:
        assert self.table is not None
        if self.run is not None and self.run.running:
            raise bridge.ImporterError("an import is already running; stop it first")
        if self.mapping_problem:
            raise bridge.ImporterError("fix the mapping first: " + self.mapping_problem)
        if target == "sandbox":
            self.ensure_sandbox()
            endpoint, app_id, key = self.sandbox_url, SANDBOX_APP_ID, SANDBOX_KEY
        else:
            creds = self.credentials
            if not creds.app_id or not creds.api_key:
                raise bridge.ImporterError("type the app id and the API key to send to Metrix")
            bridge.check_endpoint(creds.endpoint, False)
            endpoint, app_id, key = creds.endpoint, creds.app_id, creds.api_key
        folder = self.runs_dir / _safe(Path(self.table.name).name)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        mapping_file = folder / "mapping.yaml"
        mapping_file.write_text(self.mapping_text, encoding="utf-8")
        self.run_target = target
        self.run = bridge.start_run(
            self.table.path, mapping_file, folder, endpoint=endpoint, app_id=app_id,
            api_key=key, restart=restart,
        )  # fmt: skip

    def earlier_runs(self) -> list[tuple[str, str]]:
        """Imports kept in the runs folder (this page's or an earlier one's): their state."""
        found = []
        for state in sorted(self.runs_dir.glob("*/state.db")):
            try:
                found.append((state.parent.name, bridge.describe_state(state)))
            except bridge.ImporterError as exc:
                found.append((state.parent.name, str(exc)))
        return found

    def ensure_sandbox(self) -> None:
        """The project's own sandbox, started on the first import that needs it."""
        if self.sandbox is not None and self.sandbox.poll() is None:
            return
        db = self.private / "sandbox.db"
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "importer.sandbox", "--host", "127.0.0.1", "--port", "0",
             "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        assert self.sandbox.stdout is not None
        line = self.sandbox.stdout.readline()
        if not line.startswith("sandbox listening on "):
            raise bridge.ImporterError(f"the sandbox did not start: {line.strip()}")
        self.sandbox_url = line.split(" ")[3]
        # Keep reading its output so a full pipe never blocks it.
        threading.Thread(target=self.sandbox.stdout.read, daemon=True).start()

    def command_line(self) -> str:
        """The command that repeats the import from cron, credentials in the environment."""
        if self.run is None or self.table is None:
            return ""
        folder = self.run.folder
        source = self.table.path if not self.uploaded else self.table.name
        paths = bridge.run_paths(folder)
        lines = []
        if self.run_target == "sandbox":
            lines.append(
                f"export METRIX_ENDPOINT={shlex.quote(self.sandbox_url)} "
                f"METRIX_APP_ID={SANDBOX_APP_ID} METRIX_API_KEY={SANDBOX_KEY}"
            )
        else:
            endpoint = self.credentials.endpoint
            if endpoint != DEFAULT_ENDPOINT:
                lines.append(f"export METRIX_ENDPOINT={shlex.quote(endpoint)}")
            lines.append(
                f"export METRIX_APP_ID={shlex.quote(self.credentials.app_id)} "
                "METRIX_API_KEY=...   # your key: keep it in a chmod 600 file, not in crontab"
            )
        words = [source, "--mapping", folder / "mapping.yaml", "--state", paths["state"]]
        lines.append(
            "metrix-import run "
            + " ".join(shlex.quote(str(word)) for word in words)
            + " --only-changed --no-progress --failures failures.csv"
            " --summary-json summary.json --report report.html"
        )
        return "\n".join(lines)

    # --- what the page shows live ---------------------------------------------------

    def live(self) -> dict[str, Any]:
        """Progress of the validation and the import (never a credential)."""
        out: dict[str, Any] = {}
        if self.validation is not None:
            status = dict(self.validation.status)
            summary = status.get("summary", {})
            out["validation"] = {
                "state": status.get("state"),
                "rows": summary.get("rows_total", status.get("rows", 0)),
                "valid": summary.get("rows_valid"),
                "invalid": summary.get("rows_invalid"),
                "fraction": status.get("fraction"),
                "error": status.get("error", ""),
            }
        if self.run is not None:
            out["run"] = _run_live(dict(self.run.status), self.total_rows())
        return out

    def total_rows(self) -> int | None:
        summary = self.validation_summary()
        return None if summary is None else int(summary["rows_total"])

    def validation_summary(self) -> dict[str, Any] | None:
        if self.validation is None or self.validation.status.get("state") != "done":
            return None
        summary: dict[str, Any] = self.validation.status["summary"]
        return summary

    def invalid_rows(self, limit: int = 20) -> list[tuple[str, str]]:
        """The first invalid rows of the whole file and why (validate's failure CSV)."""
        if self.validation_summary() is None or self.validation is None:
            return []
        path = self.validation.folder / "failures.csv"
        if not path.exists():
            return []
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = []
            for record in csv.DictReader(handle):
                rows.append((record["_row"], record["_error"]))
                if len(rows) >= limit:
                    break
        return rows

    def close(self) -> None:
        """Stop what runs (gently, like Ctrl-C) and remove the private folder."""
        for task in (self.run, self.validation):
            if task is not None and task.running:
                task.stop()
                task.wait(15)
        if self.sandbox is not None and self.sandbox.poll() is None:
            self.sandbox.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sandbox.wait(10)
        shutil.rmtree(self.private, ignore_errors=True)


def _run_live(status: dict[str, Any], total: int | None) -> dict[str, Any]:
    elapsed = float(status.get("elapsed") or 0.0)
    summary = status.get("summary") or {}
    done = int(summary.get("rows_total", status.get("done", 0)))
    sent = int(summary.get("rows_sent", status.get("sent", 0)))
    rate = sent / elapsed if elapsed > 0 else 0.0
    fraction = status.get("fraction")
    if total is None and fraction:
        total = max(done, int(done / fraction)) if fraction else None
    left = (total - done) / (done / elapsed) if total and done and elapsed else None
    return {
        "state": status.get("state"),
        "stopping": bool(status.get("stopping")),
        "done": done,
        "total": total,
        "sent": sent,
        "failed": int(summary.get("rows_failed", status.get("failed", 0))),
        "skipped": int(summary.get("rows_skipped", status.get("skipped", 0))),
        "retries": int(summary.get("retries", status.get("retries", 0))),
        "rate": round(rate, 1),
        "seconds_left": None if left is None or status.get("state") != "running" else round(left),
        "error": status.get("error", ""),
        "advice": status.get("advice", ""),
    }


def _conflicts(doc: MappingDoc) -> str:
    seen: dict[str, str] = {}
    problems = []
    for choice in doc.columns:
        path = choice.path
        if not path:
            continue
        if choice.target == "custom" and not re.fullmatch(r"\S.*", choice.key or ""):
            problems.append(f"column '{choice.column}': a custom attribute needs a key")
        if path in seen:
            problems.append(f"columns '{seen[path]}' and '{choice.column}' both map to {path}")
        seen[path] = choice.column
    if "user_id" not in seen and "user_id" not in doc.rest:
        problems.append("choose the column that identifies customers (customer id)")
    return "; ".join(problems)


def _source_section(text: str) -> dict[str, Any]:
    import yaml

    with contextlib.suppress(yaml.YAMLError):
        raw = yaml.safe_load(text)
        if isinstance(raw, dict) and isinstance(raw.get("source"), dict):
            return dict(raw["source"])
    return {}


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "upload"


def json_line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def now() -> float:
    return time.time()
