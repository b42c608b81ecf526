"""Adaptive pacing against the sandbox's endpoint faults (part of ``make bench``).

Each scenario runs the real ``metrix-import run`` with **default options** (no
``--concurrency``, no ``--rate``) against a fresh sandbox with the scenario's faults (or,
for the zero-latency target, "an endpoint that costs nothing": nginx ``return 200`` when
nginx is installed, else ``benchmarks/null_endpoint.py``), and beside it the same run
at a fixed ``--concurrency 16`` (the old default) for comparison. users/s = rows sent /
wall time of the whole command; the 429 share and the server-side median latency come
from the endpoint's own counters. Figures, not tests: nothing here is asserted in
``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: only benchmarks/ is on sys.path
    sys.path.insert(0, str(REPO))

from benchmarks import datagen, nginx_endpoint, null_endpoint  # noqa: E402
from benchmarks.run import MAPPING, importer_command, run_child, sandbox, serving  # noqa: E402

RESULTS = REPO / "bench" / "pacing.json"


@dataclass(frozen=True)
class Scenario:
    key: str
    what: str
    faults: tuple[str, ...]
    rows: int
    target: str
    minimum_users_per_second: float | None  # None: for reference, no target
    max_429_share: float | None = None
    max_server_p50_ms: float | None = None
    # or "cheap": answers at once and costs next to nothing (nginx when installed)
    endpoint: str = "sandbox"


SCENARIOS = (
    Scenario(
        "rate-limit", "hidden rate limit 400/s, 5-15 ms, 429 without Retry-After",
        ("--rate-limit", "400", "--no-retry-after", "--latency-ms", "5-15", "--seed", "7"),
        20_000, "≥ 340 users/s, ≤ 3% answered 429", 340, max_429_share=0.03,
    ),
    Scenario(
        "capacity", "capacity 24 at 20 ms (ceiling 1,200/s)",
        ("--capacity", "24", "--latency-ms", "20"),
        30_000, "≥ 960 users/s, server median ≤ 60 ms", 960, max_server_p50_ms=60,
    ),
    Scenario(
        "distant", "100 ms latency, no limit",
        ("--latency-ms", "100"),
        20_000, "≥ 400 users/s", 400,
    ),
    Scenario(
        "local", "zero latency, no limit (an endpoint that costs next to nothing)",
        (),
        # The rows `make bench` measures every other `run` on: the fixed start-up (about
        # 0.4 s of imports, mapping and workers) is not a tenth of the figure.
        150_000, "≥ 8,000 users/s", 8000, endpoint="cheap",
    ),
    Scenario(
        "local-sandbox", "zero latency, the sandbox (its own CPU on the same 2 cores)",
        (),
        50_000, "none (for reference)", None,
    ),
)  # fmt: skip


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "_sandbox/stats", timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def _endpoint_name(scenario: Scenario) -> str:
    if scenario.endpoint == "sandbox":
        return "sandbox"
    return "nginx" if nginx_endpoint.available() else "benchmarks/null_endpoint.py"


@contextlib.contextmanager
def _endpoint(
    scenario: Scenario, folder: Path
) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """The scenario's endpoint: its URL, and how to read its counters afterwards."""
    if scenario.endpoint == "sandbox":
        with sandbox(folder / "sandbox", *scenario.faults) as url:
            yield url, lambda: _stats(url)
    elif nginx_endpoint.available():
        with nginx_endpoint.serving(folder / "nginx") as nginx:
            yield nginx.url, nginx.stats
    else:
        command = [sys.executable, "-m", "benchmarks.null_endpoint"]
        with serving(folder / "endpoint", command, null_endpoint.READY_PREFIX) as url:
            yield url, lambda: _stats(url)


def measure(scenario: Scenario, source: Path, work: Path, *pace: str) -> dict[str, Any]:
    label = f"{scenario.key}{'-fixed' if pace else ''}"
    folder = work / label
    folder.mkdir(parents=True)
    with _endpoint(scenario, folder) as (url, stats_of):
        child = run_child(
            importer_command(
                "run", source, "--mapping", MAPPING, "--endpoint", url, "--no-progress",
                "--failures", folder / "failures.csv", "--summary-json", folder / "summary.json",
                *pace,
            ),
            folder, label,
        )  # fmt: skip
        stats = stats_of()
    summary = json.loads((folder / "summary.json").read_text())
    requests = max(stats["requests"], 1)
    limited = stats["responses_by_status"].get("429", 0)
    return {
        "pace": "auto" if not pace else " ".join(pace),
        "exit_code": child.exit_code,
        "rows_sent": summary["rows_sent"],
        "wall_seconds": round(child.wall_seconds, 2),
        "users_per_second": round(summary["rows_sent"] / child.wall_seconds, 1),
        "share_429": round(limited / requests, 4),
        "server_p50_ms": stats["latency_ms"]["p50"],
        # The importer's own CPU (reading and mapping included) per request made.
        "client_cpu_us_per_request": round(1e6 * child.cpu_seconds / requests),
        # The cheap endpoint's own CPU, whole run (the sandbox does not report it).
        "endpoint_cpu_seconds": stats.get("cpu_seconds"),
        "endpoint": _endpoint_name(scenario),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "pacing": summary.get("pacing"),
    }


def verdict(scenario: Scenario, result: dict[str, Any]) -> str:
    if scenario.minimum_users_per_second is None:
        return "reference"
    ok = result["users_per_second"] >= scenario.minimum_users_per_second
    if scenario.max_429_share is not None:
        ok = ok and result["share_429"] <= scenario.max_429_share
    if scenario.max_server_p50_ms is not None:
        p50 = result["server_p50_ms"]
        ok = ok and p50 is not None and p50 <= scenario.max_server_p50_ms
    return "pass" if ok else "miss"


def describe(scenario: Scenario, entry: dict[str, Any]) -> str:
    auto = entry["auto"]
    text = (
        f"{scenario.what}: auto {auto['users_per_second']:,.0f} users/s, "
        f"429 {auto['share_429']:.1%}, server p50 {auto['server_p50_ms']} ms, "
        f"client {auto['client_cpu_us_per_request']} µs CPU/request, "
        f"ended at {auto['pacing']} [{entry['verdict']}; target {scenario.target}]"
        f" (endpoint: {auto['endpoint']})"
    )
    fixed = entry.get("fixed16")
    if fixed:
        text += (
            f"; fixed 16: {fixed['users_per_second']:,.0f} users/s, 429 {fixed['share_429']:.1%}, "
            f"server p50 {fixed['server_p50_ms']} ms, "
            f"client {fixed['client_cpu_us_per_request']} µs CPU/request"
        )
    load = ", ".join(f"{value:.1f}" for value in auto["load_average"])
    return text + f" (load average after the auto run: {load})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma-separated scenario keys")
    parser.add_argument("--no-fixed", action="store_true", help="skip the --concurrency 16 runs")
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if not args.only or s.key in args.only.split(",")]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="metrix-pacing-") as tmp:
        work = Path(tmp)
        for scenario in chosen:
            source = work / f"{scenario.key}.csv"
            datagen.write_csv(source, scenario.rows, invalid_rate=0.0)
            auto = measure(scenario, source, work)
            entry: dict[str, Any] = {"what": scenario.what, "target": scenario.target,
                                     "auto": auto, "verdict": verdict(scenario, auto)}  # fmt: skip
            if not args.no_fixed:
                entry["fixed16"] = measure(scenario, source, work, "--concurrency", "16")
            results[scenario.key] = entry
            print(describe(scenario, entry), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
