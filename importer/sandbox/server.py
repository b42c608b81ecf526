"""A local, Metrix-compatible HTTP server for demos, end-to-end tests and rehearsals.

Run it with ``metrix-import sandbox`` (or ``python -m importer.sandbox``). It speaks
the contract in ``metrix-api.md``: ``POST /`` with ``X-Application-Id`` / ``X-API-Key``
headers and a JSON body ``{"customUserId": ..., "messages": [...]}``.

Defaults
    app id ``sandbox-app``, api key ``sandbox-key`` (both overridable; the key is only
    ever shown masked: its first 4 characters then ``****``, or fewer characters for a
    short key, so the whole key never appears in output), host ``127.0.0.1``, port
    ``8080`` (0 picks a free one), database ``sandbox.db`` in a fresh temporary folder
    (kept after exit, its path is shown in the ready line).

Answers to ``POST /``
    403 wrong or missing credentials; 400 when the Content-Type is not
    ``application/json``, the body is not JSON, or the envelope or a message breaks a
    rule (the body lists every problem: ``{"error": ..., "problems": [{"message": 0,
    "field": "time", "problem": "must be an integer"}]}``, ``message`` is null for
    envelope problems); 413 for a body over 1 MiB; otherwise 200. A request is all or
    nothing: one bad message rejects the whole request and nothing of it is stored.
    ``time`` must fit a signed 64-bit integer. Messages of a type other than ``user``
    are stored but only checked for ``type``, ``id`` and ``time``. Fields of a ``user``
    message that Metrix does not document are accepted and kept in the raw message, but
    are not merged into the profile. JSON null is accepted for every optional field and
    every custom attribute and *clears* it (``customAttributes: null`` clears them all).

Storage (SQLite)
    Every accepted message is stored once, keyed by its ``id`` (globally, as Metrix
    does): a re-sent id answers 200 and counts as a duplicate. Accepted messages are
    buffered in memory and written in batches (every 50 ms or 1,000 messages, one
    transaction, off the event loop); every inspection read first flushes the buffer,
    so it reflects every request already answered. Profiles are merged at read time by
    replaying a user's ``user`` messages in ``(time, arrival)`` order: per field, and per
    custom-attribute key, the message with the greatest ``time`` wins, and on equal
    ``time`` the one received later wins.

Inspection (never subject to faults)
    ``GET /_sandbox/stats``, ``GET /_sandbox/users/<customUserId>`` (404 if unknown),
    ``GET /_sandbox/users?limit=100&offset=0``. In the stats, ``requests``,
    ``accepted_messages``, ``duplicates``, ``responses_by_status`` and ``dropped`` count
    ``POST /`` since this process started; ``users`` and ``stored_messages`` count the
    whole database.

Faults (``POST /`` only; every random draw comes from one generator seeded by
``--seed``, four draws per request in arrival order, so a sequential client sees the
same faults on every run; without ``--seed`` a random seed is chosen and shown)
    Checked in this order: latency (sleep first), ``--reject-key-after N`` (the first N
    POST requests received are served normally, every later one gets 403), credentials
    (403), ``--rate-limit R`` (token bucket of R requests/s with a burst of R; beyond it
    429 with ``Retry-After`` in whole seconds, or none with ``--no-retry-after``),
    ``--fail-rate P`` (500 or 503, nothing
    stored), then the request is processed, and finally ``--drop-rate P``: the request
    has been read *and processed* (a valid message *is stored*), then the connection is
    closed without an answer. Storing before dropping is deliberate: it is the case
    where a client cannot know the message arrived, and must rely on message ids.
    ``--capacity N`` processes N POSTs at once (their latency included) and queues the
    rest, so latency grows with load as on a saturated server; ``latency_ms`` in the
    stats (p50, p95 of the last 10,000 POSTs) includes that queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO, TypeVar

from aiohttp import web

from importer.errors import SandboxError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_APP_ID = "sandbox-app"
DEFAULT_API_KEY = "sandbox-key"
READY_PREFIX = "sandbox listening on "

FLUSH_INTERVAL_S = 0.05
FLUSH_BATCH = 1000
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PAGE = 100
MAX_PAGE = 10_000

USER_STRING_FIELDS = (
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
)
GENDERS = ("Male", "Female", "Other")
PROFILE_FIELDS = (*USER_STRING_FIELDS, "gender", "birthday")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

T = TypeVar("T")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Faults:
    """Faults injected on ``POST /``; all off by default."""

    latency_ms: tuple[float, float] | None = None
    fail_rate: float = 0.0
    rate_limit: float | None = None
    drop_rate: float = 0.0
    reject_key_after: int | None = None
    seed: int | None = None
    capacity: int | None = None
    retry_after: bool = True

    @property
    def enabled(self) -> bool:
        return (
            self.capacity is not None
            or self.latency_ms is not None
            or self.fail_rate > 0
            or self.rate_limit is not None
            or self.drop_rate > 0
            or self.reject_key_after is not None
        )

    @property
    def random(self) -> bool:
        return self.latency_ms is not None or self.fail_rate > 0 or self.drop_rate > 0

    def describe(self) -> str:
        parts: list[str] = []
        if self.latency_ms is not None:
            lo, hi = self.latency_ms
            shown = _num(lo) if lo == hi else f"{_num(lo)}-{_num(hi)}"
            parts.append(f"latency={shown}ms")
        if self.fail_rate > 0:
            parts.append(f"fail-rate={_num(self.fail_rate)}")
        if self.capacity is not None:
            parts.append(f"capacity={self.capacity}")
        if self.rate_limit is not None:
            parts.append(f"rate-limit={_num(self.rate_limit)}/s")
            if not self.retry_after:
                parts.append("no-retry-after")
        if self.drop_rate > 0:
            parts.append(f"drop-rate={_num(self.drop_rate)}")
        if self.reject_key_after is not None:
            parts.append(f"reject-key-after={self.reject_key_after}")
        if self.random and self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ", ".join(parts)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything ``serve`` needs; ``db_path=None`` means a fresh temporary database."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db_path: Path | None = None
    app_id: str = DEFAULT_APP_ID
    api_key: str = DEFAULT_API_KEY
    faults: Faults = field(default_factory=Faults)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def mask_key(key: str) -> str:
    """Show at most the first 4 characters, and never more than half of the key."""
    return key[: min(4, len(key) // 2)] + "****"


def parse_latency(text: str) -> tuple[float, float]:
    """Parse ``"20"`` or ``"5-50"`` (milliseconds) into ``(low, high)``; ValueError if bad."""
    low_text, sep, high_text = text.strip().partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if sep else low
    except ValueError:
        raise ValueError(
            f"{text!r} is not a latency in milliseconds (use e.g. 20 or 5-50)"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
        raise ValueError(f"{text!r} is not a latency range MIN-MAX with 0 <= MIN <= MAX")
    return low, high


# ----------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """One rule broken by a request; ``message`` is the message index, None for the envelope."""

    message: int | None
    field: str
    problem: str

    def as_json(self) -> dict[str, object]:
        return {"message": self.message, "field": self.field, "problem": self.problem}


def _is_int(value: object) -> bool:
    return type(value) is int


def _unicode_ok(text: str) -> bool:
    # json.loads lets lone surrogates ("\ud800") through; SQLite cannot store them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_key_string(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if not _unicode_ok(value):
        return "must be valid Unicode (no lone surrogates)"
    return None


def validate_request(payload: object) -> list[Problem]:
    """Every rule the envelope and its messages break; empty when the request is valid."""
    if not isinstance(payload, dict):
        return [Problem(None, "", "the body must be a JSON object")]
    problems: list[Problem] = []
    if (why := _check_key_string(payload.get("customUserId"))) is not None:
        problems.append(Problem(None, "customUserId", why))
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append(Problem(None, "messages", "must be a non-empty array"))
        return problems
    for index, message in enumerate(messages):
        problems.extend(_validate_message(index, message))
    return problems


def _validate_message(index: int, message: object) -> list[Problem]:
    if not isinstance(message, dict):
        return [Problem(index, "", "must be a JSON object")]
    problems: list[Problem] = []
    kind = message.get("type")
    if not isinstance(kind, str) or not _unicode_ok(kind):
        problems.append(Problem(index, "type", "must be a string"))
    if (why := _check_key_string(message.get("id"))) is not None:
        problems.append(Problem(index, "id", why))
    if "time" not in message:
        problems.append(Problem(index, "time", "is required (an integer, Unix time in ms)"))
    elif not _is_int(message["time"]):
        problems.append(Problem(index, "time", "must be an integer (Unix time in ms)"))
    elif not _INT64_MIN <= message["time"] <= _INT64_MAX:
        problems.append(Problem(index, "time", "must fit in a signed 64-bit integer"))
    if kind == "user":
        problems.extend(_validate_user_fields(index, message))
    return problems


def _validate_user_fields(index: int, message: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for name in USER_STRING_FIELDS:
        value = message.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(Problem(index, name, "must be a string"))
    gender = message.get("gender")
    if gender is not None and gender not in GENDERS:
        problems.append(Problem(index, "gender", "must be one of Male, Female, Other"))
    birthday = message.get("birthday")
    if birthday is not None and not _is_int(birthday):
        problems.append(Problem(index, "birthday", "must be an integer (Unix time in ms)"))
    attributes = message.get("customAttributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            problems.append(Problem(index, "customAttributes", "must be an object"))
        else:
            for key, value in attributes.items():
                if value is not None and not isinstance(value, str | int | float | dict | list):
                    problems.append(
                        Problem(
                            index,
                            f"customAttributes.{key}",
                            "must be a string, number, boolean, object or array",
                        )
                    )
    return problems


# -------------------------------------------------------------------------- merging


def merge_profile(messages: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge ``user`` messages given in ``(time, arrival)`` order into one profile.

    Replaying in that order makes the greatest ``time`` win per field and per custom
    attribute (ties: the later arrival); a null clears the field or attribute.
    """
    profile: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for message in messages:
        if message.get("type") != "user":
            continue
        for name in PROFILE_FIELDS:
            if name in message:
                if message[name] is None:
                    profile.pop(name, None)
                else:
                    profile[name] = message[name]
        if "customAttributes" in message:
            sent = message["customAttributes"]
            if sent is None:
                attributes.clear()
            else:
                for key, value in sent.items():
                    if value is None:
                        attributes.pop(key, None)
                    else:
                        attributes[key] = value
    if attributes:
        profile["customAttributes"] = attributes
    return profile


