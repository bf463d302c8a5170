"""``GET /_sidecar/health``: the sidecar itself and whether Elasticsearch answers."""

from __future__ import annotations

from aiohttp import web
from elasticsearch import ApiError, TransportError

from ..errors import EsError
from ..es.upstream import Upstream
from .keys import ES, UPSTREAM
from .render import json_response


async def health_handler(request: web.Request) -> web.Response:
    upstream: Upstream = request.app[UPSTREAM]
    es: dict = {"url": upstream.base_url, "reachable": False}
    try:
        # With the sidecar's own credentials: callers' may be absent or limited.
        health = await request.app[ES].cluster.health(request_timeout=5)
        es["reachable"] = True
        es["http_status"] = 200
        es["status"] = health.get("status")
    except ApiError as exc:
        es["reachable"] = True
        es["http_status"] = exc.meta.status
        es["error"] = str(exc.message)
    except (TransportError, EsError) as exc:
        es["error"] = getattr(exc, "reason", None) or str(exc)
    healthy = es["reachable"] and es.get("status") in ("green", "yellow")
    body = {"status": "ok" if healthy else "degraded", "sidecar": "ok", "elasticsearch": es}
    return json_response(body, status=200 if healthy else 503, request=request)
