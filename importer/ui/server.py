"""``metrix-import ui``: the local web page (aiohttp), its routes and its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from aiohttp import BodyPartReader, web

from importer.ui import engine_bridge as bridge
from importer.ui import pages
from importer.ui.mapping_doc import edit
from importer.ui.security import Guard, Handler, new_token, secure_headers
from importer.ui.workspace import Workspace

REPORT_CSP = (
    "default-src 'none'; style-src '{hash}'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
WORKSPACE: web.AppKey[Workspace] = web.AppKey("workspace", Workspace)
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)


@dataclass(frozen=True)
class UiConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    allow_remote: bool = False
    open_browser: bool = True
    max_upload: int = 2 * 1024**3
    runs_dir: Path = Path("metrix-import-runs")


@web.middleware
async def friendly_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug shows as a short message, never a traceback (METRIX_DEBUG=1 shows it)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        if os.environ.get("METRIX_DEBUG"):
            raise
        text = (
            f"internal error ({type(exc).__name__}: {exc}). This is a bug in metrix-importer; "
            "run `metrix-import ui` again with METRIX_DEBUG=1 to see the details and please "
            "report them.\n"
        )
        print(f"error: {text}", file=sys.stderr, end="")
        return web.Response(status=500, text=text, content_type="text/plain")


def make_app(ws: Workspace, guard: Guard) -> web.Application:
    app = web.Application(middlewares=[guard.middleware, friendly_errors], client_max_size=1024**2)
    app[WORKSPACE] = ws
    app[CLOSING] = asyncio.Event()

    async def closing(app: web.Application) -> None:
        app[CLOSING].set()  # open event streams end, so shutdown need not wait for them

    app.on_shutdown.append(closing)
    app.on_response_prepare.append(secure_headers)
    app.add_routes([
        web.get("/", index),
        web.post("/open", open_file),
        web.post("/settings", settings),
        web.post("/mapping", mapping),
        web.post("/mapping/load", load_mapping),
        web.get("/mapping.yaml", download_mapping),
        web.post("/preview", preview),
        web.post("/run", start_run),
        web.post("/run/stop", stop_run),
        web.get("/run/report", report),
        web.get("/validation/report", validation_report),
        web.get("/run/failures.csv", failures),
        web.get("/events", events),
        web.get("/api/status", status),
        web.get("/static/{name}", static),
    ])  # fmt: skip
    return app


def _ws(request: web.Request) -> Workspace:
    return request.app[WORKSPACE]


def _back(anchor: str = "") -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/" + (f"#{anchor}" if anchor else ""))


async def index(request: web.Request) -> web.Response:
    return web.Response(text=pages.page(_ws(request)), content_type="text/html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    suffix = Path(name).suffix
    if not re.fullmatch(r"[a-z]+\.(js|css|svg)", name):
        raise web.HTTPNotFound()
    data = resources.files("importer.ui").joinpath("static", name).read_bytes()
    return web.Response(body=data, content_type=STATIC_TYPES[suffix], charset="utf-8")


async def _attempt(ws: Workspace, work: Callable[[], Any]) -> None:
    """Run blocking work off the loop; a problem becomes the page's error line."""
    try:
        await asyncio.to_thread(work)
    except bridge.ImporterError as exc:
        ws.error = str(exc)


