"""A tiny real HTTP server on 127.0.0.1 whose answers a test decides."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

# ``answer(body)`` gives the status and the body text, and optionally headers to add.
Answer = Callable[[dict[str, Any]], tuple[int, str] | tuple[int, str, dict[str, str]]]


@contextmanager
def stub_server(answer: Answer) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve POST / with ``answer(body)`` in a background thread; yields (url, bodies seen)."""
    received: list[dict[str, Any]] = []
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        received.append(body)
        status, text, *headers = answer(body)
        return web.Response(
            status=status,
            text=text,
            content_type="application/json",
            headers=headers[0] if headers else None,
        )

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        state["url"] = f"http://127.0.0.1:{port}/"
        state["stop"] = asyncio.Event()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "stub server did not start"
    try:
        yield state["url"], received
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        loop.close()