# -------------------------------------------------------------------------- storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    custom_user_id TEXT NOT NULL,
    type TEXT NOT NULL,
    time INTEGER NOT NULL,
    received_at REAL NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_user ON messages (custom_user_id, time, seq);
"""
_INSERT = (
    "INSERT OR IGNORE INTO messages (seq, id, custom_user_id, type, time, received_at, raw)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_Row = tuple[int, str, str, str, int, float, dict[str, Any]]


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    try:
        if read_only:
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        conn.execute("SELECT count(*) FROM messages").fetchone()
    except (sqlite3.Error, OSError) as exc:
        raise SandboxError(
            f"{path}: cannot open the sandbox database ({exc}). "
            "Pass --db with a writable path to a sandbox database."
        ) from exc
    return conn


def _user_detail(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    rows = conn.execute(
        "SELECT raw FROM messages WHERE custom_user_id = ? ORDER BY time, seq", (user_id,)
    ).fetchall()
    if not rows:
        return None
    messages = [json.loads(raw) for (raw,) in rows]
    return {"customUserId": user_id, "profile": merge_profile(messages), "messages": messages}


def iter_profiles(
    conn: sqlite3.Connection, limit: int = -1, offset: int = 0
) -> Iterator[dict[str, Any]]:
    """Merged profiles ``{"customUserId", "profile"}`` sorted by customUserId."""
    cursor = conn.execute(
        "SELECT m.custom_user_id, m.raw FROM messages AS m JOIN ("
        " SELECT DISTINCT custom_user_id FROM messages"
        " ORDER BY custom_user_id LIMIT ? OFFSET ?) AS page USING (custom_user_id)"
        " ORDER BY m.custom_user_id, m.time, m.seq",
        (limit, offset),
    )
    for user_id, rows in itertools.groupby(cursor, key=itemgetter(0)):
        profile = merge_profile(json.loads(raw) for _, raw in rows)
        yield {"customUserId": user_id, "profile": profile}


def _user_page(conn: sqlite3.Connection, limit: int, offset: int) -> dict[str, Any]:
    (total,) = conn.execute("SELECT count(DISTINCT custom_user_id) FROM messages").fetchone()
    users = list(iter_profiles(conn, limit, offset))
    return {"total": total, "limit": limit, "offset": offset, "users": users}


def dump_profiles(db_path: Path, out: TextIO) -> int:
    """Write every merged profile to ``out`` as JSON lines; return how many."""
    if not db_path.is_file():
        raise SandboxError(f"{db_path}: no such sandbox database. Check the --db path.")
    conn = _connect(db_path, read_only=True)
    try:
        count = 0
        for profile in iter_profiles(conn):
            out.write(json.dumps(profile, ensure_ascii=False) + "\n")
            count += 1
        return count
    finally:
        conn.close()


class Store:
    """Accepted messages: deduplicated in memory, buffered, written to SQLite in batches.

    The connection is only ever used from one worker thread, so writes and reads are
    serialised in submission order and never block the event loop.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = _connect(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-db")
        self._seen: set[str] = {row[0] for row in self._conn.execute("SELECT id FROM messages")}
        self.users: set[str] = {
            row[0] for row in self._conn.execute("SELECT DISTINCT custom_user_id FROM messages")
        }
        (max_seq,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()
        self._next_seq: int = max_seq + 1
        self._buffer: list[_Row] = []
        self._wakeup = asyncio.Event()
        self.write_errors = 0

    @property
    def stored_messages(self) -> int:
        return len(self._seen)

    def accept(self, user_id: str, messages: list[dict[str, Any]]) -> tuple[int, int]:
        """Buffer the messages not seen before; return (accepted, duplicates)."""
        accepted = duplicates = 0
        now = time.time()
        for message in messages:
            message_id = message["id"]
            if message_id in self._seen:
                duplicates += 1
                continue
            self._seen.add(message_id)
            row = (self._next_seq, message_id, user_id, message["type"], message["time"])
            self._buffer.append((*row, now, message))
            self._next_seq += 1
            accepted += 1
        if accepted:
            self.users.add(user_id)
            if len(self._buffer) >= FLUSH_BATCH:
                self._wakeup.set()
        return accepted, duplicates

    def _submit_flush(self) -> asyncio.Future[None]:
        batch, self._buffer = self._buffer, []
        return asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)

    async def flush(self) -> None:
        """Write everything buffered so far, and wait for earlier writes too."""
        # Shielded: cancelling the flusher task at shutdown must not cancel a write
        # still queued in the executor, or that batch (already answered 200) is lost.
        await asyncio.shield(self._submit_flush())

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``query`` after every message accepted so far is in the database."""
        if self._buffer:
            self._submit_flush()  # the single worker runs it before the query below
        return await asyncio.get_running_loop().run_in_executor(self._executor, query, self._conn)

    async def run_flusher(self) -> None:
        """Background task: flush every FLUSH_INTERVAL_S, or sooner when the buffer fills."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), FLUSH_INTERVAL_S)
            self._wakeup.clear()
            if self._buffer:
                await self.flush()

    def _write(self, batch: list[_Row]) -> None:
        if not batch:
            return
        rows = [(*row[:6], json.dumps(row[6], ensure_ascii=False)) for row in batch]
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(_INSERT, rows)
        except sqlite3.Error:
            # One bad row must not lose its whole batch: retry row by row.
            for row in rows:
                try:
                    with self._conn:
                        self._conn.execute(_INSERT, row)
                except sqlite3.Error as exc:
                    self.write_errors += 1
                    print(f"sandbox: could not store message {row[1]!r}: {exc}", file=sys.stderr)

    async def close(self) -> None:
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)


