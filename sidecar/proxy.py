"""Streaming reverse proxy to Elasticsearch for every request the sidecar does not handle.

Bodies are streamed both ways (a bulk of hundreds of MB is never held in memory), response
bytes are passed through untouched (compressed responses stay compressed), hop-by-hop
headers are dropped per RFC 9110 §7.6.1, and connections to Elasticsearch are pooled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .api.keys import UPSTREAM
from .es.upstream import Upstream, end_to_end_headers

log = logging.getLogger("sidecar.proxy")

CHUNK = 256 * 1024
# Bodies up to this size are sent in one piece (headers and body in a single write, with a
# Content-Length); larger ones, or ones still arriving, are streamed.
SMALL_BODY = 64 * 1024


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


async def _body_stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


async def request_body(request: web.Request) -> bytes | AsyncIterator[bytes] | None:
    """The body to forward: bodies already read and small bodies of known length as bytes (one
    write upstream, with a Content-Length), anything else streamed."""
    if not request.body_exists:
        return None
    length = request.content_length
    if request.content.at_eof() or (
            length is not None and length <= SMALL_BODY and not request.headers.get("Content-Encoding")):
        # All of it has arrived, or the fence has read it already (``read()`` has it cached).
        return await request.read()
    return _body_stream(request)


class ElasticsearchResponse(web.Response):
    """A response that is Elasticsearch's own answer (status, headers and bytes), copied to the
    client untouched."""


class ElasticsearchStream(web.StreamResponse):
    """:class:`ElasticsearchResponse`, streamed."""


# Responses of requests the sidecar handed to Elasticsearch without changing anything.
PASSED_THROUGH = (ElasticsearchResponse, ElasticsearchStream)


async def _read_small(upstream: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """Read the start of an upstream body: ``(bytes, complete)``; stops once more than
    :data:`SMALL_BODY` bytes have arrived without the end."""
    length = upstream.content_length
    if length is not None:
        if length > SMALL_BODY:
            return b"", False
        return await upstream.content.read(), True
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
        return ElasticsearchResponse(body=head, status=upstream.status, reason=upstream.reason, headers=headers)
    response = ElasticsearchStream(status=upstream.status, reason=upstream.reason, headers=headers)
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
