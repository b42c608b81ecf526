"""The HTML run report: self-contained, escaped, and its numbers are the summary's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from importer.edges.html_report import ReportData, failures_by_column, pacing_series, render_report
from importer.edges.progress import NoProgress, Pacing, Snapshot, Timeline
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, cli
from tests.e2e import run_cli, summary
from tests.sandbox_helpers import Sandbox

COUNT = re.compile(r'data-count="([^"]+)">([\d,]+)<')


def counts(html: str) -> dict[str, int]:
    return {name: int(value.replace(",", "")) for name, value in COUNT.findall(html)}


def assert_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html)
    assert not re.search(r"\b(src|href)\s*=", html)


@pytest.mark.e2e
def test_run_report_numbers_equal_the_summary_json(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(sandbox, tmp_path, SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--report", "r.html")
    assert result.returncode == 1, result.stderr
    data = summary(tmp_path)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert counts(html) == {
        "rows read": data["rows_total"], "sent": data["rows_sent"],
        "failed": data["rows_failed"], "skipped": data["rows_skipped"],
        "valid": data["rows_valid"], "invalid": data["rows_invalid"],
    }  # fmt: skip
    for reason, count in data["reasons"].items():
        assert f'<td class="n">{count:,}</td>' in html and reason in html
    assert "Throughput and retries over time" in html
    assert "phoneNumber: {column: mobile" in html  # the mapping used
    assert "sandbox-key" not in html


@pytest.mark.e2e
def test_validate_report_has_no_sending_part(tmp_path: Path) -> None:
    result = cli(
        "validate", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--report", "v.html",
        "--summary-json", "v.json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    data = json.loads((tmp_path / "v.json").read_text())
    html = (tmp_path / "v.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert counts(html) == {
        "rows read": data["rows_total"], "valid": data["rows_valid"],
        "invalid": data["rows_invalid"],
    }  # fmt: skip
    assert "Validation report" in html and "Sending" not in html


def test_cells_and_names_are_escaped_and_persian_reads_right_to_left() -> None:
    data = ReportData(
        summary={
            "mode": "run", "source": "<script>alert(1)</script>.csv", "rows_total": 2,
            "rows_valid": 1, "rows_invalid": 1, "rows_sent": 1, "rows_failed": 1,
            "rows_skipped": 0, "reasons": {"نام: <b>is empty</b>": 1},
        },
        started=0, finished=1, version="x", mapping_text="user_id: '=HYPERLINK(\"x\")'",
    )  # fmt: skip
    html = render_report(data)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<td dir="auto">نام: &lt;b&gt;is empty&lt;/b&gt;</td>' in html
    assert "=HYPERLINK(&quot;x&quot;)" in html
    assert_self_contained(html)


def test_failures_by_column_groups_reasons_by_their_column() -> None:
    reasons = {"email: not an email address": 3, "email: is empty": 1, "sex: unknown": 2,
               "odd": 1}  # fmt: skip
    assert failures_by_column(reasons) == {"email": 4, "sex": 2, "(other)": 1}


def test_the_timeline_keeps_a_bounded_series_of_the_whole_run() -> None:
    now = [0.0]
    seen: list[float] = []
    timeline = Timeline(
        NoProgress(), clock=lambda: now[0], limit=10,
        listener=lambda _snapshot, sample: seen.append(sample.seconds),
    )  # fmt: skip
    for second in range(1, 1001):
        now[0] = float(second)
        timeline.update(Snapshot(second, second, 0, 0, 0, None, retries=second // 10))
    samples = timeline.samples
    assert len(samples) <= 11
    assert samples[0].seconds == 0 and samples[-1].seconds == 1000
    assert samples[-1].retries == 100 and samples[-1].sent == 1000
    assert [s.seconds for s in samples] == sorted(s.seconds for s in samples)
    assert len(seen) == 1000  # the listener sees every tick


MARK_429 = re.compile(r'<line data-429="(\d+)"')


def paced_timeline() -> Timeline:
    """Ten seconds of a paced run: the limit grows, then 429s (3 at 4 s, 2 at 7 s) cut it."""
    now = [0.0]
    timeline = Timeline(NoProgress(), clock=lambda: now[0])
    refused = {4: 3, 7: 5}
    for second in range(1, 11):
        now[0] = float(second)
        rate_limited = max([count for at, count in refused.items() if at <= second] or [0])
        pacing = Pacing(
            limit=8 + second if second < 4 else 6, latency_p50_ms=10.0 + second,
            latency_p95_ms=30.0, rate_limited=rate_limited,
        )  # fmt: skip
        timeline.update(Snapshot(second * 100, second * 100, 0, 0, 0, None, pacing))
    return timeline


def test_the_pacing_series_is_the_limit_the_latency_and_where_429s_came() -> None:
    series = pacing_series(paced_timeline().samples)
    assert series.limits == [(1, 9), (2, 10), (3, 11)] + [(s, 6) for s in range(4, 11)]
    assert series.latency_p50_ms == [(s, 10.0 + s) for s in range(1, 11)]
    assert series.rate_limited == [(4, 3), (7, 2)]


def test_the_report_charts_pacing_with_the_429s_marked() -> None:
    data = ReportData(
        summary={
            "mode": "run", "source": "a.csv", "rows_total": 1000, "rows_sent": 1000,
            "pacing": {"limit": 6, "rate_per_second": 380.0, "latency_p50_ms": 20.0,
                       "latency_p95_ms": 30.0, "rate_limited": 5, "overloaded": 0},
        },
        started=0, finished=10, version="x", timeline=paced_timeline().samples,
    )  # fmt: skip
    html = render_report(data)
    assert "Pacing over time" in html
    assert 'aria-label="requests in flight allowed (auto pacing)"' in html
    assert 'aria-label="latency p50, ms"' in html
    # Each 429 mark is drawn on both charts; together they count every 429.
    marks = [int(count) for count in MARK_429.findall(html)]
    assert marks == [3, 2, 3, 2]
    assert "auto, ended at 6 in flight and 380 requests/s" in html
    assert_self_contained(html)


def test_a_fixed_concurrency_run_has_no_pacing_chart() -> None:
    now = [0.0]
    timeline = Timeline(NoProgress(), clock=lambda: now[0])
    for second in range(1, 5):
        now[0] = float(second)
        timeline.update(Snapshot(second, second, 0, 0, 0, None))
    data = ReportData(
        summary={"mode": "run", "source": "a.csv", "rows_total": 4, "pacing": None},
        started=0, finished=4, version="x", timeline=timeline.samples,
    )  # fmt: skip
    html = render_report(data)
    assert "Throughput and retries over time" in html
    assert "Pacing over time" not in html and "data-429" not in html
