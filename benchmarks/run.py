"""Throughput and memory benchmarks of ``metrix-import`` (``make bench``).

Every figure is measured on the real command line in a child process, as a user runs it:
rows/s = ``rows_total`` (from ``--summary-json``) / wall-clock seconds from process start
to exit, peak memory = the child's own ``ru_maxrss`` and CPU = its user + system time
with the worker processes it waited for (both from ``os.wait4``; CPU is less sensitive
than wall time to other load on the machine). Each
measurement runs ``--repeat`` times (default 3) and the median is reported; the peak RSS
shown is the largest of those runs. The 5M-row memory check runs once.

Inputs are generated deterministically (``benchmarks/datagen.py``, fixed seed, no
downloads) into ``bench/data/`` and reused while ``bench/data/manifest.json`` says they
were made with the same parameters. ``run`` is measured on a prefix of the 1M-row file
(``--run-rows``, default 150,000) so the whole benchmark stays well under 15 minutes on
two cores; ``--full`` uses the 1M-row file instead (about half an hour).

Results go to ``bench/results.json`` (commit, date, machine, every figure);
``--compare OLD.json`` prints the old figures next to the new ones, and
``--compare OLD.json NEW.json`` compares two result files without running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: only benchmarks/ is on sys.path
    sys.path.insert(0, str(REPO))

from benchmarks import datagen  # noqa: E402

DATA_DIR = REPO / "bench" / "data"
MANIFEST = DATA_DIR / "manifest.json"
RESULTS = REPO / "bench" / "results.json"
MAPPING = REPO / "mappings" / "customers.yaml"

SEED = 7
INVALID_RATE = 0.01
ROWS_CSV = 1_000_000
ROWS_BIG = 5_000_000
ROWS_XLSX = 200_000
ROWS_RUN = 150_000  # enough that start-up (~0.5 s) does not dominate
GZIP_LEVEL = 6
PARQUET_ROW_GROUP = 65_536

APP_ID = "sandbox-app"
API_KEY = "sandbox-key"
READY_PREFIX = "sandbox listening on "
SANDBOX_START_S = 30.0
SANDBOX_STOP_S = 15.0
CHILD_TIMEOUT_S = 900.0

MB = 1_000_000
MEMORY_LIMIT_MB = 250.0
MEMORY_SAME_RATIO = 1.25  # "about the same": the 5M peak within 25% of the 1M peak

# Benchmark names for --only, in the order they run.
NAMES = ("validate", "gz", "parquet", "frame", "xlsx", "run", "latency", "changed", "memory")


# The child that measures ``importer.validate`` on a DataFrame (the Python API).
FRAME_CHILD = """
import json, sys, time
import pandas
import importer
frame = pandas.read_parquet(sys.argv[1])
mapping = importer.load_mapping(sys.argv[2])
started = time.perf_counter()
summary = importer.validate(frame, mapping, failures=sys.argv[3])
data = summary.as_dict()
data["call_seconds"] = time.perf_counter() - started
open(sys.argv[4], "w", encoding="utf-8").write(json.dumps(data))
"""


class BenchError(Exception):
    """A measurement could not be made (the command failed, the sandbox did not start)."""


class NotAvailable(BenchError):
    """The command line rejected the options a measurement needs."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class DataFile:
    """One generated input: ``rows`` rows of ``datagen.customer_rows(rows, SEED, ...)``."""

    kind: str  # "csv", "csv.gz", "parquet" or "xlsx"
    rows: int

    @property
    def name(self) -> str:
        return f"customers-{self.rows}.{self.kind}"

    @property
    def path(self) -> Path:
        return DATA_DIR / self.name

    def params(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "seed": SEED,
            "invalid_rate": INVALID_RATE,
            "gzip_level": GZIP_LEVEL if self.kind == "csv.gz" else None,
            "row_group_rows": PARQUET_ROW_GROUP if self.kind == "parquet" else None,
            "generator": _generator_digest(),
        }


def _generator_digest() -> str:
    """Changes whenever datagen.py changes, so stale inputs are regenerated."""
    return hashlib.sha256(Path(datagen.__file__).read_bytes()).hexdigest()[:16]


def _load_manifest() -> dict[str, Any]:
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_manifest(manifest: dict[str, Any]) -> None:
    temporary = MANIFEST.with_name(MANIFEST.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, MANIFEST)


