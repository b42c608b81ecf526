"""The sandbox server, tested over real HTTP against the real subprocess (no mocks)."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.sandbox_helpers import Reply, Sandbox, sandbox_command, sandbox_env, start_sandbox

pytestmark = pytest.mark.e2e  # every test here runs the CLI or the sandbox as a process


def uid() -> str:
    return uuid.uuid4().hex


def user_message(time_ms: int = 1_700_000_000_000, **fields: Any) -> dict[str, Any]:
    return {"type": "user", "id": uid(), "time": time_ms, **fields}


def envelope(user: str, *messages: dict[str, Any]) -> dict[str, Any]:
    return {"customUserId": user, "messages": list(messages)}


def stored_ids(db_path: Path) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM messages")]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One fault-free sandbox for the tests that only look at their own users."""
    with start_sandbox(tmp_path_factory.mktemp("shared")) as sb:
        yield sb


# ------------------------------------------------------------------------- statuses


def test_valid_request_answers_200_and_is_stored(shared: Sandbox) -> None:
    user = uid()
    message = user_message(firstName="Sara", gender="Female", birthday=0, email="s@x.ir")
    event = {"type": "event", "id": uid(), "time": 5}
    reply = shared.post(envelope(user, message, event))
    assert reply.status == 200
    assert reply.body["accepted"] == 2
    stored = shared.user(user)
    assert stored is not None
    assert stored["profile"] == {
        "firstName": "Sara",
        "gender": "Female",
        "birthday": 0,
        "email": "s@x.ir",
    }
    assert stored["messages"] == [event, message]  # raw, in time order


