"""Imports from the page: Stop works like Ctrl-C, and the next start resumes."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import SAMPLE_CSV
from tests.e2e import stored_ids
from tests.sandbox_helpers import start_sandbox
from tests.ui_helpers import Ui, request
from tests.ui_helpers import ui as ui

pytestmark = pytest.mark.e2e  # every test here runs the page as a process


def post(ui: Ui, path: str, fields: dict[str, str]) -> None:
    data = urllib.parse.urlencode(fields).encode()
    headers = {"Cookie": ui.cookie, "Content-Type": "application/x-www-form-urlencoded"}
    assert request(ui.base + path, "POST", data, headers).status == 303


def status(ui: Ui) -> dict[str, Any]:
    answer = request(ui.base + "/api/status", headers={"Cookie": ui.cookie})
    data: dict[str, Any] = json.loads(answer.body)
    return data


def wait(ui: Ui, test: Callable[[dict[str, Any]], bool], seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        now = status(ui)
        if test(now):
            return now
        assert time.monotonic() < deadline, now
        time.sleep(0.1)


def open_path(ui: Ui, path: Path) -> int:
    """Open ``path`` by its path and wait for the whole-file check: its valid rows."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    headers = {"Cookie": ui.cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert request(ui.base + "/open", "POST", body, headers).status == 303
    return int(
        wait(ui, lambda s: s.get("validation", {}).get("state") == "done")["validation"]["valid"]
    )


def test_stop_is_ctrl_c_and_the_next_start_resumes(ui: Ui, tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--latency-ms", "300") as sandbox:
        valid = open_path(ui, SAMPLE_CSV)
        target = {"target": "metrix", "endpoint": sandbox.url, "app_id": sandbox.app_id,
                  "api_key": sandbox.api_key}  # fmt: skip
        post(ui, "/run", target)
        wait(ui, lambda s: s["run"]["sent"] > 0)
        post(ui, "/run/stop", {})
        stopped = wait(ui, lambda s: s["run"]["state"] != "running")["run"]
        assert stopped["state"] == "done" and 0 < stopped["sent"] < valid
        assert stopped["done"] == 300  # every row is accounted for
        failures = request(ui.base + "/run/failures.csv", headers={"Cookie": ui.cookie})
        rows = list(csv.DictReader(io.StringIO(failures.body.decode("utf-8-sig"))))
        not_sent = [row for row in rows if row["_stage"] == "not_sent"]
        assert stopped["sent"] + len(rows) == 300
        assert len(not_sent) >= valid - stopped["sent"]  # unread rows too, valid or not
        assert "interrupted" in not_sent[0]["_error"]

        post(ui, "/run", target)  # the same file and mapping: the state resumes it
        wait(ui, lambda s: s["run"]["state"] == "running")
        resumed = wait(ui, lambda s: s["run"]["state"] != "running")["run"]
        assert resumed["state"] == "done" and resumed["sent"] == valid
        ids = stored_ids(sandbox)
        assert len(ids) == len(set(ids)) == valid
    page = request(ui.base + "/", headers={"Cookie": ui.cookie}).body.decode()
    assert "Imports kept in" in page and "finished" in page
