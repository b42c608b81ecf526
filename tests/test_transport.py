"""The HTTP client: how answers are read (units, as bytes arrive) and how connections
behave against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.edges import transport
from importer.edges.transport import (
    MAX_ANSWER_BYTES,
    HttpTransport,
    Response,
    _AnswerReader,
    _Connection,
    _Redirect,
    check_endpoint,
)
from importer.errors import EndpointError, RedirectRefused, TransportError
from tests.hostile import servers


def read(*pieces: bytes) -> tuple[tuple[int, bytes, str | None] | None, bool]:
    """Feed an answer in pieces: (the answer once complete, whether it may be reused)."""
    reader = _AnswerReader()
    result = None
    for piece in pieces:
        assert result is None, "bytes after the answer was complete"
        result = reader.feed(piece)
    return result, reader.keep_alive


def wire(*head: str, body: bytes = b"") -> bytes:
    """An answer's bytes: its status line and headers, then the body."""
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


OK = "HTTP/1.1 200 OK"
CHUNKED = "Transfer-Encoding: chunked"


@pytest.mark.parametrize(
    ("answer", "expected", "keep_alive"),
    [
        (wire(OK, "Content-Length: 2", body=b"{}"), (200, b"{}", None), True),
        (wire("HTTP/1.1 204 No Content"), (204, b"", None), True),
        (wire(OK, "Content-Length: 0", "Connection: close"), (200, b"", None), False),
        (wire("HTTP/1.0 200 OK", "Content-Length: 0"), (200, b"", None), False),
        (wire("HTTP/1.0 200 OK", "Connection: Keep-Alive", "Content-Length: 0"),
         (200, b"", None), True),
        (wire("HTTP/1.1 429 Too Many", "Retry-After: 7", "Content-Length: 4", body=b"slow"),
         (429, b"slow", "7"), True),
        (wire(OK, CHUNKED, body=b"2\r\n{}\r\n0\r\n\r\n"), (200, b"{}", None), True),
        # a list of codings ending in chunked, a chunk extension, a trailer
        (wire("HTTP/1.1 400 Bad", "transfer-encoding: gzip, chunked",
              body=b"3;ext=1\r\nbad\r\n2\r\n!!\r\n0\r\nX-Trailer: t\r\n\r\n"),
         (400, b"bad!!", None), True),
        (wire("HTTP/1.1 100 Continue") + wire("HTTP/1.1 201 OK", "Content-Length: 1", body=b"x"),
         (201, b"x", None), True),
        (wire("HTTP/1.1 200", "Content-Length: 1", body=b"x"), (200, b"x", None), True),
        (wire(OK, "Content-Length: 1", "Content-Length: 1", body=b"x"), (200, b"x", None), True),
        # both framings: chunked wins (RFC 9112 6.3) and the connection is not reused
        (wire(OK, "Content-Length: 9", CHUNKED, body=b"1\r\nx\r\n0\r\n\r\n"),
         (200, b"x", None), False),
        # lines ending in a bare LF (RFC 9112 2.2), with or without a CR elsewhere
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", (200, b"{}", None), True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\n{}", (200, b"{}", None), True),
        # an obsolete folded header line continues the one before (RFC 9112 5.2)
        (wire("HTTP/1.1 503 Busy", "Retry-After:", " 30", "Content-Length: 0"),
         (503, b"", "30"), True),
        # repeated Connection lines form one list
        (wire(OK, "Connection: keep-alive", "Connection: close", "Content-Length: 0"),
         (200, b"", None), False),
    ],
)  # fmt: skip
def test_answers_are_read_whole(
    answer: bytes,
    expected: tuple[int, bytes, str | None],
    keep_alive: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport._KNOWN_HEADS.clear()
    assert read(answer) == (expected, keep_alive)

    # The second time, its head is known: read the same, without being parsed again.
    def parse_again(*_: object) -> None:
        raise AssertionError("a known head was parsed again")

    monkeypatch.setattr(_AnswerReader, "_use_head", parse_again)
    assert read(answer) == (expected, keep_alive)


def test_an_answer_without_length_lasts_until_the_connection_ends() -> None:
    reader = _AnswerReader()
    assert reader.feed(b"HTTP/1.1 500 Oops\r\n\r\npart one, ") is None
    assert reader.feed(b"part two") is None
    assert reader.at_end() == (500, b"part one, part two", None)
    assert reader.keep_alive is False


def test_a_connection_ending_mid_answer_gives_no_answer() -> None:
    reader = _AnswerReader()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") is None
    assert reader.at_end() is None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"SMTP ready\r\n\r\n", "status line"),
        (wire("HTTP/1.1 2xx OK"), "status line"),
        (wire("HTTP/1.1 4000 Bad"), "status line"),
        (wire(OK, "no colon here"), "without a name"),
        (wire(OK, " : value"), "without a name"),
        (wire(OK, "Content-Length: 1", "Content-Length: 2"), "two different"),
        (wire(OK, "Content-Length: -1"), "Content-Length"),
        (wire(OK, "Content-Length: " + "9" * 5000), "Content-Length"),
        (wire(OK, CHUNKED, body=b"0x2\r\n{}\r\n0\r\n\r\n"), "chunk size"),
        (wire(OK, CHUNKED, body=b"+2\r\n{}\r\n0\r\n\r\n"), "chunk size"),
        (wire(OK, CHUNKED, body=b"1_0\r\n"), "chunk size"),
        (wire(OK, CHUNKED, body=b"1;" + b"x" * 60_000 + b"\r\n"), "size line too long"),
        (wire(OK, CHUNKED, body=b"zz\r\n"), "chunk size"),
        (wire(OK, CHUNKED, body=b"1\r\nabc\r\n"), "longer than its size"),
        (wire("HTTP/1.1 101 Switching"), "switched protocols"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200, "header lines"),
        (b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70_000, "headers over"),
    ],
)
def test_malformed_answers_are_refused(answer: bytes, problem: str) -> None:
    with pytest.raises(TransportError) as caught:
        read(answer)
    assert caught.value.kind == "malformed answer"
    assert problem in caught.value.detail


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_ANSWER_BYTES + 1),
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_ANSWER_BYTES + 1),
    ],
    ids=["declared", "chunked", "until-close"],
)
def test_answers_over_the_limit_are_refused_before_they_arrive(answer: bytes) -> None:
    with pytest.raises(TransportError) as caught:
        read(answer)
    assert caught.value.kind == "answer too large"


