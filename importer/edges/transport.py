"""HTTP/1.1 to Metrix over asyncio: keep-alive connections, one deadline per request.

It sends bytes and reports what came back; deciding what that means is
importer.core.delivery's job.

Why not a general HTTP client: every request here is the same POST to the same
address, with a small body, answered by a small JSON document. aiohttp's client spent
most of the importer's CPU per request building and parsing what never changes (about
40% of the sending process at zero latency); this module writes each request as one
pre-built head plus the body in a single ``write`` and reads the answer with a parser
that knows only what an answer to it can be (RFC 9112: a status line, headers, a body
framed by Content-Length, chunked coding or the end of the connection).

Every request is bounded, whatever the server does: one deadline for the whole exchange
(connect, send, headers and body), at most ``MAX_ANSWER_BYTES`` of answer body and
``MAX_HEAD_BYTES`` / ``MAX_HEADERS`` of status line and headers. Redirects are never
followed: the API key and the customer data go to the endpoint named and nowhere else.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from yarl import URL

from importer import __version__
from importer.core.delivery import mask, shorten
from importer.core.hosts import is_loopback
from importer.errors import CommandLineProblem, EndpointError, RedirectRefused, TransportError

# Metrix answers are a few hundred bytes; anything far larger is not Metrix talking.
MAX_ANSWER_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024  # status line and headers together (a CDN adds a few KiB)
MAX_HEADERS = 128  # header lines in one answer (CDNs add a few dozen)
_MAX_CHUNK_LINE = 1024  # a chunk's size line, extensions included
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

# What a head says, by its exact bytes. An endpoint answers thousands of times with the
# same head (it changes when its Date header does), and parsing it took a tenth of the
# sending process's CPU. Only heads that parsed cleanly are kept; what they say depends
# on nothing but their bytes, so an answer read from here is read exactly as parsed.
_KNOWN_HEADS: dict[bytes, tuple[int, str | None, bool, str, int]] = {}
_KNOWN_HEADS_MAX = 32
_KNOWN_HEAD_BYTES = 4096  # a larger head is unusual, and not worth holding on to


@dataclass(frozen=True, slots=True)
class Response:
    """What the endpoint answered."""

    status: int
    text: str = ""
    retry_after: str | None = None


# One shared answer for each common success: nothing of it varies.
_SUCCESS = {status: Response(status) for status in (200, 201, 202, 204)}


class Transport(Protocol):
    """Sends one request body."""

    async def send(self, body: bytes) -> Response: ...


def check_endpoint(url: str, allow_insecure: bool) -> str:
    """Validate the endpoint; plain http is allowed only on loopback or when asked."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(
            f"the endpoint {url!r} is not an http(s) URL; use e.g. https://entry.metrix.ir/"
        )
    if parts.username is not None or parts.password is not None:
        # It would be shown wherever the endpoint is (errors, logs, the summary).
        raise EndpointError(
            "the endpoint contains a user name or password (user:password@host), which "
            "would be shown wherever the endpoint is; Metrix takes its credentials from "
            "METRIX_APP_ID and METRIX_API_KEY"
        )
    if parts.scheme == "http" and not (allow_insecure or is_loopback(parts.hostname)):
        raise EndpointError(
            f"refusing to send customer data over plain http to {parts.hostname}: use https, "
            "or pass --allow-insecure if this is really what you want"
        )
    return url


