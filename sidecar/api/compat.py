"""REST compatibility headers on the sidecar's own APIs, decided by the node behind it.

The official clients send ``Accept``/``Content-Type: application/vnd.elasticsearch+json;
compatible-with=N``. Elasticsearch 9 accepts N = 9 or 8, Elasticsearch 8 accepts 8 or 7, and a
request that breaks the rules gets a 400 ``media_type_header_exception`` whose wording differs
between versions. Requests passed through reach the node, which answers them itself; for the
requests the sidecar answers, the node is asked once per distinct pair of headers (a body-less
count on no index) and its refusal, if any, is returned verbatim. Rules are never re-implemented
here, so every node version answers exactly as it would.
"""

from __future__ import annotations

from collections import OrderedDict

import orjson
from aiohttp import web

from ..es.upstream import Upstream
from .render import PRODUCT_HEADER

_PROBE = "/sidecar-compat-probe-none/_count?ignore_unavailable=true&allow_no_indices=true"
_KEEP = 256  # distinct header pairs remembered; clients send very few


class MediaTypeCheck:
    """The node's verdict per (Accept, Content-Type) pair: ``None`` (accepted) or its answer."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._verdicts: OrderedDict[tuple[str, str], tuple[int, bytes] | None] = OrderedDict()

    async def refusal(self, accept: str, content_type: str, auth: dict[str, str]) -> tuple[int, bytes] | None:
        key = (accept, content_type)
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        headers = {**auth}
        if accept:
            headers["Accept"] = accept
        if content_type:
            headers["Content-Type"] = content_type
        resp = await self.upstream.request("POST", _PROBE, headers=headers, data=b"{}" if content_type else None)
        try:
            body = await resp.read()
        finally:
            resp.release()
        verdict = (resp.status, body) if resp.status == 400 and _is_media_type_error(body) else None
        if resp.status == 200 or verdict is not None:  # not a 401 or a 503: ask again next time
            self._verdicts[key] = verdict
            if len(self._verdicts) > _KEEP:
                self._verdicts.popitem(last=False)
        return verdict


def _is_media_type_error(body: bytes) -> bool:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(error, dict) and error.get("type") == "media_type_header_exception"


MEDIA_TYPE_CHECK = web.AppKey("media_type_check", MediaTypeCheck)


def asks_node(request: web.Request) -> bool:
    """Whether the request carries a ``compatible-with`` header the node must judge."""
    headers = request.headers
    return "compatible-with" in headers.get("Accept", "") or "compatible-with" in headers.get("Content-Type", "")


async def node_refusal(request: web.Request) -> web.Response | None:
    """The node's refusal of the request's ``compatible-with`` headers, or None."""
    accept = request.headers.get("Accept", "")
    content_type = request.headers.get("Content-Type", "")
    auth = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "es-secondary-authorization")}
    refused = await request.app[MEDIA_TYPE_CHECK].refusal(accept, content_type, auth)
    if refused is None:
        return None
    status, body = refused
    return web.Response(body=body, status=status, headers={**PRODUCT_HEADER, "Content-Type": "application/json"})