def test_the_header_limit_counts_header_lines_however_they_arrive() -> None:
    head = b"HTTP/1.1 204 No Content\r\n" + b"X-A: b\r\n" * 128
    assert read(head + b"\r\n") == ((204, b"", None), True)
    assert read(head, b"\r\n") == ((204, b"", None), True)


def test_decoded_chunks_are_not_kept_twice() -> None:
    # A body in thousands of tiny chunks, each with a long extension: what was decoded
    # leaves the buffer, so memory stays near the answer's own size.
    reader = _AnswerReader()
    reader.feed(wire(OK, CHUNKED))
    for _ in range(2000):
        assert reader.feed(b"1;" + b"e" * 900 + b"\r\nx\r\n") is None
        assert len(reader._buffer) < 2048
    assert reader.feed(b"0\r\n\r\n") == (200, b"x" * 2000, None)


def test_a_redirect_is_reported_with_its_location() -> None:
    with pytest.raises(_Redirect) as caught:
        read(b"HTTP/1.1 308 Moved\r\nLocation: https://elsewhere/\r\nContent-Length: 0\r\n\r\n")
    assert (caught.value.status, caught.value.location) == (308, "https://elsewhere/")


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, tuple[int, bytes, str | None]]:
    status = draw(st.sampled_from([200, 201, 400, 413, 429, 500, 503]))
    body = draw(st.binary(max_size=300))
    retry_after = draw(st.none() | st.sampled_from(["1", "120", "Wed, 21 Oct 2026 07:28:00 GMT"]))
    head = b"HTTP/1.1 %d Reason\r\nContent-Type: application/json\r\n" % status
    if retry_after is not None:
        head += b"Retry-After: " + retry_after.encode() + b"\r\n"
    if draw(st.booleans()):
        whole = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
        whole = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    return whole, (status, body, retry_after)


