"""HTTP routes of the Inference API (``/_inference/...``). Handlers only translate; the work is
in :mod:`sidecar.endpoints.manager`. The trained model API, ``_stats`` included, is
:mod:`sidecar.api.trained_models`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..endpoints.manager import InferenceEndpoints
from ..endpoints.timevalue import parse_time_value
from ..errors import EsError
from .keys import ENDPOINTS
from .render import json_response, query_flag, read_json

log = logging.getLogger("sidecar.api")


def _endpoints(request: web.Request) -> InferenceEndpoints:
    return request.app[ENDPOINTS]


def _timeout(request: web.Request, default: float | None) -> float | None:
    return parse_time_value(request.query.get("timeout"), "timeout", default)


def _ids(request: web.Request) -> tuple[str | None, str]:
    """(task_type or None, inference_id) from the matched path."""
    info = request.match_info
    if "task_type" in info:
        return info["task_type"], info["inference_id"]
    return None, info["inference_id"]


async def list_endpoints(request: web.Request) -> web.Response:
    task_type = request.match_info.get("task_type")
    return json_response(await _endpoints(request).get(None, task_type), request=request)


async def get_endpoint(request: web.Request) -> web.Response:
    task_type, inference_id = _ids(request)
    return json_response(await _endpoints(request).get(inference_id, task_type), request=request)


async def put_endpoint(request: web.Request) -> web.Response:
    task_type, inference_id = _ids(request)
    body = await read_json(request)
    manager = _endpoints(request)
    created = await manager.create(
        inference_id, task_type, body, timeout_s=_timeout(request, manager.default_timeout_s)
    )
    return json_response(created, request=request)


async def update_endpoint(request: web.Request) -> web.Response:
    task_type, inference_id = _ids(request)
    body = await read_json(request, required=False)
    return json_response(await _endpoints(request).update(inference_id, task_type, body), request=request)


async def delete_endpoint(request: web.Request) -> web.Response:
    task_type, inference_id = _ids(request)
    result = await _endpoints(request).delete(
        inference_id, task_type, dry_run=query_flag(request, "dry_run"), force=query_flag(request, "force")
    )
    return json_response(result, request=request)


async def perform(request: web.Request) -> web.Response:
    task_type, inference_id = _ids(request)
    body = await read_json(request)
    manager = _endpoints(request)
    default = manager.default_timeout_s
    if isinstance(body, dict) and isinstance(body.get("timeout"), str):
        default = parse_time_value(body["timeout"], "timeout", default)
    result = await manager.infer(inference_id, task_type, body, timeout_s=_timeout(request, default))
    return json_response(result, request=request)


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events as Elasticsearch writes them. Errors before the first event keep
    their HTTP status; later ones become an ``error`` event. A client that goes away closes
    the provider's stream."""
    from ..protocol import sse

    task_type, inference_id = _ids(request)
    body = await read_json(request)
    manager = _endpoints(request)
    events = await manager.open_stream(
        inference_id, task_type, body, timeout_s=_timeout(request, manager.default_timeout_s)
    )
    iterator = events.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(
        status=200, headers={"Content-Type": sse.CONTENT_TYPE, "X-elastic-product": "Elasticsearch",
                             "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(sse.render_event(first))
            async for event in iterator:
                await response.write(sse.render_event(event))
        await response.write(sse.DONE)
    except EsError as err:
        await response.write(sse.render_error(err))
    except (ConnectionResetError, asyncio.CancelledError):
        log.info("stream client went away", extra={"fields": {"inference_id": inference_id}})
        raise
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
    await response.write_eof()
    return response


async def services_catalogue(request: web.Request) -> web.Response:
    task_type = request.match_info.get("task_type")
    return json_response(await _endpoints(request).services_catalogue(task_type), request=request)
