"""Search routes: ``_search``, ``_msearch``, ``_async_search`` and the gets by id, parsed only
when the request mentions an inference query or reads an index with semantic_text fields;
everything else goes through to Elasticsearch byte for byte. The work is in
:mod:`sidecar.semantic.search`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from ..proxy import forwarded_request_headers, proxy_handler, stream_response
from ..semantic import field_caps as field_caps_view
from ..semantic.search import Answer, Caller, SemanticSearch
from .calls import caller_for
from .filter_path import filter_response
from .keys import SEARCH, UPSTREAM
from .render import json_response

INDEX = "{index:[^_/][^/]*}"


def _service(request: web.Request) -> SemanticSearch:
    return request.app[SEARCH]


async def _forward(request: web.Request, raw: bytes | None, path: str | None = None) -> web.StreamResponse:
    """The request as the client sent it (``raw`` is its body, already read)."""
    upstream = await request.app[UPSTREAM].request(
        request.method, path or request.raw_path, headers=forwarded_request_headers(request), data=raw or None)
    try:
        return await stream_response(request, upstream)
    finally:
        upstream.release()


def _path_with(request: web.Request, params: dict[str, str]) -> str:
    return request.rel_url.raw_path + (f"?{urlencode(params)}" if params else "")


def _reply(request: web.Request, answer: Answer, caller: Caller) -> web.Response:
    body = answer.body
    if answer.filter_path:
        body = filter_response(body, answer.filter_path)
    headers = {"Warning": ", ".join(caller.warnings)} if caller.warnings else {}
    if "X-Opaque-Id" in request.headers:
        headers["X-Opaque-Id"] = request.headers["X-Opaque-Id"]
    return json_response(body, status=answer.status, request=request, headers=headers)


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _INVALID


_INVALID = object()


async def _search(request: web.Request, endpoint: str) -> web.StreamResponse:
    service = _service(request)
    index = request.match_info.get("index")
    raw = await request.read()
    if not await service.needs_parsing(index, raw):
        return await _forward(request, raw)
    body = _json(raw)
    if body is _INVALID:
        return await _forward(request, raw)  # Elasticsearch words the parse error
    plan = await service.plan(index, request.query, body)
    if not plan.changed and not plan.execute_here and not plan.post.needed:
        return await _forward(request, raw)
    caller = caller_for(request)
    return _reply(request, await service.search(caller, plan, endpoint), caller)


async def search(request: web.Request) -> web.StreamResponse:
    return await _search(request, "_search")


async def async_search(request: web.Request) -> web.StreamResponse:
    return await _search(request, "_async_search")


def _ndjson(raw: bytes) -> list[Any] | None:
    lines = [line for line in raw.split(b"\n") if line.strip()]
    try:
        return [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        return None


async def msearch(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    index = request.match_info.get("index")
    raw = await request.read()
    lines = _ndjson(raw)
    if lines is None or len(lines) % 2:
        return await _forward(request, raw)
    items = [(lines[i] if isinstance(lines[i], dict) else {}, lines[i + 1]) for i in range(0, len(lines), 2)]
    if not service.mentions_inference(raw):
        indices = {index} | {h.get("index") if isinstance(h.get("index"), str) else
                             ",".join(i for i in (h.get("index") or []) if isinstance(i, str)) or None
                             if isinstance(h.get("index"), (list, type(None))) else None
                             for h, _ in items}
        if not await service.any_semantic(indices):
            return await _forward(request, raw)
    plans = await service.plan_msearch(index, request.query, items)
    caller = caller_for(request)
    return _reply(request, await service.msearch(caller, index, request.query, items, plans), caller)


async def count(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    index = request.match_info.get("index")
    raw = await request.read()
    body = _json(raw) if await service.needs_parsing(index, raw) else None
    rewritten = None if body is None or body is _INVALID else await service.count_body(index, request.query, body)
    if rewritten is None:
        return await _forward(request, raw)
    caller = caller_for(request)
    return _reply(request, await caller.send("POST", request.rel_url.raw_path, rewritten, dict(request.query)),
                  caller)


async def get_doc(request: web.Request) -> web.StreamResponse:
    params = await _service(request).doc_params(request.match_info["index"], dict(request.query))
    if params is None:
        return await proxy_handler(request)
    return await _forward(request, None, _path_with(request, params))


async def mget(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    body = _json(raw)
    rewritten = None
    if body is not _INVALID:
        rewritten = await _service(request).mget_request(request.match_info.get("index"), dict(request.query), body)
    if rewritten is None:
        return await _forward(request, raw)
    params, new_body = rewritten
    caller = caller_for(request)
    return _reply(request, await caller.send("POST", request.rel_url.raw_path, new_body, params), caller)


async def field_caps(request: web.Request) -> web.StreamResponse:
    """``_field_caps``: semantic_text fields shown as Elasticsearch shows them, the internal
    fields hidden, an ``index_filter`` with semantic queries rewritten."""
    service = _service(request)
    index = request.match_info.get("index")
    semantics = await service.semantic.resolve(index or "_all")
    if not semantics:
        return await proxy_handler(request)
    raw = await request.read()
    body = _json(raw)
    if body is _INVALID or (body is not None and not isinstance(body, dict)):
        return await _forward(request, raw)
    body = dict(body or {})
    params = dict(request.query)
    if isinstance(body.get("fields"), list):
        patterns = [str(f) for f in body["fields"]]
        body["fields"] = [*patterns, f"{field_caps_view.INFERENCE_ROOT}.*"]
    else:
        patterns = [p for p in (params.get("fields") or "").split(",") if p]
        if patterns:
            params["fields"] = field_caps_view.fields_param(params["fields"])
    if isinstance(body.get("index_filter"), dict):
        rewritten = await service.count_body(index, request.query, {"query": body["index_filter"]})
        if rewritten is not None:
            body["index_filter"] = rewritten["query"]
    caller = caller_for(request)
    answer = await caller.send(request.method if body else "GET", request.rel_url.raw_path, body or None, params)
    if answer.status == 200:
        include_empty = params.get("include_empty_fields", "true") != "false"
        answer.body = field_caps_view.rewrite(answer.body, semantics, patterns, include_empty)
    return _reply(request, answer, caller)
