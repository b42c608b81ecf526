"""The run report: one self-contained HTML file (``run --report``, ``validate --report``).

Inline CSS and hand-written SVG, no script and no external request: it opens offline,
in a browser or an e-mail client. It is drawn from the summary (the same data as
``--summary-json``), a throughput time series sampled from the run's progress, the
input settings and the mapping text. Every text from the data is HTML-escaped and
marked ``dir="auto"``, so a Persian name or reason reads right to left.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

from importer.edges.progress import Sample
from importer.edges.report import describe_pacing, write_atomic

SENT, FAILED, SKIPPED = "#2e7d32", "#c62828", "#9e9e9e"
LINE, RETRY = "#1565c0", "#ef6c00"
LIMIT, LATENCY, REFUSED = "#6a1b9a", "#00838f", "#c62828"

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Tahoma,sans-serif;color:#1b1b1b;
 margin:0 auto;max-width:980px;padding:24px}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;
 border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.ok{color:#2e7d32}.bad{color:#c62828}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;text-align:start;
 vertical-align:top;border-bottom:1px solid #eee}th{font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:13px}
.legend span{display:inline-block;margin-inline-end:14px}
.sw{display:inline-block;width:10px;height:10px;margin-inline-end:4px}
.sent{background:#2e7d32}.failed{background:#c62828}.skipped{background:#9e9e9e}
.thr{background:#1565c0}.ret{background:#ef6c00}
.lim{background:#6a1b9a}.lat{background:#00838f}.r429{background:#c62828}
svg text{font:11px system-ui,sans-serif;fill:#444}
""".strip()

# The report's only inline content is its style sheet; a page that shows the report
# allows exactly this style by its hash and nothing else (no script at all).
CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()


@dataclass
class ReportData:
    """Everything the report shows; ``summary`` is ``Summary.as_dict()``."""

    summary: dict[str, Any]
    started: float  # epoch seconds
    finished: float
    version: str
    inputs: list[str] = field(default_factory=list)  # one line per input, as read
    settings: dict[str, str] = field(default_factory=dict)  # header row, time zone, …
    mapping_name: str = ""
    mapping_text: str = ""
    timeline: list[Sample] = field(default_factory=list)


def write_report(path: str | Path, data: ReportData) -> None:
    """Write the report atomically."""
    write_atomic(Path(path), render_report(data))


def render_report(data: ReportData) -> str:
    """The whole HTML document."""
    s = data.summary
    sending = s.get("mode") not in ("validate", "plan")
    title = "Import report" if sending else "Validation report"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_t(title)}: {_t(s.get('source', ''))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_t(title)}</h1>",
        f'<p class="meta"><bdi dir="auto">{_t(s.get("source", ""))}</bdi> · '
        f"{_t(s.get('mode', ''))} · {_when(data.started)} → {_when(data.finished)} "
        f"({_t(_duration(s.get('duration_seconds', 0.0)))}) · metrix-importer "
        f"{_t(data.version)}</p>",
        _counts(s, sending),
        _outcomes(s, sending),
        _reasons("Failure reasons", s.get("reasons", {})),
        _by_column(s.get("reasons", {})),
    ]
    if s.get("skipped_reasons") and sending:
        parts.append(_reasons("Skipped rows", s["skipped_reasons"], colour=SKIPPED))
    if s.get("warnings"):
        parts.append(_reasons("Warnings", s["warnings"], colour=RETRY))
    if sending:
        parts.append(_sending(s, data.timeline))
    parts.append(_inputs(data, s))
    parts.append(
        f'<h2>Mapping</h2><p><bdi dir="auto">{_t(data.mapping_name)}</bdi></p>'
        f'<pre dir="auto">{_t(data.mapping_text) or "(not recorded)"}</pre>'
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- sections -------------------------------------------------------------------------


def _counts(s: dict[str, Any], sending: bool) -> str:
    total = s.get("rows_total", 0)
    rows: list[tuple[str, int]] = [("rows read", total)]
    if sending:
        rows += [("sent", s.get("rows_sent", 0)), ("failed", s.get("rows_failed", 0)),
                 ("skipped", s.get("rows_skipped", 0))]  # fmt: skip
    rows += [("valid", s.get("rows_valid", 0)), ("invalid", s.get("rows_invalid", 0))]
    if s.get("blank_rows"):
        rows.append(("blank rows (ignored)", s["blank_rows"]))
    body = "".join(
        f'<tr><th>{_t(name)}</th><td class="n" data-count="{_t(name)}">{value:,}</td></tr>'
        for name, value in rows
    )
    checks = []
    if sending:
        parts = s.get("rows_sent", 0) + s.get("rows_failed", 0) + s.get("rows_skipped", 0)
        checks.append(("rows read = sent + failed + skipped", total == parts))
    checks.append(
        ("rows read = valid + invalid", total == s.get("rows_valid", 0) + s.get("rows_invalid", 0))
    )
    identity = "".join(
        f'<li class="{"ok" if holds else "bad"}">{"✓" if holds else "✗"} {_t(text)}</li>'
        for text, holds in checks
    )
    failures = s.get("failures_path")
    where = (
        f'<p>Failed rows and their reasons: <bdi dir="auto">{_t(failures)}</bdi></p>'
        if failures
        else "<p>No failed rows, so no failure file was written.</p>"
    )
    aborted = s.get("aborted")
    stop = f'<p class="bad">Stopped early: {_t(aborted)}</p>' if aborted else ""
    return f"<h2>Summary</h2><table>{body}</table><ul>{identity}</ul>{stop}{where}"


def _outcomes(s: dict[str, Any], sending: bool) -> str:
    if sending:
        parts = [("sent", s.get("rows_sent", 0), SENT, "sent"),
                 ("failed", s.get("rows_failed", 0), FAILED, "failed"),
                 ("skipped", s.get("rows_skipped", 0), SKIPPED, "skipped")]  # fmt: skip
    else:
        parts = [("valid", s.get("rows_valid", 0), SENT, "sent"),
                 ("invalid", s.get("rows_invalid", 0), FAILED, "failed")]  # fmt: skip
    total = sum(p[1] for p in parts)
    width, height = 900, 28
    x = 0.0
    rects = []
    for name, value, colour, _ in parts:
        if not value:
            continue
        w = width * value / total
        rects.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{colour}">'
            f"<title>{_t(name)}: {value:,}</title></rect>"
        )
        x += w
    if not rects:
        rects.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eee"/>')
    legend = "".join(
        f'<span><i class="sw {css}"></i>{_t(name)} {value:,}'
        f"{f' ({value / total:.1%})' if total else ''}</span>"
        for name, value, _, css in parts
    )
    return (
        f'<h2>Outcomes</h2><svg role="img" aria-label="outcomes" width="100%" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="none" height="{height}">'
        f'{"".join(rects)}</svg><p class="legend">{legend}</p>'
    )


