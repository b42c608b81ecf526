"""An endpoint that costs (almost) nothing, for the zero-latency pacing target.

The target reads "a local endpoint that costs nothing, e.g. nginx ``return 200``": the
sandbox is a real application (it checks credentials, parses and stores every
message) and spends about as much CPU per request as the importer does, on the same
two cores. This answers every POST with the same 200 at once, reading only enough of
the request to find where it ends, like nginx's ``return 200``, and needs nothing
installed. ``GET /_sandbox/stats`` answers its counters in the sandbox's shape, so the
benchmark reads both the same way.

    python -m benchmarks.null_endpoint [--port 0]   # prints "null endpoint listening on URL"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal

READY_PREFIX = "null endpoint listening on "
_BODY = b'{"status":"ok"}'
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
    len(_BODY),
    _BODY,
)


class _Counters:
    requests = 0


class _Answering(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        answers: list[bytes] = []
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            answers.append(_stats() if head.startswith(b"get ") else _OK)
            if not head.startswith(b"get "):
                _Counters.requests += 1
            buffer = buffer[end + 4 + length :]
        self._buffer = buffer
        if answers and self._transport is not None:
            self._transport.write(b"".join(answers))


def _stats() -> bytes:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    body = json.dumps({
        "requests": _Counters.requests,
        "responses_by_status": {"200": _Counters.requests},
        "latency_ms": {"p50": 0.0},  # every answer goes out as soon as its request is read
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }).encode()  # fmt: skip
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answering, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"{READY_PREFIX}http://127.0.0.1:{bound}/", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
