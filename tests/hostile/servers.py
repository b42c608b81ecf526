"""Hostile HTTP servers on 127.0.0.1 for tests: they drip, flood or redirect.

Each is a raw asyncio server in a background thread, so the test decides every byte.
All are bounded: a server stops answering after ``max_requests`` requests, never keeps
one answer going longer than ``max_seconds``, and never writes more than ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Seen:
    """One request as the server received it: header names lower-cased, the raw body."""

    method: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A running server: its URL and every request it received."""

    url: str
    requests: list[Seen] = field(default_factory=list)
    bytes_written: int = 0


Answer = Callable[[asyncio.StreamWriter, Server], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> Seen:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(request_line.split(" ", 1)[0], headers, body)


@contextmanager
def serve(
    answer: Answer, max_requests: int = 50, tls: ssl.SSLContext | None = None
) -> Iterator[Server]:
    """Run a server whose every answer is ``answer(writer, server)``; yields the Server
    (over TLS with ``tls``). On exit, connections still open (a drip, a flood) are cut."""
    ready = threading.Event()
    server = Server(url="")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while len(server.requests) < max_requests:
                server.requests.append(await _read_request(reader))
                await answer(writer, server)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up: that is what the tests want it to do
        except asyncio.CancelledError:
            pass  # the test is over: cut the drip or flood
        finally:
            writer.close()
            handlers.discard(task)

    async def main() -> None:
        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        port = listener.sockets[0].getsockname()[1]
        server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
        ready.set()
        await stop.wait()
        listener.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the test server did not start"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


async def _write(writer: asyncio.StreamWriter, server: Server, data: bytes) -> None:
    writer.write(data)
    server.bytes_written += len(data)
    await writer.drain()


def dripping(part: str, interval: float = 0.1, max_seconds: float = 30.0) -> Answer:
    """Answer 200 one byte every ``interval`` seconds: the status line and headers when
    ``part`` is "headers", else the body after the headers at once."""
    body = b'{"ok": true}' + b" " * 500
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    whole = head + body

    async def answer(writer: asyncio.StreamWriter, server: Server) -> None:
        start = 0
        if part == "body":
            await _write(writer, server, head)
            start = len(head)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        for index in range(start, len(whole)):
            if loop.time() > deadline:
                raise OSError("dripped long enough")
            await _write(writer, server, whole[index : index + 1])
            await asyncio.sleep(interval)

    return answer


def flooding(declared: bool, max_bytes: int = 512 * 1024 * 1024) -> Answer:
    """Answer 200 with a body of up to ``max_bytes``: announced as 8 GiB by Content-Length
    when ``declared``, else chunked with no end in sight."""
    block = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(block), block)

    async def answer(writer: asyncio.StreamWriter, server: Server) -> None:
        framing = b"Content-Length: %d" % (8 << 30) if declared else b"Transfer-Encoding: chunked"
        await _write(writer, server, b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n\r\n")
        piece = block if declared else chunk
        written = 0
        while written < max_bytes:
            await _write(writer, server, piece)
            written += len(piece)
        raise OSError("flooded long enough")

    return answer


def endless_headers(max_bytes: int = 64 * 1024 * 1024) -> Answer:
    """Answer 200 followed by header after header, never ending the header block."""

    async def answer(writer: asyncio.StreamWriter, server: Server) -> None:
        await _write(writer, server, b"HTTP/1.1 200 OK\r\n")
        number = 0
        while server.bytes_written < max_bytes:
            number += 1
            await _write(writer, server, b"X-Pad-%d: %s\r\n" % (number, b"a" * 1000))
        raise OSError("sent headers long enough")

    return answer


def redirecting(status: int, location: str) -> Answer:
    """Answer every request with ``status`` and ``Location: location``."""

    async def answer(writer: asyncio.StreamWriter, server: Server) -> None:
        await _write(
            writer,
            server,
            b"HTTP/1.1 %d Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n"
            % (status, location.encode()),
        )

    return answer


def accepting() -> Answer:
    """Answer 200 with an empty JSON object: the place a redirect points to."""

    async def answer(writer: asyncio.StreamWriter, server: Server) -> None:
        await _write(writer, server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    return answer