def _is_fresh(data: DataFile, manifest: dict[str, Any]) -> bool:
    entry = manifest.get(data.name)
    return (
        isinstance(entry, dict)
        and entry.get("params") == data.params()
        and data.path.is_file()
        and data.path.stat().st_size == entry.get("bytes")
    )


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _open_csv_text(path: Path, gzipped: bool, stack: contextlib.ExitStack) -> io.TextIOBase:
    if not gzipped:
        return stack.enter_context(path.open("w", encoding="utf-8", newline=""))
    raw = stack.enter_context(path.open("wb"))
    # mtime=0 and no file name in the header: the same rows give the same bytes.
    compressed = stack.enter_context(
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0)
    )
    return stack.enter_context(io.TextIOWrapper(compressed, encoding="utf-8", newline=""))


def _write_csv_family(files: Sequence[DataFile]) -> None:
    """Write every CSV in ``files`` in one pass over the generator: each is a prefix of
    ``customer_rows(max rows)``, byte-identical to ``datagen.write_csv`` (the .gz once
    decompressed)."""
    if not files:
        return
    count = max(data.rows for data in files)
    with contextlib.ExitStack() as stack:
        writers = []
        for data in files:
            out = _open_csv_text(_partial(data.path), data.kind == "csv.gz", stack)
            writer = csv.writer(out)
            writer.writerow(datagen.HEADER)
            writers.append((data.rows, writer))
        for index, row in enumerate(datagen.customer_rows(count, SEED, INVALID_RATE), 1):
            for limit, writer in writers:
                if index <= limit:
                    writer.writerow(row)
    for data in files:
        os.replace(_partial(data.path), data.path)


def _write_xlsx(path: str, rows: int) -> None:
    datagen.write_xlsx(Path(path), rows, SEED, INVALID_RATE)


def _write_parquet(data: DataFile) -> None:
    """The rows of the CSV of the same size, as Parquet (text columns, as the CSV holds
    them), converted a block at a time so memory stays flat."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    source = DataFile("csv", data.rows).path
    text = pa.string()
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(datagen.HEADER, text), strings_can_be_null=False
    )
    reader = pacsv.open_csv(source, convert_options=convert)
    schema = pa.schema([(name, text) for name in datagen.HEADER])
    with pq.ParquetWriter(_partial(data.path), schema) as writer:
        for batch in reader:
            writer.write_batch(batch, row_group_size=PARQUET_ROW_GROUP)
    os.replace(_partial(data.path), data.path)


def prepare_inputs(files: Sequence[DataFile]) -> None:
    """Generate the missing or stale inputs (the workbook in a second process, alongside
    the CSV pass), then record them in the manifest."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest()
    missing = [data for data in dict.fromkeys(files) if not _is_fresh(data, manifest)]
    if not missing:
        print(f"inputs: reusing {len(set(files))} file(s) in {_rel(DATA_DIR)}")
        return
    started = time.monotonic()
    names = ", ".join(f"{data.name} ({data.rows:,} rows)" for data in missing)
    print(f"inputs: generating {names} ...", flush=True)
    workbooks = [data for data in missing if data.kind == "xlsx"]
    parquets = [data for data in missing if data.kind == "parquet"]
    for data in parquets:  # made from the CSV of the same rows, which must exist first
        csv_file = DataFile("csv", data.rows)
        if csv_file not in missing and not _is_fresh(csv_file, manifest):
            missing.append(csv_file)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_write_xlsx, args=(str(_partial(data.path)), data.rows))
        for data in workbooks
    ]
    try:
        for worker in workers:
            worker.start()
        _write_csv_family([data for data in missing if data.kind in ("csv", "csv.gz")])
        for data in parquets:
            _write_parquet(data)
        for data, worker in zip(workbooks, workers, strict=True):
            worker.join()
            if worker.exitcode != 0:
                raise BenchError(f"generating {data.name} failed (exit {worker.exitcode})")
            os.replace(_partial(data.path), data.path)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for data in missing:
            _partial(data.path).unlink(missing_ok=True)
    for data in missing:
        manifest[data.name] = {"params": data.params(), "bytes": data.path.stat().st_size}
    _save_manifest(manifest)
    print(f"inputs: generated in {time.monotonic() - started:.0f} s", flush=True)