def _reasons(title: str, reasons: dict[str, int], colour: str = FAILED, top: int = 25) -> str:
    if not reasons:
        return f"<h2>{_t(title)}</h2><p>None.</p>" if title == "Failure reasons" else ""
    items = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    most = items[0][1]
    rows = "".join(
        f'<tr><td class="n">{count:,}</td><td>{_bar(count, most, colour)}</td>'
        f'<td dir="auto">{_t(reason)}</td></tr>'
        for reason, count in items[:top]
    )
    more = (
        f"<p>… and {len(items) - top} more kinds (see the failure CSV).</p>"
        if len(items) > top
        else ""
    )
    return f"<h2>{_t(title)}</h2><table>{rows}</table>{more}"


def failures_by_column(reasons: dict[str, int]) -> dict[str, int]:
    """Reason counts grouped by the column (or mapping path) before the first ``: ``."""
    columns: dict[str, int] = {}
    for reason, count in reasons.items():
        column = reason.split(": ", 1)[0] if ": " in reason else "(other)"
        columns[column] = columns.get(column, 0) + count
    return columns


def _by_column(reasons: dict[str, int]) -> str:
    if not reasons:
        return ""
    grouped = failures_by_column(reasons)
    table = _reasons("Failures by column", grouped)
    return table + (
        '<p class="meta">A row failing on two columns counts once under each; '
        "'not sent' and 'unreadable row' are rows, not columns.</p>"
    )


def _sending(s: dict[str, Any], timeline: Sequence[Sample]) -> str:
    statuses = ", ".join(f"{_t(k)}: {v:,}" for k, v in s.get("status_counts", {}).items())
    lines = [
        "<h2>Sending</h2><table>",
        f'<tr><th>requests</th><td class="n">{s.get("requests", 0):,}</td></tr>',
        f'<tr><th>retries</th><td class="n">{s.get("retries", 0):,}</td></tr>',
        f'<tr><th>users/s</th><td class="n">{s.get("users_per_second", 0):,}</td></tr>',
        f"<tr><th>responses</th><td>{statuses or '—'}</td></tr>",
    ]
    duplicates = s.get("duplicates")
    if isinstance(duplicates, dict):
        lines.append(
            f"<tr><th>duplicates</th><td>{duplicates.get('rows', 0):,} rows of "
            f"{duplicates.get('users', 0):,} users (--duplicates "
            f"{_t(duplicates.get('policy', ''))})</td></tr>"
        )
    pacing = s.get("pacing")
    if isinstance(pacing, dict):
        text = describe_pacing(pacing).removeprefix("Pacing: ")
        lines.append(f"<tr><th>pacing</th><td>{_t(text)}</td></tr>")
    lines.append("</table>")
    lines.append("<h3>Throughput and retries over time</h3>")
    lines.append(_timeline_chart(timeline))
    if any(sample.limit is not None for sample in timeline):
        lines.append("<h3>Pacing over time</h3>")
        lines.append(_pacing_chart(timeline))
    return "".join(lines)


def _timeline_chart(timeline: Sequence[Sample]) -> str:
    if len(timeline) < 2:
        return "<p>The run was too short to chart.</p>"
    rates: list[tuple[float, float]] = []
    for before, after in pairwise(timeline):
        span = after.seconds - before.seconds
        if span > 0:
            rates.append((after.seconds, (after.sent - before.sent) / span))
    retries = [(sample.seconds, float(sample.retries)) for sample in timeline]
    return (
        _line_chart([("users/s", LINE, rates)], "users sent per second")
        + _line_chart([("retries", RETRY, retries)], "retries so far")
        + '<p class="legend"><span><i class="sw thr"></i>users/s</span>'
        '<span><i class="sw ret"></i>retries (cumulative)</span></p>'
    )


