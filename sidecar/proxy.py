"""Streaming reverse proxy to Elasticsearch for every request the sidecar does not handle.

Bodies are streamed both ways (a bulk of hundreds of MB is never held in memory), response
bytes are passed through untouched (compressed responses stay compressed), hop-by-hop
headers are dropped per RFC 9110 §7.6.1, and connections to Elasticsearch are pooled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .api.keys import UPSTREAM
from .errors import EsError, unavailable

log = logging.getLogger("sidecar.proxy")

# RFC 9110 §7.6.1 hop-by-hop fields, plus the de-facto ones proxies also strip.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
CHUNK = 256 * 1024
# Bodies up to this size are sent in one piece (headers and body in a single write, with a
# Content-Length); larger ones, or ones still arriving, are streamed.
SMALL_BODY = 64 * 1024


def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", []) if hasattr(headers, "getall") else [headers.get("Connection", "")]:
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def end_to_end_headers(headers: Mapping[str, str], drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """Copy headers without hop-by-hop fields (and those named in ``Connection``)."""
    skip = HOP_BY_HOP | _connection_tokens(headers) | {d.lower() for d in drop}
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in skip:
            out.add(key, value)
    return out


class Upstream:
    """A pooled HTTP client to Elasticsearch used by the proxy and by sidecar handlers that
    must talk to Elasticsearch with the caller's own credentials."""

    def __init__(self, base_url: str, *, ssl: Any = None, limit: int = 256) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl = ssl
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, raw_path: str) -> str:
        return self.base_url + raw_path

    async def request(
        self,
        method: str,
        raw_path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        timeout: float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request to Elasticsearch; connection failures become ES-shaped 503s."""
        try:
            return await self.session.request(
                method,
                self.url(raw_path),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10) if timeout else None,
            )
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise es_unreachable(exc) from exc


def es_unreachable(exc: BaseException) -> EsError:
    detail = str(exc) or type(exc).__name__
    return unavailable(f"Elasticsearch is unavailable: {detail}")


def forwarded_request_headers(request: web.Request) -> CIMultiDict[str]:
    """Headers to send upstream for a client request.

    aiohttp decompresses request bodies it receives, so a compressed request is forwarded
    decompressed: ``Content-Encoding`` and ``Content-Length`` are dropped with it.
    """
    drop = {"Host"}
    if request.headers.get("Content-Encoding"):
        drop |= {"Content-Encoding", "Content-Length"}
    headers = end_to_end_headers(request.headers, drop)
    forwarded = request.headers.get("X-Forwarded-For")
    peer = request.remote or ""
    headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
    return headers


def body_content_type(headers: Mapping[str, str], ndjson: bool = False) -> str:
    """The Content-Type for a body the sidecar sends on a caller's behalf. Elasticsearch
    requires it to agree with a ``compatible-with`` Accept header (as the official clients send)."""
    accept = headers.get("Accept", "")
    kind = "x-ndjson" if ndjson else "json"
    if "compatible-with=" in accept:
        version = accept.split("compatible-with=")[-1].split(";")[0].split(",")[0].strip()
        return f"application/vnd.elasticsearch+{kind}; compatible-with={version}"
    return f"application/{kind}"


async def _body_stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def request_body(request: web.Request) -> bytes | AsyncIterator[bytes] | None:
    """The body to forward: small bodies of known length as bytes (one write upstream, with a
    Content-Length), anything else streamed."""
    if not request.body_exists:
        return None
    length = request.content_length
    if length is not None and length <= SMALL_BODY and not request.headers.get("Content-Encoding"):
        return await request.read()
    return _body_stream(request)


async def _read_small(upstream: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """Read the start of an upstream body: ``(bytes, complete)``; stops once more than
    :data:`SMALL_BODY` bytes have arrived without the end."""
    length = upstream.content_length
    if length is not None and length > SMALL_BODY:
        return b"", False
    parts: list[bytes] = []
    size = 0
    while size <= SMALL_BODY:
        chunk = await upstream.content.readany()
        if not chunk:
            return b"".join(parts), True
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts), False


async def stream_response(
    request: web.Request, upstream: aiohttp.ClientResponse, *, extra_headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """Copy an upstream response to the client: small bodies in one write, large ones streamed."""
    headers = end_to_end_headers(upstream.headers)
    if extra_headers:
        headers.update(extra_headers)
    if request.method == "HEAD":
        head, complete = b"", True
    else:
        head, complete = await _read_small(upstream)
    if complete:
        if request.method != "HEAD":
            headers.popall("Content-Length", None)
        # The bytes are passed as they came (a compressed body stays compressed).
        return web.Response(body=head, status=upstream.status, reason=upstream.reason, headers=headers)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    if "Content-Length" in headers:
        response.content_length = int(headers["Content-Length"])
    await response.prepare(request)
    await response.write(head)
    async for chunk in upstream.content.iter_chunked(CHUNK):
        await response.write(chunk)
    await response.write_eof()
    return response


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    upstream_client: Upstream = request.app[UPSTREAM]
    upstream = await upstream_client.request(
        request.method,
        request.raw_path,
        headers=forwarded_request_headers(request),
        data=await request_body(request),
    )
    try:
        return await stream_response(request, upstream)
    finally:
        upstream.release()
