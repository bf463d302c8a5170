"""HTTP routes of ``/_ingest/pipeline``: pipelines with inference processors are handled by
:mod:`sidecar.ingest`; everything else goes to Elasticsearch untouched.

Requests reach Elasticsearch with the caller's own credentials (Elasticsearch decides who
may read, write or simulate pipelines); the hidden index is read and written with the
sidecar's.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..es.upstream import end_to_end_headers
from ..ingest import Pipelines
from ..ingest.definition import contains_inference
from ..proxy import forwarded_request_headers, stream_response
from .calls import caller_for
from .keys import PIPELINES, UPSTREAM
from .render import json_response

_REPLACED = ("Content-Length", "Content-Encoding", "Transfer-Encoding", "Content-Type", "Accept-Encoding")


def _pipelines(request: web.Request) -> Pipelines:
    return request.app[PIPELINES]


def _headers(request: web.Request, *, json_body: bool):
    """The caller's headers for a request whose body the sidecar (re)wrote. Elasticsearch wants
    the same ``compatible-with`` version on ``Content-Type`` as on ``Accept``: the caller's
    ``Content-Type`` is kept, or derived from its ``Accept``."""
    headers = forwarded_request_headers(request)
    for name in _REPLACED:
        headers.popall(name, None)
    if json_body:
        content_type = request.headers.get("Content-Type", "")
        if "json" not in content_type:
            accept = request.headers.get("Accept", "")
            content_type = "application/json"
            if "compatible-with=" in accept:
                version = accept.split("compatible-with=")[-1].split(";")[0].strip()
                content_type = f"application/vnd.elasticsearch+json; compatible-with={version}"
        headers["Content-Type"] = content_type
    return headers


async def _send(request: web.Request, data: bytes | None):
    headers = _headers(request, json_body=False)
    if request.headers.get("Content-Type"):
        headers["Content-Type"] = request.headers["Content-Type"]
    return await request.app[UPSTREAM].request(request.method, request.raw_path, headers=headers, data=data)


async def _forward(request: web.Request, data: bytes | None) -> web.StreamResponse:
    """Send the request (with an already read body) to Elasticsearch and stream the answer."""
    upstream = await _send(request, data)
    try:
        return await stream_response(request, upstream)
    finally:
        upstream.release()


async def _forward_then(request: web.Request, data: bytes | None, after) -> web.Response:
    """Send the request to Elasticsearch and, when it succeeded, run ``after()`` *before*
    answering, so that a client never sees a change the sidecar has not caught up with."""
    upstream = await _send(request, data)
    try:
        raw = await upstream.read()
    finally:
        upstream.release()
    if 200 <= upstream.status < 300:
        await after()
    headers = end_to_end_headers(upstream.headers, drop=("Content-Length",))
    return web.Response(body=raw, status=upstream.status, headers=headers)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        return None


def _verbose(request: web.Request) -> bool | None:
    value = request.query.get("verbose")
    if value is None or value == "false":
        return False
    if value in ("", "true"):
        return True
    return None


async def put_pipeline(request: web.Request) -> web.StreamResponse:
    pipeline_id = request.match_info["id"]
    raw = await request.read()
    body = _json(raw)
    pipelines = _pipelines(request)
    if not contains_inference(body):
        return await _forward_then(request, raw, lambda: pipelines.discard([pipeline_id]))
    guard = await pipelines.prepare(pipeline_id, body)
    answer = await caller_for(request).send("PUT", request.raw_path, guard)
    if 200 <= answer.status < 300:
        await pipelines.save(pipeline_id, body)
    return json_response(answer.body, status=answer.status, request=request)


async def get_pipeline(request: web.Request) -> web.StreamResponse:
    if request.query.get("summary") not in (None, "false"):
        return await _forward(request, None)
    answer = await caller_for(request).send("GET", request.raw_path)
    body = answer.body
    if answer.status == 200 and isinstance(body, dict):
        body = await _pipelines(request).merge(body)
    return json_response(body, status=answer.status, request=request)


async def delete_pipeline(request: web.Request) -> web.StreamResponse:
    patterns = request.match_info["id"].split(",")
    return await _forward_then(request, None, lambda: _pipelines(request).discard(patterns))


async def simulate(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    verbose = _verbose(request)
    if verbose is None:
        return await _forward(request, raw)
    result = await _pipelines(request).simulate(
        request.match_info.get("id"), _json(raw), verbose=verbose, caller=caller_for(request)
    )
    if result is None:
        return await _forward(request, raw)
    return json_response(result, request=request)
