"""Operations endpoints: ``GET /_sidecar/metrics`` (Prometheus), ``GET /_sidecar/live``
(the process answers) and ``GET /_sidecar/ready`` (Elasticsearch answers and the sidecar's
own indices can be used with its credentials: route traffic here)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from elasticsearch import ApiError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import TransportError as EsTransportError

from .. import metrics
from ..errors import EsError
from .keys import ENDPOINTS, ES
from .render import json_response

READY_TIMEOUT_S = 5.0


async def metrics_handler(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def live_handler(request: web.Request) -> web.Response:
    return json_response({"status": "ok"}, request=request)


def _failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        return {"ok": False, "http_status": exc.meta.status, "error": str(exc.error)}
    if isinstance(exc, EsError):
        return {"ok": False, "error": exc.reason}
    if isinstance(exc, TimeoutError):
        return {"ok": False, "error": "timed out"}
    if isinstance(exc, (EsConnectionError, EsTransportError)):
        return {"ok": False, "error": f"Elasticsearch is unavailable: {type(exc).__name__}"}
    return {"ok": False, "error": type(exc).__name__}


async def _elasticsearch(app: web.Application) -> dict[str, Any]:
    health = await app[ES].options(max_retries=0).cluster.health(timeout="2s")
    status = health.get("status")
    return {"ok": status in ("green", "yellow"), "status": status}


async def _indices(app: web.Application) -> dict[str, Any]:
    """The endpoint store's indices exist (created on first use) and answer a search made
    with the sidecar's own credentials."""
    store = app[ENDPOINTS].store
    await store.ensure_indices()
    es = app[ES].options(request_timeout=READY_TIMEOUT_S, max_retries=0)
    await es.search(index=[store.index, store.secrets_index], size=0, expand_wildcards="all")
    return {"ok": True, "names": [store.index, store.secrets_index]}


async def _check(probe, app: web.Application) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(probe(app), READY_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready", with its reason
        return _failure(exc)


async def ready_handler(request: web.Request) -> web.Response:
    app = request.app
    checks = {"elasticsearch": await _check(_elasticsearch, app)}
    if checks["elasticsearch"]["ok"]:
        checks["indices"] = await _check(_indices, app)
    else:
        checks["indices"] = {"ok": False, "error": "Elasticsearch is not available"}
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return json_response(body, status=200 if ready else 503, request=request)
