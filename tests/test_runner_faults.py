"""Runner fault paths found in review: each test failed before its fix."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.datagen import write_csv
from importer.core.messages import MappedRow
from importer.core.outcome import Outcome
from importer.edges.report import FailureWriter, Summary
from importer.edges.transport import Response
from importer.engine.runner import Runner, SendOptions
from importer.engine.tally import NoLedger, Tally
from tests.cli_helpers import SAMPLE_MAPPING, cli
from tests.e2e import failure_rows, run_cli, stored_ids, summary
from tests.sandbox_helpers import MakeSandbox


class AlwaysOk:
    async def send(self, body: bytes) -> Response:
        await asyncio.sleep(0)
        return Response(200)


class BrokenLedger(NoLedger):
    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None:
        raise OSError(28, "No space left on device")


def _outcomes(count: int) -> Iterator[Outcome]:
    for row in range(1, count + 1):
        yield Outcome(row, [str(row)], MappedRow(f"u{row}", 1, {"email": f"{row}@x.co"}))


def test_an_error_inside_a_sending_worker_stops_the_run_instead_of_hanging(tmp_path: Path) -> None:
    options = SendOptions(endpoint="http://127.0.0.1/", app_id="a", api_key="k", concurrency=2)
    tally = Tally(Summary(mode="run"), FailureWriter(tmp_path / "f.csv", ["id"]), BrokenLedger())
    runner = Runner(options, tally, AlwaysOk())
    rest: Iterator[tuple[str, int, list[str], str]] = iter(())

    async def go() -> None:
        await asyncio.wait_for(runner.run(_outcomes(2000), rest), timeout=20)

    with pytest.raises(OSError, match="No space left"):
        asyncio.run(go())
    assert runner.abort is not None


@pytest.mark.e2e
def test_rows_whose_retries_ran_out_are_sent_again_on_resume(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    data = tmp_path / "export.csv"
    write_csv(data, 40, seed=2, invalid_rate=0.0)
    state = tmp_path / "state.db"
    failing = make_sandbox("--fail-rate", "1", "--seed", "1")
    first = run_cli(failing, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state,
                    "--max-retries", "0")  # fmt: skip
    assert first.returncode == 1, first.stderr
    stages = {f["_stage"] for f in failure_rows(tmp_path / "failures.csv")}
    assert stages == {"not_sent"}
    failing.stop()
    healthy = make_sandbox()
    second = run_cli(healthy, tmp_path, data, "-m", SAMPLE_MAPPING, "--state", state)
    assert second.returncode == 0, second.stderr
    assert len(stored_ids(healthy)) == 40
    assert summary(tmp_path)["rows_sent"] == 40


@pytest.mark.e2e
def test_after_an_abort_duplicates_are_skipped_not_reported_as_unsent(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    rows = [f"C{i % 30:03d},u{i}@x.co" for i in range(90)]  # every user on three rows
    data = tmp_path / "crm.csv"
    data.write_text("id,email\n" + "\n".join(rows) + "\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    sb = make_sandbox("--reject-key-after", "5")
    result = run_cli(sb, tmp_path, data, "-m", mapping, "--duplicates", "first",
                     "--concurrency", "1")  # fmt: skip
    assert result.returncode == 4
    outcome = summary(tmp_path)
    assert outcome["rows_total"] == 90 and outcome["rows_sent"] == 5
    assert outcome["skipped_reasons"] == {"duplicate": 60}
    unsent = failure_rows(tmp_path / "failures.csv")
    assert len(unsent) == 25
    assert all(int(f["_row"]) <= 30 for f in unsent)  # only first occurrences


@pytest.mark.e2e
def test_a_truncated_gzip_is_a_failure_row_not_a_crash(tmp_path: Path) -> None:
    # Random notes compress badly, so the damage lies well past the first 256 KB the
    # reader samples to detect the encoding (damage there is "unreadable", exit 3).
    noise = random.Random(5)
    full = "id,email,note\n" + "".join(
        f"{i},u{i}@x.co,{noise.getrandbits(128):032x}\n" for i in range(1, 60001)
    )
    packed = gzip.compress(full.encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    mapping = tmp_path / "m.yaml"
    mapping.write_text("user_id: id\nfields: {email: email}\n")
    result = cli("validate", path, "-m", mapping, "--failures", "f.csv", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failures = failure_rows(tmp_path / "f.csv")
    assert len(failures) == 1 and "damaged or cut short" in failures[0]["_error"]