@given(answers(), st.lists(st.integers(min_value=1, max_value=50), max_size=40))
def test_an_answer_reads_the_same_however_its_bytes_are_split(
    answer: tuple[bytes, tuple[int, bytes, str | None]], sizes: list[int]
) -> None:
    whole, expected = answer
    pieces, start = [], 0
    for size in sizes:
        pieces.append(whole[start : start + size])
        start += size
    pieces.append(whole[start:])
    pieces = [piece for piece in pieces if piece]
    assert read(*pieces) == (expected, True)


# --- against real servers ------------------------------------------------------------


def send_all(
    url: str, bodies: int, *, timeout: float = 10.0, in_flight: int = 1, key: str = "key"
) -> list[Response]:
    async def go() -> list[Response]:
        async with HttpTransport(url, "app", key, in_flight, timeout) as transport:
            answers: list[Response] = []
            for start in range(0, bodies, in_flight):
                batch = range(start, min(bodies, start + in_flight))
                answers += await asyncio.gather(*(transport.send(b"{}") for _ in batch))
            return answers

    return asyncio.run(go())


Write = Callable[[asyncio.StreamWriter, servers.Server], Awaitable[None]]


def answering(data: bytes, close: bool = False) -> Write:
    async def answer(writer: asyncio.StreamWriter, server: servers.Server) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()
            raise OSError("closed after one answer")

    return answer


