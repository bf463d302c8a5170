"""Calls to Elasticsearch on behalf of one client request, with the client's own headers (its
credentials), so that Elasticsearch's own authorization applies to everything the sidecar
does for it. Usable after the request has ended: background work (a reindex task) keeps
acting with the rights of whoever started it.

This is the one caller-credential client; the sidecar's own credentials are
:func:`sidecar.es.client.sidecar_client`'s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from multidict import CIMultiDict

from .errors import UpstreamError
from .upstream import Upstream, body_content_type

# Headers describing the client's own body: never sent with a body the sidecar builds.
_BODY_HEADERS = ("Content-Length", "Content-Encoding", "Transfer-Encoding", "Accept-Encoding", "Content-Type")
# Response headers a handler passes back to its client.
_PASSED_BACK = ("x-opaque-id", "warning", "x-elastic-product")
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def index_path(index: str | None, endpoint: str) -> str:
    return f"/{quote(index, safe=',*:')}/{endpoint}" if index else f"/{endpoint}"


@dataclass
class Answer:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)
    # Response headers to pass back to the client (``X-Opaque-Id``, ``Warning``, product).
    headers: dict[str, str] = field(default_factory=dict)
    # ``filter_path`` still to apply (the search needed the full response first).
    filter_path: str | None = None

    def ok(self) -> Any:
        """The body of a successful answer; Elasticsearch's error, passed on, otherwise."""
        if self.status >= 300:
            raise UpstreamError(self.status, self.body)
        return self.body


class Caller:
    def __init__(self, upstream: Upstream, headers: Mapping[str, str]) -> None:
        self.upstream = upstream
        self.headers: CIMultiDict[str] = CIMultiDict(headers)
        for name in _BODY_HEADERS:
            self.headers.popall(name, None)
        # Every ``Warning`` Elasticsearch gave during this request, once each.
        self.warnings: list[str] = []

    async def send(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                   *, ndjson: bool = False, raw: bytes | None = None) -> Answer:
        """One call. ``body`` is JSON (with ``ndjson``: a list of lines); ``raw`` is a body
        already encoded as NDJSON. A body that is not JSON comes back as ``{"error": text}``."""
        headers = self.headers.copy()
        data = raw
        if data is None and body is not None:
            data = (b"".join(orjson.dumps(line, option=_JSON_OPTS) + b"\n" for line in body) if ndjson
                    else orjson.dumps(body, option=_JSON_OPTS))
        if data is not None:
            headers["Content-Type"] = body_content_type(headers, ndjson=ndjson or raw is not None)
        url = path + (f"?{urlencode(params)}" if params else "")
        resp = await self.upstream.request(method, url, headers=headers, data=data)
        try:
            payload = await resp.read()
        finally:
            resp.release()
        warnings = resp.headers.getall("Warning", [])
        for warning in warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
        passed = {k: v for k, v in resp.headers.items() if k.lower() in _PASSED_BACK}
        try:
            parsed = orjson.loads(payload) if payload.strip() else None
        except orjson.JSONDecodeError:
            parsed = {"error": payload.decode(errors="replace")}
        return Answer(resp.status, parsed, warnings, passed)

    async def json(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        """The body of a successful call; Elasticsearch's error is raised as :class:`UpstreamError`."""
        return (await self.send(method, path, body, params)).ok()
