"""The Python API against the real sandbox: what it stored, what it printed, what it raised."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import importer
from importer.errors import ExitCode, ImporterError, MappingError, SourceError
from tests.cli_helpers import ROOT, SAMPLE_CSV, SAMPLE_MAPPING
from tests.e2e import expected_ids, stored_ids
from tests.sandbox_helpers import Sandbox

pytestmark = pytest.mark.e2e  # a sandbox, subprocesses

MAPPING = {
    "user_id": "id",
    "fields": {"email": "email", "firstName": "name"},
    "custom": {"orders": {"column": "orders", "type": "int"}},
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["u1", "u2", "u3", "u4"],
            "email": ["A@example.com", "not-an-email", "c@example.com", None],
            "name": ["سارا", "Neda", None, "Leila"],
            "orders": pd.array([3, 1, None, 7], dtype="Int64"),
        }
    )


def _credentials(sb: Sandbox) -> dict[str, Any]:
    return {"app_id": sb.app_id, "api_key": sb.api_key, "endpoint": sb.url}


def test_validate_preview_and_run_a_dataframe(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = importer.Mapping.from_dict(MAPPING)
    report = importer.validate(_frame(), mapping, failures=tmp_path / "v.csv")
    assert (report.rows_total, report.rows_valid, report.rows_invalid) == (4, 3, 1)
    bodies = importer.preview(_frame(), mapping, rows=2)
    assert [body["customUserId"] for body in bodies] == ["u1", "u3"]
    assert bodies[0]["messages"][0]["customAttributes"] == {"orders": 3}
    summary = importer.run(_frame(), mapping, failures=tmp_path / "f.csv", **_credentials(sandbox))
    assert (summary.rows_sent, summary.rows_failed) == (3, 1)
    stored = sandbox.user("u1")
    assert stored is not None and stored["profile"]["firstName"] == "سارا"
    assert stored["profile"]["email"] == "a@example.com"
    failed = importer.failures_frame(summary)
    assert list(failed["_row"]) == ["2"] and list(failed["_stage"]) == ["validate"]
    assert "email" in failed["_error"][0] and list(failed["id"]) == ["u2"]
    # A second call in the same process works the same (a new run: a new message time).
    again = importer.run(_frame(), mapping, failures=tmp_path / "f.csv", **_credentials(sandbox))
    assert again.rows_sent == 3
    assert len(stored_ids(sandbox)) == 6 and sandbox.users()["total"] == 3
    assert capsys.readouterr() == ("", "")  # the API prints nothing without progress=True


def test_run_a_path_with_state_then_only_changed(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = importer.run(
        str(SAMPLE_CSV), str(SAMPLE_MAPPING), state=state, failures=tmp_path / "f.csv",
        **_credentials(sandbox),
    )  # fmt: skip
    assert first.rows_sent == len(expected_ids())
    second = importer.run(
        SAMPLE_CSV, SAMPLE_MAPPING, state=state, only_changed=True, failures=tmp_path / "f.csv",
        **_credentials(sandbox),
    )  # fmt: skip
    assert second.rows_sent == 0
    assert second.skipped["unchanged since the last run"] == first.rows_sent


def test_run_inside_a_running_event_loop(sandbox: Sandbox, tmp_path: Path) -> None:
    """As in a Jupyter cell: the loop is running when run() is called."""

    async def cell() -> int:
        summary = importer.run(
            _frame(), MAPPING, failures=tmp_path / "f.csv", **_credentials(sandbox)
        )
        return summary.rows_sent

    assert asyncio.run(cell()) == 3
    assert sandbox.user("u3") is not None


def test_rejected_credentials_raise_with_the_summary(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(importer.RunAborted) as caught:
        importer.run(
            _frame(), MAPPING, app_id=sandbox.app_id, api_key="wrong", endpoint=sandbox.url,
            failures=tmp_path / "f.csv",
        )  # fmt: skip
    assert caught.value.exit_code == ExitCode.ABORTED
    assert caught.value.summary.rows_sent == 0
    assert "wrong" not in str(caught.value)


def test_errors_are_the_importers_exceptions(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as mapping_error:
        importer.Mapping.from_dict({"user_id": "id", "custom": {"n": {"type": "integer"}}})
    assert mapping_error.value.exit_code == ExitCode.USAGE
    with pytest.raises(SourceError):
        importer.validate(str(tmp_path / "missing.csv"), MAPPING)
    with pytest.raises(ImporterError, match="no credentials"):
        importer.run(_frame(), MAPPING, endpoint="http://127.0.0.1:9/")
    with pytest.raises(SourceError, match="cannot read a int"):
        importer.validate(42, MAPPING)


def test_import_importer_stays_light() -> None:
    code = (
        "import sys, importer; importer.__version__; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'polars', 'fsspec', 'aiohttp', "
        "'importer.api') if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(shown.stdout.replace("'", '"')) == []


def test_a_dataframe_run_with_state_resumes_only_the_same_data(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    first = importer.run(
        _frame(), MAPPING, state=state, failures=tmp_path / "f.csv", **_credentials(sandbox)
    )
    assert first.rows_sent == 3
    again = importer.run(
        _frame(), MAPPING, state=state, only_changed=True, failures=tmp_path / "f.csv",
        **_credentials(sandbox),
    )  # fmt: skip
    assert again.rows_sent == 0 and again.skipped["unchanged since the last run"] == 3
    changed = _frame()
    changed.loc[0, "name"] = "Sara"
    third = importer.run(
        changed, MAPPING, state=state, only_changed=True, failures=tmp_path / "f.csv",
        **_credentials(sandbox),
    )  # fmt: skip
    assert third.rows_sent == 1
    stored = sandbox.user("u1")
    assert stored is not None and stored["profile"]["firstName"] == "Sara"