async def open_file(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    reader = await request.multipart()
    path_text = ""
    saved: tuple[Path, str] | None = None
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file" and part.filename:
            saved = await _save_upload(ws, part)
            if saved is None:
                ws.error = (
                    f"The file is larger than the upload limit ({ws.max_upload:,} bytes, "
                    "--max-upload). Type its path instead: it is read where it is."
                )
                return _back("open")
        elif part.name == "path":
            path_text = (await part.text()).strip()
    if saved is not None:
        path, name = saved
        await _attempt(ws, lambda: ws.open(str(path), name, True, bridge.ReaderSettings()))
    elif path_text:
        given = str(Path(path_text).expanduser())
        await _attempt(ws, lambda: ws.open(given, given, False, bridge.ReaderSettings()))
    else:
        ws.error = "Choose a file, drop one on the page, or type a path."
    return _back("columns" if ws.table is not None and not ws.error else "open")


async def _save_upload(ws: Workspace, part: BodyPartReader) -> tuple[Path, str] | None:
    """Stream an upload into the private folder; None when it is over the limit."""
    name = Path(part.filename or "upload").name
    folder = ws.new_folder("upload")
    target = folder / (re.sub(r"[^\w.\-]+", "_", name).lstrip(".") or "upload")
    size = 0
    with open(target, "wb") as out:
        while chunk := await part.read_chunk(1024 * 1024):
            size += len(chunk)
            if size > ws.max_upload:
                out.close()
                target.unlink()
                return None
            await asyncio.to_thread(out.write, chunk)
    return target, name


async def settings(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    form = await request.post()
    table = ws.table
    if table is None:
        return _back("open")
    try:
        header_row = max(1, int(str(form.get("header_row", "1"))))
    except ValueError:
        header_row = 1
    sheet = form.get("sheet")
    new = bridge.ReaderSettings(
        encoding=str(form.get("encoding") or "auto").strip(),
        delimiter=str(form.get("delimiter") or "auto"),
        header_row=header_row,
        sheet=None if sheet is None else str(sheet),
    )
    await _attempt(ws, lambda: ws.open(table.path, table.name, ws.uploaded, new))
    return _back("open")


async def mapping(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    form = await request.post()
    doc = ws.doc
    if doc is None:
        return _back("open")
    for index, choice in enumerate(doc.columns):
        changes = {}
        for name in ("target", "key", "type", "format", "region"):
            value = form.get(f"{name}_{index}")
            if value is not None and str(value) != getattr(choice, name):
                changes[name] = str(value).strip()
        if changes:
            doc = edit(doc, choice.column, **changes)
    await _attempt(ws, lambda: ws.set_doc(doc))
    return _back("columns")


async def load_mapping(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    if ws.table is None:
        return _back("open")
    reader = await request.multipart()
    text, name = "", ""
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name == "mapping" and part.filename:
            data = await part.read(decode=False)
            if len(data) > 1024**2:
                ws.error = "That mapping file is over 1 MB; a mapping is a short YAML file."
                return _back("save")
            text, name = data.decode("utf-8", "replace"), Path(part.filename).name
    if not text:
        ws.error = "Choose a mapping file (YAML) to load."
        return _back("save")
    await _attempt(ws, lambda: ws.load_mapping(text, name))
    return _back("columns")


async def download_mapping(request: web.Request) -> web.Response:
    ws = _ws(request)
    return web.Response(
        text=ws.mapping_text,
        content_type="application/x-yaml",
        headers={"Content-Disposition": 'attachment; filename="mapping.yaml"'},
    )


async def preview(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    form = await request.post()
    table = ws.table
    try:
        row = int(str(form.get("row", "")))
    except ValueError:
        row = 0
    if table is None or row < 1 or ws.mapping_problem:
        ws.error = "Give a data row number (1 is the first row after the header)."
        return _back("preview")

    def work() -> None:
        mapped = bridge.parse(ws.mapping_text, "mapping.yaml")
        body, problem = bridge.preview_row(mapped, table.path, row)
        ws.picked = (row, body, problem)

    await _attempt(ws, work)
    return _back("preview")


async def start_run(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    form = await request.post()
    if ws.table is None:
        return _back("open")
    target = str(form.get("target", "sandbox"))
    creds = ws.credentials
    creds.endpoint = str(form.get("endpoint") or creds.endpoint).strip()
    creds.app_id = str(form.get("app_id") or "").strip()
    key = str(form.get("api_key") or "").strip()
    if key:
        creds.api_key = key
    where = "sandbox" if target == "sandbox" else "metrix"
    restart = form.get("restart") == "on"
    await _attempt(ws, lambda: ws.start_run(where, restart))
    return _back("run")


async def stop_run(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    if ws.run is not None and ws.run.running:
        ws.run.stop()
    return _back("run")


async def report(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    if ws.run is None or ws.run.running:
        raise web.HTTPNotFound(text="No finished import yet.")
    return _report(bridge.run_paths(ws.run.folder)["report"])


def _report(path: Path) -> web.Response:
    if not path.exists():
        raise web.HTTPNotFound(text="No report was written.")
    return web.Response(
        text=path.read_text(encoding="utf-8"),
        content_type="text/html",
        headers={"Content-Security-Policy": REPORT_CSP.format(hash=bridge.CSS_HASH)},
    )


async def validation_report(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    if ws.validation_summary() is None or ws.validation is None:
        raise web.HTTPNotFound(text="The whole file has not been checked yet.")
    return _report(ws.validation.folder / "report.html")


async def failures(request: web.Request) -> web.StreamResponse:
    ws = _ws(request)
    if ws.run is None or ws.run.running:
        raise web.HTTPNotFound(text="No finished import yet.")
    path = bridge.run_paths(ws.run.folder)["failures"]
    if not path.exists():
        raise web.HTTPNotFound(text="No row failed, so there is no failure file.")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="failures.csv"',
        },
    )


async def status(request: web.Request) -> web.Response:
    return web.json_response(_ws(request).live())


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the validation's and the import's progress, twice a second."""
    ws = _ws(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    closing = request.app[CLOSING]
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while not closing.is_set():
            data = json.dumps(ws.live(), ensure_ascii=False)
            await response.write(f"data: {data}\n\n".encode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), 0.5)
    return response


def serve(config: UiConfig, out: TextIO) -> None:
    """Run the page until Ctrl-C; print (and open) its URL with the token."""
    ws = Workspace(config.runs_dir.resolve(), config.max_upload)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
        sock.listen(128)  # before the URL is printed: a client may connect at once
    except OSError as exc:
        ws.close()
        raise bridge.ImporterError(
            f"cannot listen on {config.host}:{config.port} ({exc.strerror}); "
            "choose another --port (0 picks a free one)"
        ) from None
    port = sock.getsockname()[1]
    token = new_token()
    guard = Guard(token, port, host=config.host, allow_remote=config.allow_remote)
    app = make_app(ws, guard)

    async def cleanup(_: web.Application) -> None:
        await asyncio.to_thread(ws.close)

    app.on_cleanup.append(cleanup)
    shown = config.host if ":" not in config.host else f"[{config.host}]"
    if shown in ("0.0.0.0", "[::]"):
        shown = "127.0.0.1"
    url = f"http://{shown}:{port}/?token={token}"
    print(f"metrix-import ui: open {url}", file=out, flush=True)
    print(f"uploads and working files: {ws.private} (private, removed on exit)", file=out)
    print("Ctrl-C stops the page; a running import stops the Ctrl-C way first.", file=out,
          flush=True)  # fmt: skip
    if config.open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(url)
    try:
        web.run_app(app, sock=sock, print=None, handle_signals=True, shutdown_timeout=5)
    finally:
        ws.close()
