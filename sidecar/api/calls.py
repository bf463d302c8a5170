"""JSON calls to Elasticsearch made on a caller's behalf, with the caller's credentials, so
that Elasticsearch's own authorization applies to what the sidecar does for them."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from ..es.upstream import Upstream, body_content_type
from ..proxy import forwarded_request_headers
from .keys import UPSTREAM

_BODY_HEADERS = ("Content-Length", "Content-Encoding", "Transfer-Encoding", "Accept-Encoding", "Content-Type")
_PASSED_BACK = ("x-opaque-id", "warning", "x-elastic-product")


def caller_headers(request: web.Request) -> CIMultiDict[str]:
    """The caller's end-to-end headers without those describing its own body."""
    headers = forwarded_request_headers(request)
    for name in _BODY_HEADERS:
        headers.popall(name, None)
    return headers


class CallerClient:
    """Calls Elasticsearch with one caller's headers; usable after the request has ended
    (background tasks keep acting with the credentials of whoever started them)."""

    def __init__(self, upstream: Upstream, headers: CIMultiDict[str]) -> None:
        self.upstream = upstream
        self.headers = headers

    @classmethod
    def for_request(cls, request: web.Request) -> CallerClient:
        return cls(request.app[UPSTREAM], caller_headers(request))

    async def call(self, method: str, path: str, body: Any = None, *, ndjson: bytes | None = None
                   ) -> tuple[int, dict[str, str], Any]:
        headers = self.headers.copy()
        data = None
        if ndjson is not None:
            data = ndjson
            headers["Content-Type"] = body_content_type(headers, ndjson=True)
        elif body is not None:
            data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
            headers["Content-Type"] = body_content_type(headers)
        resp = await self.upstream.request(method, path, headers=headers, data=data)
        try:
            raw = await resp.read()
        finally:
            resp.release()
        passed = {k: v for k, v in resp.headers.items() if k.lower() in _PASSED_BACK}
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = raw.decode(errors="replace")
        return resp.status, passed, parsed