@dataclass(frozen=True)
class PacingSeries:
    """What the pacing chart draws (``pacing_series``)."""

    limits: list[tuple[float, float]]  # (seconds, requests in flight allowed)
    latency_p50_ms: list[tuple[float, float]]
    rate_limited: list[tuple[float, int]]  # (seconds, 429s since the sample before)


def pacing_series(timeline: Sequence[Sample]) -> PacingSeries:
    """The limit and the latency over time, and where answers said 429 (how many since
    the sample before)."""
    limits = [(s.seconds, float(s.limit)) for s in timeline if s.limit is not None]
    latency = [(s.seconds, s.latency_p50_ms) for s in timeline if s.latency_p50_ms is not None]
    refused: list[tuple[float, int]] = []
    seen = 0
    for sample in timeline:
        if sample.rate_limited is not None and sample.rate_limited > seen:
            refused.append((sample.seconds, sample.rate_limited - seen))
            seen = sample.rate_limited
    return PacingSeries(limits, latency, refused)


def _pacing_chart(timeline: Sequence[Sample]) -> str:
    series = pacing_series(timeline)
    x_max = timeline[-1].seconds if timeline else 0.0
    marks = series.rate_limited
    return (
        _line_chart([("in flight allowed", LIMIT, series.limits)],
                    "requests in flight allowed (auto pacing)", marks, x_max)
        + _line_chart([("latency p50 (ms)", LATENCY, series.latency_p50_ms)],
                      "latency p50, ms", marks, x_max)
        + '<p class="legend"><span><i class="sw lim"></i>in flight allowed</span>'
        '<span><i class="sw lat"></i>latency p50 (ms, as the importer measures it)</span>'
        '<span><i class="sw r429"></i>answered 429</span></p>'
    )  # fmt: skip


def _line_chart(
    series: list[tuple[str, str, list[tuple[float, float]]]],
    label: str,
    marks: Sequence[tuple[float, int]] = (),
    x_max: float = 0.0,
) -> str:
    """A line chart; ``marks`` are (seconds, 429s) drawn as red ticks along the time axis."""
    width, height, left, bottom, top = 900, 160, 56, 22, 10
    points = [p for _, _, pts in series for p in pts]
    if not points:
        return ""
    x_max = max([x_max, *(p[0] for p in points)]) or 1.0
    y_max = _nice(max(p[1] for p in points))
    plot_w, plot_h = width - left - 10, height - bottom - top

    def xy(x: float, y: float) -> str:
        return f"{left + plot_w * x / x_max:.1f},{top + plot_h * (1 - y / y_max):.1f}"

    out = [f'<svg role="img" aria-label="{_t(label)}" width="100%" viewBox="0 0 {width} {height}">']
    for step in range(5):
        value = y_max * step / 4
        y = top + plot_h * (1 - step / 4)
        out.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>'
        )
    for step in range(5):
        x_value = x_max * step / 4
        x = left + plot_w * step / 4
        out.append(
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">'
            f"{_t(_duration(x_value))}</text>"
        )
    for name, colour, pts in series:
        if pts:
            path = " ".join(xy(x, y) for x, y in pts)
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
                f"<title>{_t(name)}</title></polyline>"
            )
    for seconds, count in marks:
        x = left + plot_w * seconds / x_max
        out.append(
            f'<line data-429="{count}" x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h - 8:.1f}" '
            f'y2="{top + plot_h:.1f}" stroke="{REFUSED}" stroke-width="2">'
            f"<title>{count:,} more answered 429 by {_t(_duration(seconds))}</title></line>"
        )
    out.append(f'<text x="{left}" y="{top + 2}">{_t(label)}</text></svg>')
    return "".join(out)


def _inputs(data: ReportData, s: dict[str, Any]) -> str:
    rows = "".join(f'<li dir="auto">{_t(line)}</li>' for line in data.inputs)
    settings = dict(data.settings)
    if s.get("encoding"):
        settings.setdefault("encoding", str(s["encoding"]))
    table = "".join(
        f'<tr><th>{_t(k)}</th><td dir="auto">{_t(v)}</td></tr>' for k, v in settings.items()
    )
    return f"<h2>Input</h2><ul>{rows}</ul><table>{table}</table>"


# --- helpers --------------------------------------------------------------------------


def _t(value: Any) -> str:
    return escape(str(value), quote=True)


def _bar(value: int, most: int, colour: str) -> str:
    width = max(1.0, 160 * value / most) if most else 1.0
    return (
        f'<svg width="160" height="12" viewBox="0 0 160 12" aria-hidden="true">'
        f'<rect x="0" y="1" width="{width:.1f}" height="10" fill="{colour}"/></svg>'
    )


def _nice(value: float) -> float:
    """The smallest 1/2/5×10ⁿ at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
