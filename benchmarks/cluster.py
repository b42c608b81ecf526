"""A Dask run beside a single-machine run (part of ``make bench``).

The same generated 1,000,000-row CSV (``benchmarks/run.py``'s, fixed seed) is sent by
``metrix-import run`` with default options, once on this machine and once with
``--engine dask --workers 2`` (a local cluster started and stopped by the run), each
against a fresh zero-latency sandbox. users/s = rows sent / wall time of the whole
command (the cluster's start and stop included); the overhead is how much longer the
Dask run took. On a 2-core machine the cluster cannot win (its 2 workers and the sandbox
share the cores that the single-machine run's mapping processes use): the figure is the
price of the partitions, the actor's pace and the coordinator's accounting.
Figures, not tests: nothing here is asserted in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: only benchmarks/ is on sys.path
    sys.path.insert(0, str(REPO))

from benchmarks.run import (  # noqa: E402
    MAPPING,
    MB,
    ROWS_CSV,
    DataFile,
    generate_inputs,
    importer_command,
    run_child,
    sandbox,
)

RESULTS = REPO / "bench" / "cluster.json"
CHILD_TIMEOUT_S = 7200.0  # 1M users at a few hundred a second on a busy machine
TARGET_OVERHEAD = 0.25


def measure(label: str, source: Path, work: Path, *engine: str) -> dict[str, Any]:
    folder = work / label
    folder.mkdir(parents=True)
    with sandbox(folder / "sandbox") as url:
        child = run_child(
            importer_command(
                "run", source, "--mapping", MAPPING, "--endpoint", url, "--no-progress",
                "--failures", folder / "failures.csv", "--summary-json", folder / "summary.json",
                *engine,
            ),
            folder, label, timeout=CHILD_TIMEOUT_S,
        )  # fmt: skip
    if child.exit_code not in (0, 1):
        raise SystemExit(f"error: {label} exited {child.exit_code}: {child.stderr}")
    summary = json.loads((folder / "summary.json").read_text())
    return {
        "exit_code": child.exit_code,
        "rows_total": summary["rows_total"],
        "rows_sent": summary["rows_sent"],
        "wall_seconds": round(child.wall_seconds, 2),
        "users_per_second": round(summary["rows_sent"] / child.wall_seconds, 1),
        "partitions": summary.get("partitions"),
        "pacing": summary.get("pacing"),
        "peak_rss_mb_coordinator": round(child.maxrss_kib * 1024 / MB, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS_CSV, help="rows of the CSV (1M)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (2)")
    args = parser.parse_args(argv)
    data = DataFile("csv", args.rows)
    generate_inputs([data])
    with tempfile.TemporaryDirectory(prefix="metrix-cluster-") as tmp:
        work = Path(tmp)
        local = measure("local", data.path, work)
        print(f"one machine: {local['rows_sent']:,} users in {local['wall_seconds']} s = "
              f"{local['users_per_second']:,.0f} users/s", flush=True)  # fmt: skip
        dask = measure("dask", data.path, work, "--engine", "dask",
                       "--workers", str(args.workers))  # fmt: skip
        print(f"dask, {args.workers} workers: {dask['rows_sent']:,} users in "
              f"{dask['wall_seconds']} s = {dask['users_per_second']:,.0f} users/s "
              f"({dask['partitions']} partitions)", flush=True)  # fmt: skip
    overhead = dask["wall_seconds"] / local["wall_seconds"] - 1
    verdict = "pass" if overhead <= TARGET_OVERHEAD else "miss"
    print(f"overhead: {overhead:+.0%} [{verdict}; target ≤ {TARGET_OVERHEAD:.0%}]")
    results = {
        "rows": args.rows, "workers": args.workers, "local": local, "dask": dask,
        "overhead": round(overhead, 3), "target": TARGET_OVERHEAD, "verdict": verdict,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
