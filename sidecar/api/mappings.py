"""Mapping requests that may carry ``semantic_text``: index creation, ``_mapping`` updates,
index/component/legacy templates, and the GETs that show mappings back to users."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..errors import EsError
from ..proxy import proxy_handler
from ..semantic import mappings as sem
from ..semantic.layout import META_KEY
from .calls import caller_for
from .keys import ENDPOINTS, NODE_VERSION, SEMANTIC_INDICES
from .render import json_response


async def _lookup_endpoint(app: web.Application, inference_id: str) -> dict[str, Any] | None:
    endpoint = await app[ENDPOINTS].lookup(inference_id)
    return endpoint.public() if endpoint is not None else None


async def forward_json(
    request: web.Request, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    """Send a request upstream with the caller's headers and return the parsed JSON answer."""
    answer = await caller_for(request).send(method, path, body)
    return answer.status, answer.headers, answer.body


def _reply(request: web.Request, status: int, headers: dict[str, str], body: Any) -> web.Response:
    return json_response(body, status=status, request=request, headers=headers)


async def _read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EsError(400, "x_content_parse_exception", f"[1:{exc.pos + 1}] {exc.msg}") from None


async def _translated(request: web.Request, mappings: Any, existing_meta: dict | None = None) -> Any:
    if not isinstance(mappings, dict):
        return mappings
    return await sem.to_elasticsearch(
        mappings, lambda i: _lookup_endpoint(request.app, i), existing_meta,
        features=await request.app[NODE_VERSION].features(),
    )


def _invalidate(request: web.Request) -> None:
    cache = request.app.get(SEMANTIC_INDICES)
    if cache is not None:
        cache.invalidate()


async def create_index(request: web.Request) -> web.StreamResponse:
    body = await _read_body(request)
    if not isinstance(body, dict) or not sem.has_semantic_text(body.get("mappings")):
        return await _forward_raw(request, body)
    body = dict(body)
    body["mappings"] = await _translated(request, body["mappings"])
    status, headers, answer = await forward_json(request, "PUT", request.raw_path, body)
    if status >= 400:
        answer = sem.user_error(answer, body["mappings"])
    _invalidate(request)
    return _reply(request, status, headers, answer)


async def _forward_raw(request: web.Request, body: Any) -> web.StreamResponse:
    status, headers, answer = await forward_json(request, request.method, request.raw_path, body)
    return _reply(request, status, headers, answer)


async def put_mapping(request: web.Request) -> web.StreamResponse:
    body = await _read_body(request)
    index = request.match_info["index"]
    status, _, current = await forward_json(
        request, "GET", f"/{index}/_mapping?filter_path=*.mappings._meta&expand_wildcards=open"
    )
    metas = {}
    if status == 200 and isinstance(current, dict):
        metas = {name: (v.get("mappings") or {}).get("_meta") for name, v in current.items()}
    with_sidecar = {name: meta for name, meta in metas.items() if meta and meta.get(META_KEY)}
    if not isinstance(body, dict) or (not with_sidecar and not sem.has_semantic_text(body)):
        return await _forward_raw(request, body)
    if len(with_sidecar) <= 1 and len(metas) <= 1:
        existing = next(iter(with_sidecar.values()), None)
        translated = await _translated(request, body, existing)
        status, headers, answer = await forward_json(request, request.method, request.raw_path, translated)
        if status >= 400:
            answer = sem.user_error(answer, translated)
        _invalidate(request)
        return _reply(request, status, headers, answer)
    # Several indices with their own semantic fields: update each with its own _meta.
    query = request.raw_path.partition("?")[2]
    result: tuple[int, dict, Any] = (200, {}, {"acknowledged": True})
    for name, meta in metas.items():
        translated = await _translated(request, body, meta)
        path = f"/{name}/_mapping" + (f"?{query}" if query else "")
        status, headers, answer = await forward_json(request, request.method, path, translated)
        if status >= 300:
            result = (status, headers, answer)
            break
    _invalidate(request)
    return _reply(request, *result)


async def put_template(request: web.Request) -> web.StreamResponse:
    body = await _read_body(request)
    if not isinstance(body, dict) or not sem.has_semantic_text(body):
        return await _forward_raw(request, body)
    body = dict(body)
    if "/_template/" in request.path:
        body["mappings"] = await _translated(request, body.get("mappings"))
    elif isinstance(body.get("template"), dict):
        template = dict(body["template"])
        template["mappings"] = await _translated(request, template.get("mappings"))
        body["template"] = template
    return await _forward_raw(request, body)


async def get_with_mappings(request: web.Request) -> web.StreamResponse:
    status, headers, answer = await forward_json(request, "GET", request.raw_path)
    if status == 200:
        answer = sem.rewrite_mapping_response(answer, request.query.get("include_defaults") == "true")
    return _reply(request, status, headers, answer)


async def get_index(request: web.Request) -> web.StreamResponse:
    if request.match_info["index"].startswith("_"):
        return await proxy_handler(request)
    return await get_with_mappings(request)