def own_peak_mb() -> float:
    """This process's peak resident size so far (0 where /proc is not there)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return int(kib) * 1024 / MB


def generate_inputs(files: list[DataFile]) -> None:
    """``prepare_inputs`` in a forked process, so this one stays small.

    Linux starts a child's peak resident size at its parent's peak when it is forked (the
    memory's high-water mark is copied, and kept when the child runs its own program).
    Generating the inputs here grew this process to about 200 MB, and every measurement
    after it read 200 MB whatever it really used.
    """
    process = multiprocessing.get_context("fork").Process(target=prepare_inputs, args=(files,))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise BenchError(f"generating the inputs failed (exit {process.exitcode})")


# --------------------------------------------------------------------------- children


@dataclass
class Child:
    """How one child process ended."""

    exit_code: int
    wall_seconds: float
    maxrss_kib: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system, the child's and the children it waited for


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def child_env() -> dict[str, str]:
    """The environment minus any METRIX_* of the caller, plus the sandbox credentials."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("METRIX_")}
    env.update(METRIX_APP_ID=APP_ID, METRIX_API_KEY=API_KEY)
    return env


def run_child(
    command: Sequence[str], logs: Path, label: str, timeout: float = CHILD_TIMEOUT_S
) -> Child:
    """Run ``command`` to completion; wall clock from start to exit, peak RSS from wait4."""
    stdout_path, stderr_path = logs / f"{label}.stdout", logs / f"{label}.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO,
            env=child_env(),
        )  # fmt: skip
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            if process.returncode is None:  # interrupted while waiting
                process.kill()
                process.wait()
    return Child(
        exit_code=process.returncode,
        wall_seconds=wall,
        maxrss_kib=usage.ru_maxrss,
        stdout=_tail(stdout_path),
        stderr=_tail(stderr_path),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def importer_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "importer", *map(str, args)]


@contextlib.contextmanager
def sandbox(workdir: Path, *extra: str) -> Iterator[str]:
    """A fresh sandbox (its own database) for the block; yields its URL; always stopped."""
    command = importer_command(
        "sandbox", "--port", "0", "--db", workdir / "sandbox.db",
        "--app-id", APP_ID, "--api-key", API_KEY, *extra,
    )  # fmt: skip
    with serving(workdir, command, READY_PREFIX) as url:
        yield url


