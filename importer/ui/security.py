"""The page's guard: a per-process token, same-origin POSTs and strict response headers.

Like Jupyter: the URL the command prints carries a random token; the first request
with it sets a cookie and redirects to the same page without it, and from then on
every request must carry the cookie. Without it: 403, on every route. A POST must come
from the page itself (its Origin, and the browser's Sec-Fetch-Site, say so), so another
site open in the same browser can neither start an import nor read data. The Host
header must name this server (a DNS-rebinding page cannot pretend to be it).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD"})
FORBIDDEN = (
    "403 Forbidden: this page needs the token in the URL that `metrix-import ui` printed "
    "when it started. Open that URL again.\n"
)


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Guard:
    """The token, host and origin checks, as aiohttp middleware and a response hook."""

    def __init__(self, token: str, port: int, *, host: str, allow_remote: bool) -> None:
        self.token = token
        self.cookie = f"metrix_ui_{port}"  # cookies ignore ports: one name per server
        self.allow_remote = allow_remote
        names = {"127.0.0.1", "localhost", "[::1]", host if ":" not in host else f"[{host}]"}
        self.hosts = {f"{name}:{port}" for name in names}

    def _good(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value), self.token)

    def _host_ok(self, request: web.Request) -> bool:
        return self.allow_remote or request.host in self.hosts

    def _same_origin(self, request: web.Request) -> bool:
        # With Referrer-Policy: no-referrer a browser sends "Origin: null" for the page's
        # own form posts; then its Sec-Fetch-Site header must say same-origin. A client
        # that sends neither header (curl, a script) still needs the token cookie.
        origin = request.headers.get("Origin")
        site = request.headers.get("Sec-Fetch-Site")
        if origin == "null":
            return site == "same-origin"
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return False
        return site is None or site == "same-origin"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._host_ok(request):
            return _forbidden("403 Forbidden: unexpected Host header.\n")
        if self._good(request.query.get("token")):
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = (
                request.rel_url.with_query(query) if query else request.rel_url.with_query(None)
            )
            response = web.HTTPSeeOther(str(target))
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            return response
        if not self._good(request.cookies.get(self.cookie)):
            return _forbidden(FORBIDDEN)
        if request.method not in SAFE_METHODS and not self._same_origin(request):
            return _forbidden("403 Forbidden: a request from another site was refused.\n")
        return await handler(request)


def _forbidden(text: str) -> web.Response:
    return web.Response(status=403, text=text, content_type="text/plain")


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response: strict CSP (a handler may set a stricter one), no sniffing, no
    referrer, no caching of customer data."""
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