@pytest.mark.e2e
def test_connections_are_kept_alive_and_reused() -> None:
    connections: list[object] = []

    async def answer(writer: asyncio.StreamWriter, server: servers.Server) -> None:
        if writer not in connections:
            connections.append(writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    with servers.serve(answer) as server:
        assert [r.status for r in send_all(server.url, 12, in_flight=3)] == [200] * 12
    assert len(server.requests) == 12
    assert len(connections) == 3  # one per request in flight, each used four times


@pytest.mark.e2e
@pytest.mark.parametrize(
    "answer",
    [
        wire(OK, "Connection: close", "Content-Length: 2", body=b"{}"),
        wire("HTTP/1.0 200 OK", "Content-Length: 2", body=b"{}"),
        wire(OK, body=b"{}"),  # framed by the end of the connection
    ],
    ids=["connection-close", "http-1.0", "until-close"],
)
def test_a_server_that_closes_after_each_answer_gets_a_new_connection(answer: bytes) -> None:
    with servers.serve(answering(answer, close=True)) as server:
        assert [r.status for r in send_all(server.url, 5)] == [200] * 5
    assert len(server.requests) == 5


@pytest.mark.e2e
def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def answer(writer: asyncio.StreamWriter, server: servers.Server) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        # An idle timeout on the server's side: it closes after answering, without
        # saying so in the answer.
        await asyncio.sleep(0.05)
        writer.close()
        raise OSError("idle connection closed")

    async def go(url: str) -> list[int]:
        async with HttpTransport(url, "app", "key", 1, 10.0) as transport:
            statuses = []
            for _ in range(4):
                statuses.append((await transport.send(b"{}")).status)
                await asyncio.sleep(0.2)  # the server has closed it by now
            return statuses

    with servers.serve(answer) as server:
        assert asyncio.run(go(server.url)) == [200] * 4
    assert len(server.requests) == 4


@pytest.mark.e2e
def test_an_error_answer_keeps_its_text_and_retry_after() -> None:
    answer = wire("HTTP/1.1 429 Too Many", "Retry-After: 3", "Content-Length: 13",
                  body=b'{"e":"slow"}\n')  # fmt: skip
    with servers.serve(answering(answer)) as server:
        assert send_all(server.url, 1) == [Response(429, '{"e":"slow"}\n', "3")]


@pytest.mark.e2e
def test_a_silent_server_times_out_and_a_closed_port_cannot_connect() -> None:
    async def silent(writer: asyncio.StreamWriter, server: servers.Server) -> None:
        await asyncio.sleep(30)

    with servers.serve(silent) as server:
        with pytest.raises(TransportError) as caught:
            send_all(server.url, 1, timeout=0.3)
        assert caught.value.kind == "timeout"
        url = server.url
    with pytest.raises(TransportError) as refused:
        send_all(url, 1)
    assert refused.value.kind == "cannot connect"


@pytest.mark.e2e
def test_a_redirect_raises_with_the_key_masked() -> None:
    key = "secret-key-0123456789"
    answer = wire("HTTP/1.1 307 Elsewhere", f"Location: https://x.example/?k={key}",
                  "Content-Length: 0")  # fmt: skip
    with servers.serve(answering(answer)) as server, pytest.raises(RedirectRefused) as caught:
        send_all(server.url, 1, key=key)
    assert caught.value.location == "https://x.example/?k=****"


@pytest.mark.parametrize(
    ("endpoint", "start"),
    [
        ("https://h.example/", b"POST / HTTP/1.1\r\nHost: h.example\r\n"),
        ("https://h.example:443/in?app=1", b"POST /in?app=1 HTTP/1.1\r\nHost: h.example\r\n"),
        ("http://127.0.0.1:8080/a%20b", b"POST /a%20b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
        ("http://[::1]:8080", b"POST / HTTP/1.1\r\nHost: [::1]:8080\r\n"),
    ],
)
def test_the_request_head_names_the_endpoint(endpoint: str, start: bytes) -> None:
    assert HttpTransport(endpoint, "app", "key", 1, 1.0)._head.startswith(start)


def test_an_endpoint_with_a_password_in_it_is_refused_without_showing_it() -> None:
    with pytest.raises(EndpointError) as caught:
        check_endpoint("https://user:hunter22@entry.example/", allow_insecure=False)
    assert "hunter22" not in str(caught.value)
    assert "METRIX_API_KEY" in str(caught.value)


def test_a_new_connection_closed_before_its_request_fails_at_once() -> None:
    class Closed(asyncio.Transport):
        def is_closing(self) -> bool:
            return True

    async def go() -> None:
        connection = _Connection()
        connection.connection_made(Closed())
        with pytest.raises(TransportError) as caught:
            await connection.exchange(b"request", deadline=float("inf"))
        assert caught.value.kind == "connection dropped"

    asyncio.run(go())


@pytest.mark.e2e
def test_an_address_that_does_not_answer_is_passed_over_for_the_next() -> None:
    # A name with two addresses, the first dropping connection attempts (its accept
    # queue is full), as a broken IPv6 route does: the second is tried after 250 ms
    # instead of the whole deadline going to the first.
    async def go(url: str) -> list[int]:
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(hole.getsockname())
            fillers.append(filler)
        good = ("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def two_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "two.test":
                return await real(host, port, *args, **kwargs)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", hole.getsockname()),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", good)]  # fmt: skip

        loop.getaddrinfo = two_addresses  # type: ignore[method-assign]
        try:
            async with HttpTransport("http://two.test/", "app", "key", 1, 5.0) as transport:
                return [(await transport.send(b"{}")).status for _ in range(2)]
        finally:
            for sock in (hole, *fillers):
                sock.close()

    with servers.serve(answering(wire(OK, "Content-Length: 2", body=b"{}"))) as server:
        assert asyncio.run(go(server.url)) == [200, 200]


def test_only_small_heads_are_remembered() -> None:
    transport._KNOWN_HEADS.clear()
    padded = wire(OK, "X-Padding: " + "x" * 5000, "Content-Length: 0")
    assert read(padded) == ((200, b"", None), True)
    assert not transport._KNOWN_HEADS  # a CDN's 5 KB of headers is not kept
    assert read(wire(OK, "Content-Length: 0")) == ((200, b"", None), True)
    assert len(transport._KNOWN_HEADS) == 1
