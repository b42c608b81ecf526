"""What each request carries, seen by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from importer.edges.transport import HttpTransport


async def headers_seen(requests: int) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(dict(request.headers))
        return web.Response(text='{"status": "ok"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"http://127.0.0.1:{port}/"
        async with HttpTransport(url, "app", "key", 2, 10.0) as transport:
            for _ in range(requests):
                assert (await transport.send(b"{}")).status == 200
    finally:
        await runner.cleanup()
    return seen


@pytest.mark.e2e
def test_requests_carry_the_credentials_and_ask_for_no_compressed_answer() -> None:
    seen = asyncio.run(headers_seen(3))
    assert len(seen) == 3
    for headers in seen:
        assert headers["X-Application-Id"] == "app" and headers["X-API-Key"] == "key"
        assert headers["Content-Type"] == "application/json"
        # Answers are never decompressed: a compressed one would be unreadable.
        assert "Accept-Encoding" not in headers