@contextlib.contextmanager
def serving(workdir: Path, command: Sequence[str | Path], ready_prefix: str) -> Iterator[str]:
    """Run an HTTP server for the block; yields the URL it prints after ``ready_prefix``."""
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = workdir / "server.stdout", workdir / "server.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [str(part) for part in command], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            cwd=REPO, env=child_env(),
        )  # fmt: skip
    try:
        yield _wait_ready(process, stdout_path, stderr_path, ready_prefix)
    finally:
        _stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes], stdout: Path, stderr: Path, ready_prefix: str
) -> str:
    deadline = time.monotonic() + SANDBOX_START_S
    while time.monotonic() < deadline:
        for line in stdout.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(ready_prefix):
                return line[len(ready_prefix) :].split()[0]
        if process.poll() is not None:
            raise BenchError(f"the server exited ({process.returncode}): {_tail(stderr)}")
        time.sleep(0.05)
    raise BenchError(f"the server printed no ready line within {SANDBOX_START_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not stopped in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(SANDBOX_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    """One measured command."""

    wall_seconds: float
    rows_total: int
    rows_sent: int
    rows_invalid: int
    rows_failed: int
    rows_skipped: int
    duration_seconds: float
    maxrss_kib: int
    exit_code: int
    cpu_seconds: float = 0.0  # user + system of the command and its worker processes

    @property
    def rate(self) -> float:
        return self.rows_total / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows_per_second"] = round(self.rate, 1)
        data["sent_per_second"] = round(self.rows_sent / max(self.wall_seconds, 1e-9), 1)
        data["peak_rss_mb"] = round(self.maxrss_kib * 1024 / MB, 1)
        data["wall_seconds"] = round(self.wall_seconds, 3)
        data["cpu_seconds"] = round(self.cpu_seconds, 3)
        return data


@dataclass
class Result:
    """One line of the table."""

    key: str
    what: str
    target: str
    minimum: float | None = None  # rows/s the median must reach, if any
    samples: list[Sample] = field(default_factory=list)
    status: str = ""  # PASS, MISS, n/a, ERROR
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(s.rate for s in self.samples) if self.samples else None

    @property
    def peak_rss_mb(self) -> float | None:
        if not self.samples:
            return None
        return max(s.maxrss_kib for s in self.samples) * 1024 / MB

    def judge(self) -> None:
        if self.status:
            return
        median = self.median
        if median is None:
            self.status = "n/a"
        elif self.minimum is None:
            self.status = "-"
        else:
            self.status = "PASS" if median >= self.minimum else "MISS"

    def as_dict(self) -> dict[str, Any]:
        median, peak = self.median, self.peak_rss_mb
        return {
            "what": self.what,
            "target": self.target,
            "minimum_rows_per_second": self.minimum,
            "median_rows_per_second": None if median is None else round(median, 1),
            "peak_rss_mb": None if peak is None else round(peak, 1),
            "status": self.status,
            "note": self.note,
            "runs": [sample.as_dict() for sample in self.samples],
        }


class Bench:
    """Runs the measurements; every command's logs and outputs live in ``tmp``."""

    def __init__(self, tmp: Path, repeat: int) -> None:
        self.tmp = tmp
        self.repeat = repeat
        self.counter = 0

    def workdir(self, label: str) -> Path:
        self.counter += 1
        path = self.tmp / f"{self.counter:02d}-{label}"
        path.mkdir(parents=True)
        return path

    def invoke(self, label: str, *args: str | Path) -> Sample:
        """``metrix-import ARGS --failures .. --summary-json ..``; exit 0 or 1 is success."""
        work = self.workdir(label)
        summary_path = work / "summary.json"
        child = run_child(
            importer_command(
                *args, "--failures", work / "failures.csv", "--summary-json", summary_path
            ),
            work,
            "importer",
        )
        if child.exit_code == 2 and "no such option" in child.stderr.lower():
            raise NotAvailable(child.stderr.splitlines()[-1] if child.stderr else "usage error")
        if child.exit_code not in (0, 1):
            raise BenchError(f"exit {child.exit_code}: {child.stderr or child.stdout}")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchError(f"no summary JSON ({exc}): {child.stderr}") from exc
        if summary.get("aborted"):
            raise BenchError(f"the run aborted: {summary['aborted']}")
        return Sample(
            wall_seconds=child.wall_seconds,
            rows_total=int(summary["rows_total"]),
            rows_sent=int(summary.get("rows_sent", 0)),
            rows_invalid=int(summary.get("rows_invalid", 0)),
            rows_failed=int(summary.get("rows_failed", 0)),
            rows_skipped=int(summary.get("rows_skipped", 0)),
            duration_seconds=float(summary.get("duration_seconds", 0.0)),
            maxrss_kib=child.maxrss_kib,
            exit_code=child.exit_code,
            cpu_seconds=child.cpu_seconds,
        )

    def measure(
        self, result: Result, times: int, once: Callable[[int], Sample], heading: bool = True
    ) -> Result:
        """Call ``once`` ``times`` times, printing each figure; errors end up in the result."""
        if heading:
            print(f"{result.what}:", flush=True)
        try:
            for attempt in range(times):
                sample = once(attempt)
                result.samples.append(sample)
                print(
                    f"  run {attempt + 1}/{times}: {sample.rows_total:,} rows in "
                    f"{sample.wall_seconds:.1f} s = {sample.rate:,.0f} rows/s "
                    f"(sent {sample.rows_sent:,}), CPU {sample.cpu_seconds:.1f} s, peak RSS "
                    f"{sample.maxrss_kib * 1024 / MB:.0f} MB",
                    flush=True,
                )
        except NotAvailable as exc:
            result.status, result.note = "n/a", f"not available: {exc}"
        except BenchError as exc:
            result.status, result.note = "ERROR", str(exc)
        if result.status:
            print(f"  {result.status}: {result.note}", flush=True)
        result.judge()
        return result

    def validate(self, key: str, what: str, target: str, minimum: float | None,
                 source: Path, times: int | None = None) -> Result:  # fmt: skip
        result = Result(key, what, target, minimum)
        return self.measure(
            result,
            times or self.repeat,
            lambda _: self.invoke(key, "validate", source, "-m", MAPPING),
        )

    def frame(self, key: str, what: str, target: str, minimum: float | None,
              source: Path) -> Result:  # fmt: skip
        """``importer.validate`` on a pandas DataFrame already in memory (read from
        ``source`` first, untimed): rows / seconds of the call; peak RSS holds the frame."""

        def once(_: int) -> Sample:
            work = self.workdir(key)
            summary_path = work / "summary.json"
            command = [sys.executable, "-c", FRAME_CHILD, str(source), str(MAPPING),
                       str(work / "failures.csv"), str(summary_path)]  # fmt: skip
            child = run_child(command, work, "frame")
            if child.exit_code != 0:
                raise BenchError(f"exit {child.exit_code}: {child.stderr or child.stdout}")
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            return Sample(
                wall_seconds=float(summary["call_seconds"]),
                rows_total=int(summary["rows_total"]),
                rows_sent=0,
                rows_invalid=int(summary["rows_invalid"]),
                rows_failed=int(summary["rows_failed"]),
                rows_skipped=int(summary["rows_skipped"]),
                duration_seconds=float(summary["duration_seconds"]),
                maxrss_kib=child.maxrss_kib,
                exit_code=child.exit_code,
                cpu_seconds=child.cpu_seconds,
            )

        result = self.measure(Result(key, what, target, minimum), self.repeat, once)
        result.note = (result.note + "; " if result.note else "") + (
            "rows/s of the importer.validate call, the frame already in memory"
        )
        return result

    def run(self, key: str, what: str, target: str, minimum: float, source: Path,
            concurrency: int, *sandbox_args: str) -> Result:  # fmt: skip
        def once(_: int) -> Sample:
            with sandbox(self.workdir(f"{key}-sandbox"), *sandbox_args) as url:
                return self.invoke(
                    key, "run", source, "-m", MAPPING, "--endpoint", url,
                    "--concurrency", str(concurrency), "--no-progress",
                )  # fmt: skip

        return self.measure(Result(key, what, target, minimum), self.repeat, once)

    def changed(self, what: str, target: str, minimum: float, source: Path) -> Result:
        """A first pass with ``--state`` records every user; each measured second pass
        starts from a copy of that state, so each sees "nothing changed"."""
        result = Result("changed", what, target, minimum)
        work = self.workdir("changed-state")
        state_dir, snapshot = work / "state", work / "state-after-first-pass"
        state_dir.mkdir()
        state = state_dir / "import.state"

        def pass_args(url: str) -> list[str | Path]:
            return [
                "run", source, "-m", MAPPING, "--endpoint", url, "--concurrency", "64",
                "--no-progress", "--state", state, "--only-changed",
            ]  # fmt: skip

        print(f"{what}:", flush=True)
        try:
            with sandbox(self.workdir("changed-sandbox")) as url:
                first = self.invoke("changed-first", *pass_args(url))
                print(
                    f"  first pass: {first.rows_total:,} rows, sent {first.rows_sent:,} in "
                    f"{first.wall_seconds:.1f} s",
                    flush=True,
                )
                result.note = f"first pass sent {first.rows_sent:,} in {first.wall_seconds:.1f} s"
                shutil.copytree(state_dir, snapshot)

                def once(_: int) -> Sample:
                    shutil.rmtree(state_dir)
                    shutil.copytree(snapshot, state_dir)
                    return self.invoke("changed", *pass_args(url))

                self.measure(result, self.repeat, once, heading=False)
        except NotAvailable as exc:
            result.status, result.note = "n/a", f"not available: {exc}"
            print(f"  {result.note}", flush=True)
        except BenchError as exc:
            result.status, result.note = "ERROR", str(exc)
            print(f"  ERROR: {exc}", flush=True)
        resent = max((s.rows_sent for s in result.samples), default=0)
        if resent:
            result.note += f"; the second pass re-sent {resent:,} rows (expected 0)"
        result.judge()
        return result


def memory_verdict(small: Result | None, big: Result | None) -> Result:
    """Peak RSS of validate on 1M and 5M rows: each ≤ 250 MB, and about the same."""
    result = Result(
        "memory-verdict",
        "peak RSS, validate 1M vs 5M CSV",
        f"≤ {MEMORY_LIMIT_MB:.0f} MB each, 5M ≤ {MEMORY_SAME_RATIO:.2f}× 1M",
    )
    peaks = [r.peak_rss_mb if r else None for r in (small, big)]
    if peaks[0] is None or peaks[1] is None:
        result.status, result.note = "n/a", "needs both the 1M and the 5M validate"
        return result
    low, high = peaks[0], peaks[1]
    ratio = high / low
    result.note = f"1M {low:.0f} MB, 5M {high:.0f} MB, ratio {ratio:.2f}"
    ok = max(low, high) <= MEMORY_LIMIT_MB and ratio <= MEMORY_SAME_RATIO
    result.status = "PASS" if ok else "MISS"
    return result


# --------------------------------------------------------------------------- output


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, ["-" * width for width in widths], *rows]
    ]
    return "\n".join(lines)


