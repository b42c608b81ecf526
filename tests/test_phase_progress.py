"""Long phases that send nothing show how far they are: the duplicate check, validate,
plan, and the listing of not-sent rows after a stop."""

from __future__ import annotations

import asyncio
import csv
import logging
from pathlib import Path

import pytest

from importer.edges.progress import PhaseProgress
from importer.edges.readers import open_source
from importer.edges.report import FailureWriter, Summary
from importer.engine import runner as runner_module
from importer.engine.reading import input_share, tracked
from importer.engine.runner import Runner, SendOptions
from importer.engine.tally import Tally


class FakeClock:
    def __init__(self, step: float, times: list[float] | None = None) -> None:
        self.now = 0.0
        self.step = step
        self.times = times or []

    def __call__(self) -> float:
        self.now = self.times.pop(0) if self.times else self.now + self.step
        return self.now


def test_a_phase_logs_rows_share_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0, [0.0, 10.0, 15.0, 25.0])
    log = logging.getLogger("test.phase")
    shown = PhaseProgress("checking duplicates", terminal=False, interval=10.0, log=log,
                          clock=clock)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="test.phase"):
        shown.update(100_000, 0.25)  # 10 s after the start: one line
        shown.update(150_000, 0.30)  # 5 s later: too soon for another
        shown.update(400_000, 1.00)  # 10 s later
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "checking duplicates: 100,000 rows (25% of the input), 10,000 rows/s, about 30 s left",
        "checking duplicates: 400,000 rows (100% of the input), 16,000 rows/s",
    ]


def test_a_disabled_phase_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.phase.off")
    shown = PhaseProgress("validating", enabled=False, terminal=False, interval=0.0, log=log)
    with caplog.at_level(logging.INFO, logger="test.phase.off"):
        shown.update(10, 0.5)
    assert caplog.records == []


def test_tracked_reports_the_share_of_a_csv_read_by_bytes(tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    with open(data, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "email"])
        for number in range(20_000):
            writer.writerow([f"u{number}", f"u{number}@example.com"])
    source = open_source(str(data))
    seen: list[tuple[int, float | None]] = []

    class Recorder(PhaseProgress):
        def update(self, rows: int, fraction: float | None = None) -> None:
            seen.append((rows, fraction))

    records = list(
        tracked(source.records, Recorder("x", enabled=False), lambda: input_share(0, 2, source, 0))
    )
    assert len(records) == 20_000
    shares = [share for _, share in seen[:-1]]
    known = [share for share in shares if share is not None]
    assert len(known) == len(shares) == 19
    assert known == sorted(known)
    assert 0 < known[0] < known[-1] <= 0.5  # the first of two inputs
    assert seen[-1] == (20_000, None)


class _FakeTime:
    def __init__(self, clock: FakeClock) -> None:
        self.monotonic = clock


def test_the_not_sent_listing_after_a_stop_shows_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "time", _FakeTime(FakeClock(0.5)))
    tally = Tally(Summary(mode="run"), FailureWriter(tmp_path / "f.csv", ["id"]))
    runner = Runner(SendOptions(dry_run=True), tally, None)
    rest = (("", row, [str(row)], "") for row in range(1, 20_001))
    runner.interrupt()
    with caplog.at_level(logging.INFO, logger="metrix_importer"):
        asyncio.run(runner.run(iter(()), rest))
    messages = [r.getMessage() for r in caplog.records]
    assert any("listing the rows not read as not_sent" in m for m in messages)
    assert any(m.startswith("not-sent rows listed: ") for m in messages)
    assert tally.summary.rows_unread == 20_000