# ---------------------------------------------------------------------------- server


class _TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> int | None:
        """None when a request may pass, else the Retry-After in whole seconds."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


def _latency_summary(latencies: Iterable[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50": None, "p95": None}
    return {
        name: round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
        for name, q in (("p50", 0.5), ("p95", 0.95))
    }


def _json_body(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


_FORBIDDEN = _json_body(
    {"error": "X-Application-Id or X-API-Key is missing or wrong (403 Forbidden)"}
)
_REVOKED = _json_body({"error": "the API key has been revoked (403 Forbidden)"})
_RATE_LIMITED = _json_body({"error": "rate limit exceeded, retry later (429)"})
_INJECTED = _json_body({"error": "injected server fault"})
_BAD_TYPE = _json_body({"error": "Content-Type must be application/json"})
_TOO_LARGE = _json_body({"error": f"request body larger than {MAX_BODY_BYTES} bytes"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class SandboxServer:
    """The aiohttp application and the state behind it."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store
        faults = config.faults
        self._faults = faults
        self._rng = random.Random(faults.seed) if faults.random else None
        self._bucket = _TokenBucket(faults.rate_limit) if faults.rate_limit is not None else None
        self.requests = 0
        self.accepted_messages = 0
        self.duplicates = 0
        self.dropped = 0
        self.responses_by_status: Counter[int] = Counter()
        # Time from a POST's arrival to its answer, queueing for --capacity included.
        self.latencies: deque[float] = deque(maxlen=10_000)
        self.processing = 0
        self.processing_peak = 0
        self._capacity = asyncio.Semaphore(faults.capacity) if faults.capacity is not None else None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/", self.handle_post)
        app.router.add_get("/_sandbox/stats", self.handle_stats)
        app.router.add_get("/_sandbox/users", self.handle_users)
        app.router.add_get("/_sandbox/users/{user_id:.+}", self.handle_user)
        return app

    def _answer(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.responses_by_status[status] += 1
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        try:
            if self._capacity is None:
                return await self._serve_processing(request)
            async with self._capacity:
                return await self._serve_processing(request)
        finally:
            self.latencies.append(time.monotonic() - arrived)

    async def _serve_processing(self, request: web.Request) -> web.StreamResponse:
        self.processing += 1
        self.processing_peak = max(self.processing_peak, self.processing)
        try:
            return await self._serve_post(request)
        finally:
            self.processing -= 1

    async def _serve_post(self, request: web.Request) -> web.StreamResponse:
        index = self.requests
        self.requests += 1
        faults = self._faults
        drop = False
        fail_status = 0
        if self._rng is not None:
            # Always four draws per request, so the sequence only depends on arrival order.
            u_latency, u_fail, u_status, u_drop = (self._rng.random() for _ in range(4))
            if faults.latency_ms is not None:
                low, high = faults.latency_ms
                await asyncio.sleep((low + (high - low) * u_latency) / 1000)
            if u_fail < faults.fail_rate:
                fail_status = 500 if u_status < 0.5 else 503
            drop = u_drop < faults.drop_rate

        if faults.reject_key_after is not None and index >= faults.reject_key_after:
            return self._answer(403, _REVOKED)
        headers = request.headers
        if (
            headers.get("X-Application-Id") != self.config.app_id
            or headers.get("X-API-Key") != self.config.api_key
        ):
            return self._answer(403, _FORBIDDEN)
        if self._bucket is not None and (retry_after := self._bucket.take()) is not None:
            retry = {"Retry-After": str(retry_after)} if faults.retry_after else None
            return self._answer(429, _RATE_LIMITED, retry)
        if fail_status:
            return self._answer(fail_status, _INJECTED)

        try:
            status, body = await self._process(request)
        except ConnectionError:
            # The client went away mid-request (a killed importer): nothing to answer.
            raise web.HTTPBadRequest() from None
        if drop:
            self.dropped += 1
            if request.transport is not None:
                request.transport.close()
            # aiohttp cannot write this to the closed transport and drops it quietly.
            return web.Response(status=status, body=body)
        return self._answer(status, body)

    async def _process(self, request: web.Request) -> tuple[int, bytes]:
        if request.content_type != "application/json":
            return 400, _BAD_TYPE
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return 413, _TOO_LARGE
        try:
            payload = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return 400, _json_body({"error": f"the body is not valid JSON: {exc}"})
        problems = validate_request(payload)
        if problems:
            return 400, _json_body(
                {
                    "error": f"invalid request: {len(problems)} problem(s)",
                    "problems": [p.as_json() for p in problems],
                }
            )
        accepted, duplicates = self.store.accept(payload["customUserId"], payload["messages"])
        self.accepted_messages += accepted
        self.duplicates += duplicates
        return 200, _json_body({"status": "ok", "accepted": accepted, "duplicates": duplicates})

    def stats(self) -> dict[str, Any]:
        """The counters served at ``GET /_sandbox/stats``."""
        return {
            "requests": self.requests,
            "accepted_messages": self.accepted_messages,
            "duplicates": self.duplicates,
            "users": len(self.store.users),
            "stored_messages": self.store.stored_messages,
            "responses_by_status": {
                str(status): count for status, count in sorted(self.responses_by_status.items())
            },
            "dropped": self.dropped,
            "latency_ms": _latency_summary(self.latencies),
            "processing_peak": self.processing_peak,
            # Messages answered 200 that the database then refused: a test oracle must know.
            "write_errors": self.store.write_errors,
        }

    async def handle_stats(self, request: web.Request) -> web.StreamResponse:
        await self.store.flush()
        return web.json_response(self.stats())

    async def handle_user(self, request: web.Request) -> web.StreamResponse:
        user_id = request.match_info["user_id"]
        detail = await self.store.read(lambda conn: _user_detail(conn, user_id))
        if detail is None:
            return web.json_response({"error": f"no user {user_id!r}"}, status=404)
        return web.json_response(detail)

    async def handle_users(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = int(request.query.get("limit", DEFAULT_PAGE))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            limit = offset = -1
        if not (1 <= limit <= MAX_PAGE and offset >= 0):
            return web.json_response(
                {"error": f"limit must be 1..{MAX_PAGE} and offset >= 0"}, status=400
            )
        page = await self.store.read(lambda conn: _user_page(conn, limit, offset))
        return web.json_response(page)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


async def serve(config: SandboxConfig, out: TextIO | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then flush every pending write and return.

    Prints one ready line (URL, app id, masked key, database) to ``out`` once listening.
    """
    out = out if out is not None else sys.stdout
    db_path = config.db_path
    if db_path is None:
        db_path = Path(tempfile.mkdtemp(prefix="metrix-sandbox-")) / "sandbox.db"
    faults = config.faults
    if faults.random and faults.seed is None:
        faults = replace(faults, seed=random.SystemRandom().randrange(2**32))
        config = replace(config, faults=faults)

    store = Store(db_path)
    server = SandboxServer(config, store)
    runner = web.AppRunner(
        server.make_app(), access_log=None, handle_signals=False, shutdown_timeout=5.0
    )
    await runner.setup()
    flusher: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            raise SandboxError(
                f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}). "
                "Choose another --port, or --port 0 for a free one."
            ) from exc
        port = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        flusher = asyncio.create_task(store.run_flusher())
        extra = f"; faults: {faults.describe()}" if faults.enabled else ""
        print(
            f"{READY_PREFIX}{_url(config.host, port)} (app id: {config.app_id}, "
            f"api key: {mask_key(config.api_key)}, db: {db_path}{extra})",
            file=out,
            flush=True,
        )
        await stop.wait()
        # Shutting down flushes what was acknowledged: a second Ctrl-C (or a supervisor
        # repeating SIGTERM) must not cut that short.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    finally:
        await runner.cleanup()
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        await store.close()
    print(
        f"sandbox stopped: {server.accepted_messages} message(s) accepted, "
        f"{store.stored_messages} stored in {db_path}",
        file=out,
        flush=True,
    )


def run(config: SandboxConfig, out: TextIO | None = None) -> None:
    """Blocking entry point: ``asyncio.run(serve(config))``."""
    asyncio.run(serve(config, out))
