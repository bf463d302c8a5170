"""HTTP routes of the trained model API (``/_ml/trained_models/...``). Handlers only
translate; the work is in :mod:`sidecar.trained_models`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..endpoints.timevalue import parse_time_value
from ..errors import EsError
from ..trained_models import TrainedModels
from .keys import TRAINED_MODELS
from .render import json_response, query_flag, read_json

# Elasticsearch's defaults: _infer waits 10s, _start 30s (20s before 8.x minor releases).
INFER_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0


def _trained(request: web.Request) -> TrainedModels:
    return request.app[TRAINED_MODELS]


def _int(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise EsError(400, "illegal_argument_exception",
                      f"Failed to parse int parameter [{name}] with value [{value}]") from None


def _timeout(request: web.Request, default: float, body: Any = None) -> float:
    value = request.query.get("timeout")
    if value is None and isinstance(body, dict) and isinstance(body.get("timeout"), str):
        value = body["timeout"]
    seconds = parse_time_value(value, "timeout", default)
    return default if seconds is None else seconds


def _model_id(request: web.Request) -> str:
    return request.match_info.get("model_id", "_all")


async def put_model(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)
    result = await _trained(request).put(
        _model_id(request), body, wait_for_completion=query_flag(request, "wait_for_completion", False),
        timeout_s=_timeout(request, START_TIMEOUT_S))
    return json_response(result, request=request)


async def get_models(request: web.Request) -> web.Response:
    include = {p for p in request.query.get("include", "").split(",") if p}
    result = await _trained(request).get(
        _model_id(request), include=include, allow_no_match=query_flag(request, "allow_no_match", True),
        from_=_int(request, "from", 0), size=_int(request, "size", 100))
    return json_response(result, request=request)


async def delete_model(request: web.Request) -> web.Response:
    result = await _trained(request).delete(_model_id(request), force=query_flag(request, "force", False))
    return json_response(result, request=request)


async def put_definition_part(request: web.Request) -> web.Response:
    raw = request.match_info["part"]
    try:
        part = int(raw)
    except ValueError:
        raise EsError(400, "illegal_argument_exception",
                      f"Failed to parse int parameter [part] with value [{raw}]") from None
    body = await read_json(request)
    return json_response(await _trained(request).put_part(_model_id(request), part, body), request=request)


async def put_vocabulary(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response(await _trained(request).put_vocabulary(_model_id(request), body), request=request)


async def start_deployment(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)
    params: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    params.update({k: v for k, v in request.query.items() if k not in ("timeout", "pretty", "error_trace")})
    timeout_s = _timeout(request, START_TIMEOUT_S)
    return json_response(await _trained(request).start(_model_id(request), params, timeout_s=timeout_s),
                         request=request)


async def stop_deployment(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)
    force = query_flag(request, "force", bool(isinstance(body, dict) and body.get("force")))
    result = await _trained(request).stop(
        _model_id(request), force=force, allow_no_match=query_flag(request, "allow_no_match", True))
    return json_response(result, request=request)


async def update_deployment(request: web.Request) -> web.Response:
    body = await read_json(request, required=False) or {}
    params = dict(body)
    if "number_of_allocations" in request.query:
        params["number_of_allocations"] = _int(request, "number_of_allocations", 1)
    return json_response(await _trained(request).update(_model_id(request), params), request=request)


async def infer(request: web.Request) -> web.Response:
    body = await read_json(request)
    result = await _trained(request).infer(
        _model_id(request), body, timeout_s=_timeout(request, INFER_TIMEOUT_S, body))
    return json_response(result, request=request)


async def stats(request: web.Request) -> web.Response:
    result = await _trained(request).stats(
        _model_id(request), allow_no_match=query_flag(request, "allow_no_match", True))
    return json_response(result, request=request)
