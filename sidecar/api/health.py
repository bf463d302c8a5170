"""``GET /_sidecar/health``: the sidecar itself and whether Elasticsearch answers."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..errors import EsError
from ..proxy import Upstream
from .render import json_response


async def health_handler(request: web.Request) -> web.Response:
    upstream: Upstream = request.app["upstream"]
    es: dict = {"url": upstream.base_url, "reachable": False}
    try:
        resp = await upstream.request("GET", "/_cluster/health", timeout=5)
        try:
            body = await resp.read()
        finally:
            resp.release()
        es["reachable"] = True
        es["http_status"] = resp.status
        if resp.status == 200:
            es["status"] = orjson.loads(body).get("status")
    except EsError as exc:
        es["error"] = exc.reason
    healthy = es["reachable"] and es.get("status") in ("green", "yellow")
    body = {"status": "ok" if healthy else "degraded", "sidecar": "ok", "elasticsearch": es}
    return json_response(body, status=200 if healthy else 503, request=request)
