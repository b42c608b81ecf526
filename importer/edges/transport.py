"""HTTP to Metrix with aiohttp: one keep-alive session, bounded connections, timeouts.

The only module that imports aiohttp's client. It sends bytes and reports what came
back; deciding what that means is importer.core.delivery's job.

Every request is bounded, whatever the server does: one deadline for the whole exchange
(connect, send, headers and body), at most ``MAX_ANSWER_BYTES`` of answer and
``MAX_HEADERS`` header lines of at most ``MAX_HEADER_LINE`` bytes each. Redirects are
never followed: the API key and the customer data go to the endpoint named and nowhere
else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from importer.core.delivery import mask, shorten
from importer.core.hosts import is_loopback
from importer.errors import EndpointError, RedirectRefused, TransportError

# Metrix answers are a few hundred bytes; anything far larger is not Metrix talking.
MAX_ANSWER_BYTES = 64 * 1024
MAX_HEADER_LINE = 8190  # bytes in the status line or one header (aiohttp's default)
MAX_HEADERS = 128  # header lines in one answer (aiohttp's default; CDNs add a few dozen)


@dataclass(frozen=True, slots=True)
class Response:
    """What the endpoint answered."""

    status: int
    text: str = ""
    retry_after: str | None = None


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
    if parts.scheme == "http" and not (allow_insecure or is_loopback(parts.hostname)):
        raise EndpointError(
            f"refusing to send customer data over plain http to {parts.hostname}: use https, "
            "or pass --allow-insecure if this is really what you want"
        )
    return url


class HttpTransport:
    """aiohttp client; use as ``async with HttpTransport(...) as transport``."""

    def __init__(
        self, endpoint: str, app_id: str, api_key: str, concurrency: int, timeout: float
    ) -> None:
        self.endpoint = endpoint
        self._url = URL(endpoint)  # parsed once, not on every request
        self._headers = {
            "X-Application-Id": app_id,
            "X-API-Key": api_key,
            "Content-Type": "application/json",
        }
        self._concurrency = concurrency
        self._api_key = api_key
        # ``total`` covers the whole exchange, body included: a server that drips an
        # answer a byte at a time is cut off like one that never answers.
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTransport:
        connector = aiohttp.TCPConnector(limit=self._concurrency, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=self._headers,
            auto_decompress=False,
            # Answers are never decompressed, so none is asked for compressed; the
            # header is also one less to build per request.
            skip_auto_headers=("Accept-Encoding",),
            max_line_size=MAX_HEADER_LINE,
            max_field_size=MAX_HEADER_LINE,
            max_headers=MAX_HEADERS,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, body: bytes) -> Response:
        assert self._session is not None, "use HttpTransport as an async context manager"
        try:
            async with self._session.post(self._url, data=body, allow_redirects=False) as response:
                status = response.status
                if 300 <= status < 400:
                    location = mask(response.headers.get("Location", ""), self._api_key)
                    raise RedirectRefused(self.endpoint, status, shorten(location))
                length = response.content_length
                if length is not None and length <= MAX_ANSWER_BYTES:
                    raw = await response.read()  # the common case: one read, nothing to count
                else:
                    raw = await _read_bounded(response, length)
                if 200 <= status < 300:
                    return Response(status)
                return Response(
                    status,
                    raw[:2000].decode("utf-8", "replace"),
                    response.headers.get("Retry-After"),
                )
        except TimeoutError:
            raise TransportError("timeout") from None
        except aiohttp.ServerDisconnectedError:
            raise TransportError("connection dropped") from None
        except aiohttp.ClientConnectorError as exc:
            raise TransportError("cannot connect", str(exc.os_error or exc)) from None
        except aiohttp.ClientResponseError as exc:  # e.g. headers over the limits
            raise TransportError("malformed answer", exc.message) from None
        except aiohttp.ClientError as exc:
            raise TransportError("connection error", type(exc).__name__) from None
        except OSError as exc:
            raise TransportError("connection error", exc.strerror or type(exc).__name__) from None


async def _read_bounded(response: aiohttp.ClientResponse, length: int | None) -> bytes:
    """An answer of unknown or excessive length: read up to ``MAX_ANSWER_BYTES``, then
    refuse it (the connection is closed rather than drained)."""
    if length is None:
        parts: list[bytes] = []
        size = 0
        async for part in response.content.iter_any():
            size += len(part)
            if size > MAX_ANSWER_BYTES:
                break
            parts.append(part)
        else:
            return b"".join(parts)
    response.close()
    raise TransportError(
        "answer too large",
        f"over {MAX_ANSWER_BYTES // 1024} KiB; Metrix answers are a few hundred bytes",
    )