def render(results: Sequence[Result]) -> str:
    rows = []
    notes = []
    for result in results:
        runs = " / ".join(_rate(s.rate) for s in result.samples) or "-"
        peak = result.peak_rss_mb
        if result.key == "memory-verdict":
            median = result.note
        else:
            median = f"{_rate(result.median)} rows/s" if result.median is not None else "-"
        rows.append([
            result.what, result.target, median, runs,
            "-" if peak is None else f"{peak:.0f} MB", result.status,
        ])  # fmt: skip
        if result.note and result.key != "memory-verdict":
            notes.append(f"  {result.what}: {result.note}")
    header = ["what", "target", "median", "all runs (rows/s)", "peak RSS", "result"]
    text = _table(rows, header)
    return text + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
            timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(path: Path, results: Sequence[Result], options: dict[str, Any],
                  elapsed: float) -> None:  # fmt: skip
    status = _git("status", "--porcelain", "--untracked-files=no")
    data = {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": options,
        "total_seconds": round(elapsed, 1),
        "results": {result.key: result.as_dict() for result in results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _load_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise SystemExit(f"error: {path} is not a bench results file")
    return data


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Old and new medians and peaks, side by side."""

    def label(data: dict[str, Any]) -> str:
        dirty = "+dirty" if data.get("dirty") else ""
        return f"{data.get('commit') or '?'}{dirty} {data.get('date', '?')}"

    rows = []
    keys = list(new["results"]) + [k for k in old["results"] if k not in new["results"]]
    for key in keys:
        before, after = old["results"].get(key, {}), new["results"].get(key, {})
        old_rate = before.get("median_rows_per_second")
        new_rate = after.get("median_rows_per_second")
        change = f"{(new_rate / old_rate - 1) * 100:+.0f}%" if old_rate and new_rate else "-"

        def mb(value: Any) -> str:
            return "-" if value is None else f"{value:.0f} MB"

        rows.append([
            after.get("what") or before.get("what") or key,
            _rate(old_rate), _rate(new_rate), change,
            mb(before.get("peak_rss_mb")), mb(after.get("peak_rss_mb")),
            f"{before.get('status', '-')} -> {after.get('status', '-')}",
        ])  # fmt: skip
    header = ["what", "old rows/s", "new rows/s", "change", "old RSS", "new RSS", "result"]
    return f"old: {label(old)}\nnew: {label(new)}\n\n" + _table(rows, header)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Measure metrix-import throughput and memory (see the module docstring).",
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run a subset: {', '.join(NAMES)} (default: all)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument(
        "--full", action="store_true", help="measure `run` on the 1M-row file, not a prefix"
    )
    parser.add_argument(
        "--run-rows",
        type=int,
        default=ROWS_RUN,
        help=f"rows of the prefix `run` is measured on (default {ROWS_RUN:,})",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="JSON",
        help="OLD.json: run, then show old vs new; OLD.json NEW.json: just compare the two",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"results file (default {_rel(RESULTS)})"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.run_rows < 1:
        parser.error("--run-rows must be at least 1")
    if args.compare and len(args.compare) > 2:
        parser.error("--compare takes OLD.json, or OLD.json NEW.json")
    selected = NAMES if not args.only else tuple(n.strip() for n in args.only.split(",") if n)
    unknown = [name for name in selected if name not in NAMES]
    if unknown or not selected:
        parser.error(f"--only: unknown {', '.join(unknown) or 'nothing'}; choose from "
                     f"{', '.join(NAMES)}")  # fmt: skip
    args.selected = [name for name in NAMES if name in selected]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare and len(args.compare) == 2:
        print(compare(_load_results(Path(args.compare[0])), _load_results(Path(args.compare[1]))))
        return 0
    old = _load_results(Path(args.compare[0])) if args.compare else None
    started = time.monotonic()
    selected: list[str] = args.selected

    csv_1m, gz_1m = DataFile("csv", ROWS_CSV), DataFile("csv.gz", ROWS_CSV)
    csv_5m, workbook = DataFile("csv", ROWS_BIG), DataFile("xlsx", ROWS_XLSX)
    parquet_1m, parquet_5m = DataFile("parquet", ROWS_CSV), DataFile("parquet", ROWS_BIG)
    run_file = csv_1m if args.full else DataFile("csv", min(args.run_rows, ROWS_CSV))
    needs = {
        "validate": [csv_1m], "gz": [gz_1m], "parquet": [parquet_1m, parquet_5m],
        "frame": [parquet_1m], "xlsx": [workbook], "run": [run_file],
        "latency": [run_file], "changed": [run_file], "memory": [csv_1m, csv_5m],
    }  # fmt: skip
    generate_inputs([data for name in selected for data in needs[name]])

    sent_on = "1M rows" if args.full else f"first {run_file.rows:,} rows"
    print(f"\nmeasuring ({args.repeat} run(s) each; `run` on the {sent_on}) ...", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="metrix-bench-") as tmp:
        bench = Bench(Path(tmp), args.repeat)
        by_key: dict[str, Result] = {}

        def add(result: Result) -> None:
            results.append(result)
            by_key[result.key] = result

        validate_target = "≥ 100,000 rows/s"
        if "validate" in selected:
            add(bench.validate("validate", "validate CSV 1M", validate_target, 100_000,
                               csv_1m.path))  # fmt: skip
        if "gz" in selected:
            add(bench.validate("gz", "validate CSV.gz 1M", validate_target, 100_000,
                               gz_1m.path))  # fmt: skip
        if "parquet" in selected:
            add(bench.validate("parquet", "validate Parquet 1M", "≥ the CSV's rows/s",
                               by_key["validate"].median if "validate" in by_key else None,
                               parquet_1m.path))  # fmt: skip
            add(bench.validate("parquet-5m", "validate Parquet 5M (memory, 1 run)",
                               f"≤ {MEMORY_LIMIT_MB:.0f} MB", None, parquet_5m.path,
                               times=1))  # fmt: skip
        if "frame" in selected:
            add(bench.frame("frame", "validate pandas DataFrame 1M (API)", "≥ the CSV's rows/s",
                            by_key["validate"].median if "validate" in by_key else None,
                            parquet_1m.path))  # fmt: skip
        if "xlsx" in selected:
            add(bench.validate("xlsx", f"validate XLSX {ROWS_XLSX // 1000}k",
                               "≥ 40,000 rows/s", 40_000, workbook.path))  # fmt: skip
        if "run" in selected:
            for concurrency in (16, 64):
                add(bench.run(f"run-c{concurrency}", f"run c{concurrency}, {sent_on}",
                              "≥ 5,000 users/s", 5_000, run_file.path,
                              concurrency))  # fmt: skip
        if "latency" in selected:
            add(bench.run("run-latency20-c64", f"run c64, 20 ms latency, {sent_on}",
                          "≥ 2,500 users/s", 2_500, run_file.path, 64,
                          "--latency-ms", "20"))  # fmt: skip
        if "changed" in selected:
            add(bench.changed(f"run --only-changed 2nd pass, {sent_on}", "≥ 100,000 rows/s",
                              100_000, run_file.path))  # fmt: skip
        if "memory" in selected:
            if "validate" not in by_key:
                add(bench.validate("validate", "validate CSV 1M (memory only)", "-", None,
                                   csv_1m.path, times=1))  # fmt: skip
            add(bench.validate("memory", "validate CSV 5M (memory, 1 run)", "-", None,
                               csv_5m.path, times=1))  # fmt: skip
            add(memory_verdict(by_key.get("validate"), by_key.get("memory")))

    elapsed = time.monotonic() - started
    options = {
        "repeat": args.repeat, "full": args.full, "run_rows": run_file.rows,
        "only": selected, "seed": SEED, "invalid_rate": INVALID_RATE,
    }  # fmt: skip
    write_results(args.output, results, options, elapsed)
    print(f"\n{render(results)}")
    print(
        "\nrows/s = rows_total / wall seconds of the whole command (start-up included); "
        "peak RSS = the largest ru_maxrss of the runs (never below this process's own peak, "
        f"{own_peak_mb():.0f} MB: a child's peak starts from its parent's)."
    )
    if old is not None:
        print(f"\n{compare(old, _load_results(args.output))}")
    print(f"\nresults: {_rel(args.output)}; total elapsed {elapsed / 60:.1f} min ({elapsed:.0f} s)")
    return 1 if any(result.status == "ERROR" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