class HttpTransport:
    """Use as ``async with HttpTransport(...) as transport``.

    ``concurrency`` is how many idle connections are kept for reuse; the callers bound
    how many requests are in flight (one connection each).
    """

    def __init__(
        self, endpoint: str, app_id: str, api_key: str, concurrency: int, timeout: float
    ) -> None:
        self.endpoint = endpoint
        check_credentials(app_id, api_key)
        url = URL(endpoint)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise EndpointError(f"the endpoint {endpoint!r} is not an http(s) URL")
        self._host = url.raw_host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        if not url.is_default_port():
            host += f":{self._port}"
        head = (
            f"POST {url.raw_path_qs or '/'} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            f"User-Agent: metrix-importer/{__version__}\r\n"
            "Accept: application/json\r\n"
            f"X-Application-Id: {app_id}\r\n"
            f"X-API-Key: {api_key}\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: "
        )
        self._head = head.encode("latin-1")
        self._api_key = api_key
        self._timeout = timeout
        self._keep = max(1, concurrency)
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeps: asyncio.TimerHandle | None = None
        # Deadlines are checked by one timer for all connections, not one per request
        # (a timer per request was a tenth of the sending CPU): a request is cut off
        # within an eighth of the timeout after its deadline.
        self._sweep_every = min(0.5, max(0.01, timeout / 8))

    async def __aenter__(self) -> HttpTransport:
        self._loop = asyncio.get_running_loop()
        self._sweeps = self._loop.call_later(self._sweep_every, self._sweep)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sweeps is not None:
            self._sweeps.cancel()
        for connection in (*self._idle, *self._busy):
            connection.close()
        self._idle.clear()
        self._busy.clear()

    async def send(self, body: bytes) -> Response:
        assert self._loop is not None, "use HttpTransport as an async context manager"
        request = b"%b%d\r\n\r\n%b" % (self._head, len(body), body)
        deadline = self._loop.time() + self._timeout
        connection = self._reuse() or await self._connect(deadline)
        try:
            status, raw, retry_after = await connection.exchange(request, deadline)
        except _Redirect as redirect:
            location = shorten(mask(redirect.location, self._api_key))
            raise RedirectRefused(self.endpoint, redirect.status, location) from None
        finally:
            self._release(connection)
        if 200 <= status < 300:
            return _SUCCESS.get(status) or Response(status)
        return Response(status, raw[:2000].decode("utf-8", "replace"), retry_after)

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for connection in [c for c in self._busy if c.deadline <= now]:
            connection.expire()
        self._sweeps = self._loop.call_later(self._sweep_every, self._sweep)

    def _reuse(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely stale
            if connection.usable():
                self._busy.add(connection)
                return connection
            connection.close()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        assert self._loop is not None
        try:
            async with asyncio.timeout_at(deadline):
                # Happy Eyeballs (RFC 8305): when a name has several addresses and the
                # first does not answer (a broken IPv6 route), try the next after 250 ms
                # rather than spend the whole deadline on it.
                _, connection = await self._loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                    happy_eyeballs_delay=0.25, interleave=1,
                )  # fmt: skip
        except TimeoutError:
            raise TransportError("timeout") from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportError("cannot connect", exc.verify_message or str(exc)) from None
        except ssl.SSLError as exc:
            raise TransportError("cannot connect", exc.reason or str(exc)) from None
        except OSError as exc:
            raise TransportError("cannot connect", exc.strerror or str(exc)) from None
        self._busy.add(connection)
        return connection

    def _release(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        if connection.usable() and len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            connection.close()


def check_credentials(app_id: str, api_key: str) -> None:
    """Credentials become header values: printable ASCII only. A line break would add
    headers of its own; anything else is a copying mistake, and how a server reads
    bytes past ASCII in a header is anyone's guess."""
    for name, value in (("METRIX_APP_ID", app_id), ("METRIX_API_KEY", api_key)):
        if not all(" " <= char <= "~" for char in value):
            raise CommandLineProblem(
                f"{name} contains a line break, a control character or a character that "
                "is not plain ASCII, which cannot be sent in an HTTP header; check how it "
                "was copied (a trailing newline from a file is the usual cause)"
            )


class _Redirect(Exception):
    def __init__(self, status: int, location: str) -> None:
        super().__init__(status)
        self.status = status
        self.location = location


# (status, body, Retry-After)
_Answer = tuple[int, bytes, str | None]


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._reader: _AnswerReader | None = None
        self._answer: asyncio.Future[_Answer] | None = None
        self._reusable = True
        self.deadline = float("inf")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def usable(self) -> bool:
        transport = self._transport
        return self._reusable and transport is not None and not transport.is_closing()

    def close(self) -> None:
        self._reusable = False
        if self._transport is not None:
            self._transport.close()

    def expire(self) -> None:
        """The deadline passed: the request in flight fails, the connection closes."""
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(TransportError("timeout"))
        self.close()

    async def exchange(self, request: bytes, deadline: float) -> _Answer:
        assert self._transport is not None
        if not self.usable():
            # Closed between connecting and now (the server hung up, or sent bytes
            # nobody asked for): a write would vanish and the request wait its deadline.
            raise TransportError("connection dropped")
        self.deadline = deadline
        answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._answer = answer
        self._reader = _AnswerReader()
        self._transport.write(request)
        try:
            return await answer
        except BaseException:
            self.close()  # mid-answer, timed out or cancelled: the stream is out of step
            raise
        finally:
            self._answer = self._reader = None
            self.deadline = float("inf")

    def data_received(self, data: bytes) -> None:
        answer, reader = self._answer, self._reader
        if answer is None or reader is None or answer.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        try:
            result = reader.feed(data)
        except (TransportError, _Redirect) as exc:
            self.close()
            answer.set_exception(exc)
            return
        if result is not None:
            self._reusable = reader.keep_alive
            answer.set_result(result)

    def eof_received(self) -> bool | None:
        self._reusable = False
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._reusable = False
        answer, reader = self._answer, self._reader
        if answer is None or reader is None or answer.done():
            return
        result = reader.at_end()  # an answer framed by the end of the connection
        if result is not None:
            answer.set_result(result)
        else:
            answer.set_exception(TransportError("connection dropped"))


def _too_large() -> TransportError:
    return TransportError(
        "answer too large",
        f"over {MAX_ANSWER_BYTES // 1024} KiB; Metrix answers are a few hundred bytes",
    )


def _malformed(detail: str) -> TransportError:
    return TransportError("malformed answer", detail)


class _AnswerReader:
    """Reads one answer as its bytes arrive; ``feed`` returns it once complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # how far the search for the end of the head got
        self._status = 0  # 0 while the head is still arriving
        self._retry_after: str | None = None
        self._framing = ""  # "length", "chunked" or "close"
        self._length = 0
        self._body = bytearray()  # the decoded chunks so far
        self.keep_alive = False

    def feed(self, data: bytes) -> _Answer | None:
        buffer = self._buffer
        buffer += data
        if self._status == 0 and not self._read_head():
            return None
        if self._framing == "length":
            if len(buffer) < self._length:
                return None
            if len(buffer) > self._length:
                self.keep_alive = False  # more than was announced: out of step
            return self._status, bytes(buffer[: self._length]), self._retry_after
        if self._framing == "chunked":
            return self._read_chunks()
        if len(buffer) > MAX_ANSWER_BYTES:
            raise _too_large()
        return None  # framed by the end of the connection

    def at_end(self) -> _Answer | None:
        if self._status != 0 and self._framing == "close":
            return self._status, bytes(self._buffer), self._retry_after
        return None

    def _read_head(self) -> bool:
        """Parse the status line and headers once they are all here; 1xx answers are
        skipped. False while more bytes are needed."""
        buffer = self._buffer
        while True:
            end, after = _end_of_head(buffer, max(0, self._scanned - 2))
            if end < 0:
                self._scanned = len(buffer)
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _malformed(f"headers over {MAX_HEAD_BYTES // 1024} KiB")
                if buffer.count(b"\n") > MAX_HEADERS + 1:  # the status line's too
                    raise _malformed(f"more than {MAX_HEADERS} header lines")
                return False
            if end > MAX_HEAD_BYTES:
                raise _malformed(f"headers over {MAX_HEAD_BYTES // 1024} KiB")
            head = bytes(buffer[:end])
            del buffer[:after]
            self._scanned = 0
            known = _KNOWN_HEADS.get(head)
            if known is not None:
                (self._status, self._retry_after, self.keep_alive,
                 self._framing, self._length) = known  # fmt: skip
                return True
            # Lines end in CRLF; a bare LF is accepted too (RFC 9112, 2.2).
            lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
            status = _status_of(lines[0])
            if 100 <= status < 200:
                if status == 101:
                    raise _malformed("the server switched protocols")
                continue  # e.g. 100 Continue: the real answer follows
            self._use_head(status, lines)
            if len(head) <= _KNOWN_HEAD_BYTES:
                if len(_KNOWN_HEADS) >= _KNOWN_HEADS_MAX:
                    _KNOWN_HEADS.clear()
                _KNOWN_HEADS[head] = (self._status, self._retry_after, self.keep_alive,
                                      self._framing, self._length)  # fmt: skip
            return True

    def _use_head(self, status: int, lines: list[bytes]) -> None:
        headers = _headers(lines[1:])
        if 300 <= status < 400:
            raise _Redirect(status, headers.get(b"location", b"").decode("latin-1"))
        self._status = status
        if b"retry-after" in headers:
            self._retry_after = headers[b"retry-after"].decode("latin-1")
        version_1_0 = lines[0].startswith(b"HTTP/1.0")
        connection = headers.get(b"connection", b"").lower()
        self.keep_alive = (
            (b"keep-alive" in connection) if version_1_0 else (b"close" not in connection)
        )
        self._frame(status, headers.get(b"transfer-encoding"), headers.get(b"content-length"))

    def _frame(self, status: int, coding: bytes | None, length: bytes | None) -> None:
        """How the body's end is known (RFC 9112, 6.3)."""
        if status in (204, 304):
            self._framing, self._length = "length", 0
        elif coding is not None:
            if length is not None:
                self.keep_alive = False  # both framings given: read as chunked, then close
            if coding.lower().rsplit(b",", 1)[-1].strip() == b"chunked":
                self._framing = "chunked"
            else:
                self._framing, self.keep_alive = "close", False
        elif length is not None:
            if not length.isdigit() or len(length) > 18:
                raise _malformed(f"Content-Length {length[:40]!r}")
            self._framing, self._length = "length", int(length)
            if self._length > MAX_ANSWER_BYTES:
                raise _too_large()
        else:
            self._framing, self.keep_alive = "close", False

    def _read_chunks(self) -> _Answer | None:
        buffer, body = self._buffer, self._body  # the buffer starts at the next chunk
        while True:
            line_end = buffer.find(b"\r\n")
            if (line_end if line_end >= 0 else len(buffer)) > _MAX_CHUNK_LINE:
                raise _malformed("a chunk size line too long")
            if line_end < 0:
                return None
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            if not 0 < len(size_text) <= 16 or not _HEX_DIGITS.issuperset(size_text):
                raise _malformed(f"chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if len(body) + size > MAX_ANSWER_BYTES:
                raise _too_large()
            if size == 0:
                # Trailers (rare) end with an empty line like the head does.
                if buffer[line_end + 2 : line_end + 4] == b"\r\n":
                    trailer_end = line_end + 4
                else:
                    found = buffer.find(b"\r\n\r\n", line_end)
                    if found < 0:
                        if len(buffer) - line_end > MAX_HEAD_BYTES:
                            raise _malformed(f"trailers over {MAX_HEAD_BYTES // 1024} KiB")
                        return None
                    trailer_end = found + 4
                if len(buffer) > trailer_end:
                    self.keep_alive = False
                return self._status, bytes(body), self._retry_after
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                return None
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise _malformed("a chunk longer than its size")
            body += buffer[line_end + 2 : data_end]
            del buffer[: data_end + 2]  # what is decoded is not kept twice


def _end_of_head(buffer: bytearray, start: int) -> tuple[int, int]:
    """Where the head ends (before its empty line) and the body starts; -1 if not yet."""
    crlf = buffer.find(b"\n\r\n", start)
    lf = buffer.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buffer))
    if lf >= 0:
        return lf, lf + 2
    return (crlf, crlf + 3) if crlf >= 0 else (-1, -1)


# Headers whose repeated lines form one comma-separated list.
_LISTS = (b"transfer-encoding", b"connection")


def _headers(lines: list[bytes]) -> dict[bytes, bytes]:
    """Header lines by lower-cased name."""
    if len(lines) > MAX_HEADERS:
        raise _malformed(f"more than {MAX_HEADERS} header lines")
    headers: dict[bytes, bytes] = {}
    key = b""
    for line in lines:
        if line[:1] in (b" ", b"\t") and key:
            # An obsolete folded line continues the previous header (RFC 9112, 5.2).
            headers[key] = (headers[key] + b" " + line.strip()).strip()
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise _malformed("a header line without a name")
        key = name.lower()
        value = value.strip()
        if key not in headers:
            headers[key] = value
        elif key in _LISTS:  # a list may be split over several lines
            headers[key] += b"," + value
        elif key == b"content-length" and headers[key] != value:
            raise _malformed("two different Content-Length headers")
    return headers


def _status_of(line: bytes) -> int:
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if (
        not version.startswith(b"HTTP/1.")
        or len(code) != 3
        or not code.isdigit()
        or rest[3:4] not in (b"", b" ")
    ):
        raise _malformed(f"status line {line[:60]!r}")
    return int(code)