@pytest.mark.parametrize(
    ("app_id", "api_key"),
    [
        ("", ""),
        ("sandbox-app", ""),
        ("", "sandbox-key"),
        ("sandbox-app", "wrong-key"),
        ("other-app", "sandbox-key"),
    ],
    ids=["none", "no-key", "no-app-id", "wrong-key", "wrong-app-id"],
)
def test_bad_credentials_answer_403_and_store_nothing(
    shared: Sandbox, app_id: str, api_key: str
) -> None:
    user = uid()
    reply = shared.post(envelope(user, user_message()), app_id=app_id, api_key=api_key)
    assert reply.status == 403
    assert "error" in reply.body
    assert shared.user(user) is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", None),
        (None, None),
        ("application/x-www-form-urlencoded", None),
        ("application/json", b"{not json"),
        ("application/json", b'{"customUserId": "u", "messages": [{"time": NaN}]}'),
        ("application/json", b"\xff\xfe\x00"),
    ],
    ids=["text-plain", "no-content-type", "form", "broken-json", "nan", "not-utf8"],
)
def test_non_json_requests_answer_400(
    shared: Sandbox, content_type: str | None, body: bytes | None
) -> None:
    user = uid()
    data = body if body is not None else json.dumps(envelope(user, user_message())).encode()
    reply = shared.post(body=data, content_type=content_type)
    assert reply.status == 400
    assert "error" in reply.body
    assert shared.user(user) is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], ""),
        ({"messages": [{"type": "user", "id": "x", "time": 1}]}, "customUserId"),
        (
            {"customUserId": "", "messages": [{"type": "user", "id": "x", "time": 1}]},
            "customUserId",
        ),
        ({"customUserId": 7, "messages": [{"type": "user", "id": "x", "time": 1}]}, "customUserId"),
        ({"customUserId": "u"}, "messages"),
        ({"customUserId": "u", "messages": []}, "messages"),
        ({"customUserId": "u", "messages": {"type": "user"}}, "messages"),
    ],
    ids=[
        "not-object",
        "no-user",
        "empty-user",
        "user-not-string",
        "no-messages",
        "empty-messages",
        "messages-not-array",
    ],
)
def test_envelope_rules_answer_400(shared: Sandbox, payload: Any, field: str) -> None:
    reply = shared.post(payload)
    assert reply.status == 400
    assert {"message": None, "field": field} in [
        {"message": p["message"], "field": p["field"]} for p in reply.body["problems"]
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time": 1.0}, "time"),
        ({"time": 1.5}, "time"),
        ({"time": True}, "time"),
        ({"time": "1700000000000"}, "time"),
        ({"time": None}, "time"),
        ({"time": 2**64}, "time"),
        ({"id": ""}, "id"),
        ({"id": 12}, "id"),
        ({"type": 1}, "type"),
        ({"birthday": True}, "birthday"),
        ({"birthday": 1.5}, "birthday"),
        ({"birthday": "2000-01-01"}, "birthday"),
        ({"gender": "male"}, "gender"),
        ({"firstName": 5}, "firstName"),
        ({"email": ["a@b.c"]}, "email"),
        ({"phoneNumber": 9121122333}, "phoneNumber"),
        ({"locality": False}, "locality"),
        ({"customAttributes": ["a"]}, "customAttributes"),
        ({"customAttributes": "a=1"}, "customAttributes"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
def test_message_rules_answer_400_and_store_nothing(
    shared: Sandbox, change: dict[str, Any], field: str
) -> None:
    user = uid()
    bad = {**user_message(), **change}
    reply = shared.post(envelope(user, user_message(), bad))
    assert reply.status == 400
    assert {"message": 1, "field": field} in [
        {"message": p["message"], "field": p["field"]} for p in reply.body["problems"]
    ], reply.body
    assert shared.user(user) is None  # all or nothing: the good message 0 is not stored


@pytest.mark.parametrize("missing", ["type", "id", "time"])
def test_mandatory_message_fields_answer_400(shared: Sandbox, missing: str) -> None:
    message = user_message()
    del message[missing]
    reply = shared.post(envelope(uid(), message))
    assert reply.status == 400
    assert [(p["message"], p["field"]) for p in reply.body["problems"]] == [(0, missing)]


def test_non_object_message_answers_400(shared: Sandbox) -> None:
    reply = shared.post(envelope(uid(), user_message(), "user"))  # type: ignore[arg-type]
    assert reply.status == 400
    assert [(p["message"], p["field"]) for p in reply.body["problems"]] == [(1, "")]


def test_every_json_type_is_accepted_in_custom_attributes_and_null_anywhere(
    shared: Sandbox,
) -> None:
    user = uid()
    attrs = {"s": "x", "i": 3, "f": 2.5, "b": False, "o": {"k": [1, 2]}, "a": [1, "2"], "n": None}
    nulls = {
        name: None
        for name in (
            "firstName",
            "lastName",
            "email",
            "phoneNumber",
            "hashedEmail",
            "hashedPhoneNumber",
            "country",
            "city",
            "region",
            "locality",
            "gender",
            "birthday",
        )
    }
    reply = shared.post(envelope(user, {**user_message(customAttributes=attrs), **nulls}))
    assert reply.status == 200, reply.body
    stored = shared.user(user)
    assert stored is not None
    assert stored["profile"] == {"customAttributes": {k: v for k, v in attrs.items() if k != "n"}}


def test_unusual_user_ids_round_trip(shared: Sandbox) -> None:
    user = f"a/b c?d#é-{uid()}"
    assert shared.post(envelope(user, user_message(city="Tehran"))).status == 200
    stored = shared.user(user)
    assert stored is not None
    assert stored["customUserId"] == user
    assert stored["profile"] == {"city": "Tehran"}


def test_unknown_user_is_404(shared: Sandbox) -> None:
    reply = shared.get("_sandbox/users/nobody-" + uid())
    assert reply.status == 404
    assert "error" in reply.body


# ------------------------------------------------------------- storage and merging


def test_duplicate_id_is_stored_once_and_counted(sandbox: Sandbox) -> None:
    message = user_message(firstName="Once")
    first = sandbox.post(envelope("u1", message))
    again = sandbox.post(envelope("u1", message))
    assert (first.status, again.status) == (200, 200)
    assert again.body == {"status": "ok", "accepted": 0, "duplicates": 1}
    stats = sandbox.stats()
    assert stats["requests"] == 2
    assert stats["accepted_messages"] == 1
    assert stats["duplicates"] == 1
    assert stats["users"] == 1
    assert stats["responses_by_status"] == {"200": 2}
    assert stats["dropped"] == 0
    # stats flushed the buffer: the database holds it, once
    assert stored_ids(sandbox.db_path) == [message["id"]]
    stored = sandbox.user("u1")
    assert stored is not None
    assert len(stored["messages"]) == 1


def test_latest_time_wins_per_field_even_when_older_arrives_later(shared: Sandbox) -> None:
    user = uid()
    newer = user_message(200, firstName="New", customAttributes={"plan": "gold"})
    older = user_message(
        100, firstName="Old", lastName="Kept", customAttributes={"plan": "silver", "seats": 3}
    )
    tie = user_message(200, email="tie@x.ir", customAttributes={"seats": 4})
    newest_clear = user_message(300, lastName=None, customAttributes={"seats": None})
    for message in (newer, older, tie):
        assert shared.post(envelope(user, message)).status == 200
    stored = shared.user(user)
    assert stored is not None
    assert stored["profile"] == {
        "firstName": "New",
        "lastName": "Kept",
        "email": "tie@x.ir",
        "customAttributes": {"plan": "gold", "seats": 4},
    }
    assert [m["id"] for m in stored["messages"]] == [older["id"], newer["id"], tie["id"]]
    # a null with the greatest time clears the field and the attribute
    assert shared.post(envelope(user, newest_clear)).status == 200
    stored = shared.user(user)
    assert stored is not None
    assert stored["profile"] == {
        "firstName": "New",
        "email": "tie@x.ir",
        "customAttributes": {"plan": "gold"},
    }


def test_equal_time_later_arrival_wins(shared: Sandbox) -> None:
    user = uid()
    for name in ("First", "Second", "Third"):
        assert shared.post(envelope(user, user_message(50, firstName=name))).status == 200
    stored = shared.user(user)
    assert stored is not None
    assert stored["profile"]["firstName"] == "Third"


def test_users_listing_is_sorted_and_paged(sandbox: Sandbox) -> None:
    for user in ("c", "a", "b"):
        assert sandbox.post(envelope(user, user_message(city=user.upper()))).status == 200
    page = sandbox.users(limit=2, offset=1)
    assert page["total"] == 3
    assert page["users"] == [
        {"customUserId": "b", "profile": {"city": "B"}},
        {"customUserId": "c", "profile": {"city": "C"}},
    ]
    assert sandbox.get("_sandbox/users?limit=0").status == 400
    assert sandbox.get("_sandbox/users?offset=x").status == 400


# ---------------------------------------------------------------------------- faults


def test_latency_delays_posts_but_not_inspection(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--latency-ms", "5000") as sb:
        replies: list[Reply] = []
        post = threading.Thread(
            target=lambda: replies.append(sb.post(envelope("u", user_message())))
        )
        post.start()
        for _ in range(1000):  # inspection answers while the POST is held
            if sb.stats()["requests"] == 1:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the POST never arrived")
        assert replies == [] and sb.user("u") is None
        post.join(30)
        assert [reply.status for reply in replies] == [200]
        assert sb.user("u") is not None


def run_statuses(tmp_path: Path, *args: str, count: int = 24) -> tuple[list[int], Sandbox]:
    sb = start_sandbox(tmp_path, *args)
    statuses = [sb.post(envelope(f"u{i}", user_message())).status for i in range(count)]
    return statuses, sb


def test_fail_rate_gives_5xx_reproducibly_and_stores_nothing_for_them(tmp_path: Path) -> None:
    statuses, sb = run_statuses(tmp_path, "--fail-rate", "0.5", "--seed", "7")
    with sb:
        assert {500, 503} & set(statuses)
        assert 200 in statuses
        assert set(statuses) <= {200, 500, 503}
        for i, status in enumerate(statuses):
            assert (sb.user(f"u{i}") is not None) == (status == 200)
        assert sb.stats()["accepted_messages"] == statuses.count(200)
    again, sb2 = run_statuses(tmp_path, "--fail-rate", "0.5", "--seed", "7")
    with sb2:
        assert again == statuses
    other, sb3 = run_statuses(tmp_path, "--fail-rate", "0.5", "--seed", "8")
    with sb3:
        assert other != statuses


def test_faults_never_apply_to_inspection(tmp_path: Path) -> None:
    with start_sandbox(
        tmp_path,
        "--fail-rate",
        "1",
        "--reject-key-after",
        "0",
        "--drop-rate",
        "1",
        "--rate-limit",
        "0.001",
    ) as sb:
        for _ in range(3):
            assert sb.get("_sandbox/stats").status == 200
            assert sb.get("_sandbox/users").status == 200


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--rate-limit", "5") as sb:
        replies = [sb.post(envelope(f"u{i}", user_message())) for i in range(15)]
        statuses = [r.status for r in replies]
        assert statuses[:5] == [200] * 5
        limited = [(i, r) for i, r in enumerate(replies) if r.status == 429]
        assert len(limited) >= 8, statuses
        for i, reply in limited:
            assert reply.headers["Retry-After"].isdigit()
            assert int(reply.headers["Retry-After"]) >= 1
            assert sb.user(f"u{i}") is None
        time.sleep(1.0)
        assert sb.post(envelope("later", user_message())).status == 200
        assert sb.stats()["responses_by_status"]["429"] == len(limited)


def test_dropped_request_is_stored_but_never_answered(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--drop-rate", "1") as sb:
        message = user_message(firstName="Ghost")
        with pytest.raises((http.client.HTTPException, ConnectionError, urllib.error.URLError)):
            sb.post(envelope("ghost", message))
        stored = sb.user("ghost")
        assert stored is not None
        assert stored["profile"] == {"firstName": "Ghost"}
        stats = sb.stats()
        assert stats["dropped"] == 1
        assert stats["responses_by_status"] == {}


def test_dropped_request_breaks_an_aiohttp_client_too(tmp_path: Path) -> None:
    async def post(url: str, headers: dict[str, str]) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=envelope("a", user_message()), headers=headers) as response,
        ):
            await response.read()

    with start_sandbox(tmp_path, "--drop-rate", "1") as sb:
        headers = {"X-Application-Id": sb.app_id, "X-API-Key": sb.api_key}
        with pytest.raises(aiohttp.ClientError):
            asyncio.run(post(sb.url, headers))
        assert sb.user("a") is not None


def test_reject_key_after_n_requests(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, "--reject-key-after", "3") as sb:
        replies = [sb.post(envelope(f"u{i}", user_message())) for i in range(6)]
        assert [r.status for r in replies] == [200, 200, 200, 403, 403, 403]
        assert "error" in replies[-1].body
        assert [sb.user(f"u{i}") is not None for i in range(6)] == [True] * 3 + [False] * 3


# ------------------------------------------------------------------------- CLI & life


def test_dump_exports_merged_profiles_sorted(tmp_path: Path) -> None:
    with start_sandbox(tmp_path) as sb:
        sb.post(envelope("zed", user_message(2, firstName="Z2")))
        sb.post(envelope("zed", user_message(1, firstName="Z1", city="Rasht")))
        sb.post(envelope("amy", user_message(1, customAttributes={"vip": True})))
        db = sb.db_path
    out = tmp_path / "users.jsonl"
    done = subprocess.run(
        sandbox_command("--db", str(db), "--dump", str(out)),
        capture_output=True,
        text=True,
        env=sandbox_env(),
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        {"customUserId": "amy", "profile": {"customAttributes": {"vip": True}}},
        {"customUserId": "zed", "profile": {"firstName": "Z2", "city": "Rasht"}},
    ]
    to_stdout = subprocess.run(
        sandbox_command("--db", str(db), "--dump", "-"),
        capture_output=True,
        text=True,
        env=sandbox_env(),
        timeout=30,
    )
    assert to_stdout.returncode == 0
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == lines


@pytest.mark.parametrize(
    "args",
    [["--dump", "x.jsonl"], ["--db", "missing.db", "--dump", "x.jsonl"]],
    ids=["no-db", "missing-db"],
)
def test_dump_without_a_database_fails_cleanly(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        sandbox_command(*args),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=sandbox_env(),
        timeout=30,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "Error:" in done.stderr
    assert not (tmp_path / "missing.db").exists()


def test_ready_line_masks_the_key_and_it_never_appears(tmp_path: Path) -> None:
    key = "s3cr3t-api-key-42"
    with start_sandbox(tmp_path, "--api-key", key, "--app-id", "my-app") as sb:
        assert sb.ready_line.startswith(f"sandbox listening on {sb.url} (app id: my-app, ")
        assert "api key: s3cr****" in sb.ready_line
        assert str(sb.db_path) in sb.ready_line
        assert sb.post(envelope("u", user_message())).status == 200
        assert sb.post(envelope("u", user_message()), api_key=key + "x").status == 403
    assert key not in sb.output()
    assert "sandbox-key" not in sb.output()


def test_default_key_is_masked_too(sandbox: Sandbox) -> None:
    assert "api key: sand****," in sandbox.ready_line
    assert "app id: sandbox-app," in sandbox.ready_line
    sandbox.stop()
    assert "sandbox-key" not in sandbox.output()


@pytest.mark.parametrize(
    "args",
    [
        ["--fail-rate", "2"],
        ["--fail-rate", "nan"],
        ["--drop-rate", "-0.1"],
        ["--latency-ms", "abc"],
        ["--latency-ms", "50-5"],
        ["--rate-limit", "0"],
        ["--reject-key-after", "-1"],
        ["--port", "70000"],
        ["--api-key", ""],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_flags_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        sandbox_command("--port", "0", *args),
        capture_output=True,
        text=True,
        env=sandbox_env(),
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert args[0] in errors[0]
    assert "listening" not in done.stdout


def test_busy_port_is_a_clean_error(sandbox: Sandbox, tmp_path: Path) -> None:
    port = sandbox.url.rstrip("/").rsplit(":", 1)[1]
    done = subprocess.run(
        sandbox_command("--port", port, "--db", str(tmp_path / "b.db")),
        capture_output=True,
        text=True,
        env=sandbox_env(),
        timeout=30,
    )
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


async def _load_until_stopped(sb: Sandbox, sig: signal.Signals) -> tuple[set[str], set[str]]:
    """Post continuously from 8 connections; signal the server mid-stream."""
    sent: set[str] = set()
    acknowledged: set[str] = set()
    headers = {"X-Application-Id": sb.app_id, "X-API-Key": sb.api_key}

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        for i in range(100_000):
            message = user_message(i)
            sent.add(message["id"])
            try:
                async with session.post(
                    sb.url, json=envelope(f"w{n}", message), headers=headers
                ) as response:
                    if response.status == 200:
                        acknowledged.add(message["id"])
            except aiohttp.ClientError:
                return

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [asyncio.create_task(worker(session, n)) for n in range(8)]
        await asyncio.sleep(0.4)
        sb.process.send_signal(sig)
        await asyncio.wait_for(asyncio.gather(*workers), 15)
    return sent, acknowledged


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_stops_cleanly_and_flushes_pending_messages(
    tmp_path: Path, sig: signal.Signals
) -> None:
    sb = start_sandbox(tmp_path)
    sent, acknowledged = asyncio.run(_load_until_stopped(sb, sig))
    sb.stop(sig)  # a repeated signal is ignored; asserts exit code 0 and no traceback
    assert len(acknowledged) > 50
    stored = set(stored_ids(sb.db_path))
    assert acknowledged <= stored  # every 200 was durably written, incl. the last batch
    assert stored <= sent
    assert not Path(str(sb.db_path) + "-wal").exists()  # database closed cleanly
    assert "sandbox stopped" in sb.output()
