"""``plan``: one read of the inputs that sends nothing — what a run would do, and how
long it would take."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from importer.core.config import Mapping
from importer.core.messages import content_fingerprint
from importer.core.outcome import SkipReason
from importer.edges.outputs import check_outputs
from importer.edges.progress import PhaseProgress
from importer.edges.report import Summary
from importer.edges.state import StateReader
from importer.engine.inputs import Job, expand_inputs, named
from importer.engine.pipeline import run_start_millis
from importer.engine.reading import Reading, tracked
from importer.engine.run import JobResult
from importer.engine.tally import Tally
from importer.errors import ExitCode

AUTOMATION_WARNING = (
    "Importing users can start Metrix automation campaigns aimed at them (welcome "
    "messages, SMS, push). Check the app's active campaigns before a large import."
)
_CHUNK = 900  # users looked up in the state file at once


@dataclass(frozen=True)
class Pace:
    """The pace a run would have, for the estimate."""

    concurrency: int
    rate: float | None
    latency_ms: float
    adaptive: bool = False  # --concurrency auto: ``concurrency`` is its ceiling

    @property
    def per_second(self) -> float:
        per_second = self.concurrency / max(self.latency_ms / 1000, 1e-6)
        return min(per_second, self.rate) if self.rate else per_second


def plan_job(
    patterns: Sequence[str],
    mapping: Mapping,
    pace: Pace,
    *,
    duplicates: str,
    state_path: str | None,
    summary_json: Path | None,
    workers: int | None = None,
) -> JobResult:
    """One read of the inputs that sends nothing: what a run would do, and how long."""
    started = time.monotonic()
    inputs = expand_inputs(patterns, mapping)
    if summary_json is not None:
        check_outputs([("--summary-json", summary_json)], sorted({i.path for i in inputs}))
    job = Job(inputs, mapping, run_start_millis())
    job.start_workers(workers, encode=True)
    try:
        plan = job.duplicate_plan(duplicates)
        summary = Summary(mode="plan", source=named(patterns), encoding=job.encoding)
        reader = StateReader(state_path)
        try:
            new, changed, unchanged = _count(Tally(summary), job.reading(None, plan), reader)
        finally:
            reader.close()
        summary.warnings.update(job.warnings())
    finally:
        job.close()
    summary.duration_seconds = time.monotonic() - started
    per_second = pace.per_second
    summary.extra.update(
        users_new=new,
        users_changed=changed,
        users_unchanged=unchanged,
        duplicates=plan.as_dict(),
        estimate={
            "concurrency": pace.concurrency,
            "adaptive": pace.adaptive,
            "rate": pace.rate,
            "assumed_latency_ms": pace.latency_ms,
            "users_per_second": round(per_second, 1),
            "seconds_all": round((new + changed + unchanged) / per_second, 1),
            "seconds_only_changed": round((new + changed) / per_second, 1),
        },
    )
    if summary_json is not None:
        summary.write_json(summary_json)
    code = ExitCode.ROWS_FAILED if summary.rows_invalid else ExitCode.OK
    return JobResult(summary, code, notes=[render_plan(summary)])


def _count(tally: Tally, reading: Reading, reader: StateReader) -> tuple[int, int, int]:
    """Count every row into ``tally`` (valid ones as planned, not sent); returns how
    many users are new, changed and unchanged since the state file's last delivery."""
    totals = [0, 0, 0]
    valid = 0
    chunk: list[tuple[str, bytes]] = []
    shown = PhaseProgress("planning")
    try:
        for outcome in tracked(reading, shown, reading.overall):
            mapped = tally.admit(outcome)
            if mapped is None:
                continue
            valid += 1
            chunk.append((mapped.user_id, content_fingerprint(mapped)))
            if len(chunk) >= _CHUNK:
                _classify(reader, chunk, totals)
                chunk = []
    finally:
        shown.close()
    _classify(reader, chunk, totals)
    tally.skipped_unrecorded(SkipReason.PLANNED, valid)
    return totals[0], totals[1], totals[2]


def _classify(reader: StateReader, pairs: list[tuple[str, bytes]], totals: list[int]) -> None:
    unchanged, changed = reader.classify(pairs)
    users = {user for user, _ in pairs}
    totals[0] += len(users - unchanged - changed)
    totals[1] += len(changed)
    totals[2] += len(unchanged)


def render_plan(summary: Summary) -> str:
    """The human plan: what a run would send, and roughly how long it would take."""
    extra = summary.extra
    dup = extra["duplicates"]
    estimate = extra["estimate"]
    lines = [
        f"Plan for {summary.source} (nothing was sent)",
        f"  rows        {summary.rows_total:>12,}",
        f"  valid       {summary.rows_valid:>12,}",
        f"  invalid     {summary.rows_invalid:>12,}",
        f"  duplicates  {dup['rows']:>12,}  rows of {dup['users']:,} users "
        f"(--duplicates {dup['policy']})",
        f"  users new   {extra['users_new']:>12,}",
        f"  changed     {extra['users_changed']:>12,}",
        f"  unchanged   {extra['users_unchanged']:>12,}  (skipped with --only-changed)",
    ]
    if summary.reasons:
        lines.append("  why rows are invalid (most common first):")
    for reason, count in summary.reasons.most_common(5):
        lines.append(f"    {count:>10,}  {reason}")
    if len(summary.reasons) > 5:
        lines.append(f"    … and {len(summary.reasons) - 5} more kinds (validate writes them all)")
    rate = f", --rate {estimate['rate']:g}/s" if estimate["rate"] else ""
    pace = (
        f"up to {estimate['concurrency']} in flight (--concurrency auto, at best)"
        if estimate.get("adaptive")
        else f"--concurrency {estimate['concurrency']}"
    )
    lines.append(
        f"Estimated time at {pace}{rate} and "
        f"{estimate['assumed_latency_ms']:g} ms per request: "
        f"{_duration(estimate['seconds_all'])} for all valid users, "
        f"{_duration(estimate['seconds_only_changed'])} with --only-changed"
    )
    lines.append(f"Warning: {AUTOMATION_WARNING}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
