"""The Python API: the command line's validate, preview and run as functions.

Inputs are what the command line reads (a path, URL or glob) or data in memory: a
pandas or polars DataFrame, a pyarrow Table or RecordBatchReader, an iterable of
dicts. Typed values are turned into the text the mapping reads one documented way
(see ``importer.edges.typed``), so every conversion follows the same rules as a CSV.

These functions never exit the process and never print (unless ``progress=True``);
they raise the importer's exceptions (``importer.errors``), keep no state between
calls, and work inside a running event loop (Jupyter) by sending from a worker thread.

This module is the only one that calls the engine on the API's behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Mapping as AnyMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from importer.core.config import Mapping, load_mapping
from importer.core.messages import encode_body
from importer.edges.report import Summary, restore
from importer.edges.tables import TableInput, table_input
from importer.engine.inputs import Job, expand_inputs
from importer.engine.pipeline import run_start_millis
from importer.engine.run import JobResult, Outputs, run_job
from importer.engine.runner import SendOptions
from importer.engine.sending import RetryPolicy
from importer.engine.validate import validate_job
from importer.errors import ExitCode, ImporterError, UsageProblem

__all__ = ["Mapping", "RunAborted", "failures_frame", "load_mapping", "preview", "run", "validate"]

DEFAULT_ENDPOINT = "https://entry.metrix.ir/"
_LOG = logging.getLogger("metrix_importer")
# A library does not print: without a handler of the caller's, log records go nowhere
# (instead of to Python's last-resort handler on stderr).
_LOG.addHandler(logging.NullHandler())


class RunAborted(ImporterError):
    """A run stopped early: credentials rejected, the endpoint failing for too long, or
    interrupted. ``summary`` counts what was done; ``advice`` says what to do."""

    def __init__(self, summary: Summary, advice: str, exit_code: ExitCode) -> None:
        self.summary = summary
        self.advice = advice
        self.exit_code = exit_code
        super().__init__(advice or "the run stopped early")


def _mapping(mapping: Mapping | str | os.PathLike[str] | AnyMapping[str, Any]) -> Mapping:
    if isinstance(mapping, Mapping):
        return mapping
    if isinstance(mapping, AnyMapping):
        return Mapping.from_dict(dict(mapping))
    return load_mapping(os.fspath(mapping))


def _is_paths(data: Any) -> bool:
    if isinstance(data, (str, os.PathLike)):
        return True
    return (
        isinstance(data, (list, tuple))
        and bool(data)
        and all(isinstance(item, (str, os.PathLike)) for item in data)
    )


def _sources(data: Any, mapping: Mapping) -> list[str | TableInput]:
    """Paths stay paths (the engine opens them); data in memory becomes a TableInput."""
    if _is_paths(data):
        items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        return [os.fspath(item) for item in items]
    columns = [column for _, column in mapping.column_specs()]
    return [table_input(data, index_columns=columns)]


def _close(sources: list[str | TableInput]) -> None:
    for source in sources:
        if isinstance(source, TableInput):
            source.close()


def _failures_path(failures: str | os.PathLike[str] | None, sources: list[Any]) -> Path:
    if failures is not None:
        return Path(failures)
    first = sources[0]
    if isinstance(first, str):
        return Path(Path(first.rstrip("/")).name + ".failures.csv")
    # Data in memory has no file name to put a report beside: a temporary file, named
    # in the summary (``failures_path``) and readable with ``failures_frame``.
    folder = tempfile.mkdtemp(prefix="metrix-import-")
    return Path(folder) / "failures.csv"


@contextlib.contextmanager
def _progress_logging(progress: bool) -> Iterator[None]:
    """With progress, log lines (start, progress, warnings) go to stderr for the call."""
    if not progress:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    level = _LOG.level
    _LOG.addHandler(handler)
    _LOG.setLevel(logging.INFO)
    try:
        yield
    finally:
        _LOG.removeHandler(handler)
        _LOG.setLevel(level)


def validate(
    data: Any,
    mapping: Mapping | str | os.PathLike[str] | AnyMapping[str, Any],
    *,
    failures: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Summary:
    """Read and map every row without sending anything.

    Returns the summary (attributes as in ``--summary-json``: ``rows_total``,
    ``rows_valid``, ``rows_invalid``, ``reasons``, ``failures_path``...). Invalid rows go
    to the failure CSV at ``failures`` (see ``failures_frame``).
    """
    chosen = _mapping(mapping)
    sources = _sources(data, chosen)
    if len(sources) != 1:
        raise UsageProblem("validate reads one input (a path, a quoted glob or a DataFrame)")
    try:
        with _progress_logging(progress):
            summary, _ = validate_job(
                sources[0], chosen, _failures_path(failures, sources), workers
            )
    finally:
        _close(sources)
    return summary


def preview(
    data: Any,
    mapping: Mapping | str | os.PathLike[str] | AnyMapping[str, Any],
    *,
    rows: int = 5,
) -> list[dict[str, Any]]:
    """The first ``rows`` request bodies exactly as they would be sent, as dicts."""
    chosen = _mapping(mapping)
    sources = _sources(data, chosen)
    bodies: list[dict[str, Any]] = []
    try:
        job = Job(expand_inputs(sources, chosen), chosen, run_start_millis())
        outcomes = iter(job.reading())
        try:
            for outcome in outcomes:
                if len(bodies) >= rows:
                    break
                if outcome.mapped is not None:
                    body, _ = encode_body(outcome.mapped)
                    bodies.append(json.loads(body))
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()  # the reader's file handles now, not when collected
            job.close()
    finally:
        _close(sources)
    return bodies


def run(
    data: Any,
    mapping: Mapping | str | os.PathLike[str] | AnyMapping[str, Any],
    *,
    app_id: str | None = None,
    api_key: str | None = None,
    endpoint: str | None = None,
    state: str | os.PathLike[str] | None = None,
    only_changed: bool = False,
    restart: bool = False,
    failures: str | os.PathLike[str] | None = None,
    summary_json: str | os.PathLike[str] | None = None,
    progress: bool = False,
    dry_run: bool = False,
    concurrency: int | None = None,
    max_concurrency: int = 64,
    rate: float | None = None,
    duplicates: str = "last",
    timeout: float = 30.0,
    max_retries: int = 6,
    give_up_after: float = 120.0,
    allow_insecure: bool = False,
    workers: int | None = None,
    engine: str = "local",
    client: Any = None,
    scheduler: str | None = None,
    partition_rows: int = 100_000,
) -> Summary:
    """Send every valid row to Metrix, one user per request (as ``metrix-import run``).

    Credentials default to ``METRIX_APP_ID`` / ``METRIX_API_KEY`` and the endpoint to
    ``METRIX_ENDPOINT`` (else Metrix's own). Returns the summary; a run that stopped early
    (credentials rejected, endpoint down, interrupted) raises RunAborted carrying it.

    ``engine="dask"`` runs the inputs' partitions on a Dask cluster (as ``--engine
    dask``; needs ``pip install 'metrix-importer[dask]'``): on ``client`` (a
    ``distributed.Client`` of yours, left open), on the scheduler at ``scheduler``, or
    else on a local cluster of ``workers`` processes (default 2) started for the call.
    Its inputs are paths or URLs the workers can read, not data in memory.
    """
    _check_engine(engine, data, client, scheduler, workers)
    chosen = _mapping(mapping)
    endpoint = endpoint or os.environ.get("METRIX_ENDPOINT") or DEFAULT_ENDPOINT
    app_id = app_id or os.environ.get("METRIX_APP_ID") or ""
    api_key = api_key or os.environ.get("METRIX_API_KEY") or ""
    if not dry_run and (not app_id or not api_key):
        raise UsageProblem(
            "no credentials: pass app_id= and api_key= or set METRIX_APP_ID and "
            "METRIX_API_KEY (or use dry_run=True to check everything without sending)"
        )
    if duplicates not in ("last", "first", "all", "error"):
        raise UsageProblem(f"duplicates={duplicates!r}: expected last, first, all or error")
    options = SendOptions(
        endpoint=endpoint, app_id=app_id, api_key=api_key, concurrency=concurrency,
        max_concurrency=max_concurrency, rate=rate, timeout=timeout, dry_run=dry_run,
        only_changed=only_changed, outage_seconds=give_up_after,
    )  # fmt: skip
    sources = _sources(data, chosen)

    def work() -> Summary:
        outputs = Outputs(
            failures=_failures_path(failures, sources),
            summary_json=Path(summary_json) if summary_json else None,
            progress=progress,
            progress_interval=10.0,
        )
        retry = RetryPolicy(max_retries=max_retries)
        state_path = os.fspath(state) if state else None
        result: JobResult
        with _progress_logging(progress):
            if engine == "dask":
                from importer.engine.cluster import Cluster, run_on_cluster

                cluster = Cluster(scheduler, workers or 2, partition_rows)
                paths = [source for source in sources if isinstance(source, str)]
                result = run_on_cluster(
                    paths, chosen, options, outputs, cluster, retry=retry,
                    duplicates=duplicates, allow_insecure=allow_insecure, client=client,
                    state_path=state_path, restart=restart, signals=False,
                )  # fmt: skip
            else:
                result = run_job(
                    sources, chosen, options, outputs, retry=retry, duplicates=duplicates,
                    state_path=state_path, restart=restart, workers=workers,
                    allow_insecure=allow_insecure, signals=False,
                )  # fmt: skip
        if result.exit_code in (ExitCode.ABORTED, ExitCode.INTERRUPTED):
            raise RunAborted(result.summary, result.advice, result.exit_code)
        return result.summary

    try:
        return _outside_event_loop(work)
    finally:
        _close(sources)


def _check_engine(
    engine: str, data: Any, client: Any, scheduler: str | None, workers: int | None
) -> None:
    """The engine asked for, and what goes with it, before anything is read."""
    if engine not in ("local", "dask"):
        raise UsageProblem(f"engine={engine!r}: expected 'local' or 'dask'")
    if engine == "local":
        if client is not None or scheduler is not None:
            raise UsageProblem("client= and scheduler= are for engine='dask'")
        return
    if client is not None and (scheduler is not None or workers is not None):
        raise UsageProblem("give client=, scheduler= or workers=, not several")
    if scheduler is not None and workers is not None:
        raise UsageProblem("give scheduler= or workers=, not both")
    if not _is_paths(data):
        raise UsageProblem(
            "engine='dask' reads its inputs where the workers run: give paths or URLs "
            "they can read (write the data to a Parquet or CSV file first), or use "
            "engine='local' for data in memory"
        )
    try:
        importlib.import_module("distributed")
    except ImportError:
        raise UsageProblem(
            "engine='dask' needs Dask: pip install 'metrix-importer[dask]'"
        ) from None


def _outside_event_loop(work: Any) -> Summary:
    """Run ``work`` here, or in a worker thread when this thread already runs an event
    loop (a Jupyter cell): the engine starts its own loop, and a thread may have one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()  # type: ignore[no-any-return]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrix-import") as pool:
        return pool.submit(work).result()  # type: ignore[no-any-return]


def failures_frame(summary_or_path: Summary | str | os.PathLike[str]) -> Any:
    """The failed rows as a pandas DataFrame: ``_row``, ``_stage``, ``_error``, then the
    input's own columns as text (empty when nothing failed). Needs the pandas extra."""
    from importer.edges.extras import require

    pandas = require("pandas", "pandas")
    if isinstance(summary_or_path, Summary):
        path = summary_or_path.failures_path
        if path is None:
            return pandas.DataFrame(columns=["_row", "_stage", "_error"])
    else:
        path = os.fspath(summary_or_path)
    frame = pandas.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return frame.map(restore)  # undo the failure CSV's formula neutralising
