"""Requests to Elasticsearch with the caller's own headers, so its security applies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from multidict import CIMultiDict

from ...errors import EsError
from ...es.upstream import Upstream, body_content_type

_BODY_HEADERS = ("Content-Length", "Content-Encoding", "Transfer-Encoding", "Accept-Encoding", "Content-Type")


class UpstreamError(EsError):
    """An error answer from Elasticsearch, passed on unchanged."""

    def __init__(self, status: int, body: Any) -> None:
        reason = body.get("error", {}).get("reason", "") if isinstance(body, dict) and isinstance(
            body.get("error"), dict) else str(body)
        super().__init__(status, "upstream_error", reason)
        self.body = body

    def to_body(self) -> Any:
        return self.body


@dataclass
class Answer:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)
    # ``filter_path`` still to apply (the search needed the full response first).
    filter_path: str | None = None

    def ok(self) -> Any:
        if self.status >= 300:
            raise UpstreamError(self.status, self.body)
        return self.body


class Caller:
    """Requests to Elasticsearch on behalf of one client request (its headers, its rights)."""

    def __init__(self, upstream: Upstream, headers: Mapping[str, str]) -> None:
        self.upstream = upstream
        self.headers: CIMultiDict[str] = CIMultiDict(headers)
        for name in _BODY_HEADERS:
            self.headers.popall(name, None)
        self.warnings: list[str] = []

    async def send(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                   *, ndjson: bool = False) -> Answer:
        headers = self.headers.copy()
        data = None
        if body is not None:
            data = b"".join(orjson.dumps(line) + b"\n" for line in body) if ndjson else orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = body_content_type(headers, ndjson=ndjson)
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
        try:
            parsed = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            parsed = {"error": payload.decode(errors="replace")}
        return Answer(resp.status, parsed, warnings)


def index_path(index: str | None, endpoint: str) -> str:
    return f"/{quote(index, safe=',*:')}/{endpoint}" if index else f"/{endpoint}"
