"""``POST /_reindex`` into destinations that need the sidecar, and ``GET /_tasks/{id}`` for
the tasks the sidecar runs. Other reindexes and tasks pass through to Elasticsearch."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..endpoints.timevalue import parse_time_value
from ..errors import EsError
from ..es.caller import Caller
from ..proxy import proxy_handler
from ..tasks import Tasks
from ..writes import update_by_query as update_by_query_spec
from ..writes.reindex import Reindexer, ReindexSpec
from ..writes.update_by_query import UpdateByQuery
from .calls import caller_for
from .keys import NODE_VERSION, PIPELINES, SEARCH, SEMANTIC_INDICES, TASKS
from .render import json_response
from .writes import make_processor

ACTION = "indices:data/write/reindex"
UPDATE_BY_QUERY_ACTION = "indices:data/write/update/byquery"


async def _needs_sidecar(app: web.Application, spec: ReindexSpec, client: Caller) -> bool:
    if await app[SEMANTIC_INDICES].for_write(spec.dest_index) is not None:
        return True
    return await app[PIPELINES].plan(spec.dest_index, spec.pipeline) is not None


async def reindex(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        body = None
    client = caller_for(request)
    spec = None
    dest = body.get("dest") if isinstance(body, dict) else None
    if isinstance(dest, dict) and "index" in dest and not isinstance(dest["index"], str):
        raise EsError(400, "x_content_parse_exception",
                      "[1:1] [reindex] failed to parse field [dest.index]: expected a string")
    if isinstance(dest, dict) and isinstance(dest.get("index"), str) and dest["index"] and \
            isinstance(dest.get("pipeline", ""), str):
        probe = ReindexSpec(source_index="", dest_index=dest["index"], pipeline=dest.get("pipeline"))
        if await _needs_sidecar(request.app, probe, client):
            spec = ReindexSpec.parse(body, request.query.get("max_docs"))
    if spec is None:
        answer = await client.send("POST", request.raw_path, body)
        return json_response(answer.body, status=answer.status, request=request, headers=answer.headers)

    reindexer = await _runner(request, client, Reindexer, spec)
    return await _run_as_task(request, ACTION, spec.description(), reindexer)


async def update_by_query(request: web.Request) -> web.StreamResponse:
    """``POST /{index}/_update_by_query`` on indices with semantic_text fields, where the node has
    the reindex module: run here, so that semantic_text fields are filled as Elasticsearch fills
    them. Without the module, the node answers (as it does)."""
    index = request.match_info["index"]
    if not await request.app[SEMANTIC_INDICES].resolve(index) or \
            not await request.app[SEARCH].caps.native_update_by_query():
        return await proxy_handler(request)
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        raise EsError(400, "parsing_exception", "request body is required to be valid JSON") from None
    spec = update_by_query_spec.parse(index, body, dict(request.query))
    if spec.query is not None:
        rewritten = await request.app[SEARCH].count_body(index, request.query, {"query": spec.query})
        if rewritten is not None:
            spec.query = rewritten["query"]
    runner = await _runner(request, caller_for(request), UpdateByQuery, spec)
    return await _run_as_task(request, UPDATE_BY_QUERY_ACTION, update_by_query_spec.description(index), runner)


async def _runner(request: web.Request, client: Caller, kind: type[Reindexer], spec: ReindexSpec) -> Reindexer:
    query = {k: v for k, v in request.query.items() if k in ("refresh", "timeout", "wait_for_active_shards")}
    processor = make_processor(request.app, client, query)
    return kind(spec, client, processor, vectors_params=await request.app[NODE_VERSION].vectors_params())


async def _run_as_task(request: web.Request, action: str, description: str,
                       reindexer: Reindexer) -> web.StreamResponse:
    tasks: Tasks = request.app[TASKS]

    async def work(task):
        task.status = reindexer.status
        return await reindexer.run()

    task = tasks.start(action, description, reindexer.status, work)
    if request.query.get("wait_for_completion", "true") == "false":
        return json_response({"task": task.id}, request=request)
    result = await tasks.get(task.id, wait=True, timeout_s=None)
    if "error" in result and "response" not in result:
        error = result["error"]
        status = tasks.local(task.id).error_status
        return json_response({"error": {"root_cause": [error], **error}, "status": status}, status=status,
                             request=request)
    return json_response(result["response"], request=request)


async def get_task(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["task_id"]
    tasks: Tasks = request.app[TASKS]
    if not tasks.owns(task_id):
        return await proxy_handler(request)
    wait = request.query.get("wait_for_completion") == "true"
    timeout = parse_time_value(request.query.get("timeout"), "timeout", 30.0)
    return json_response(await tasks.get(task_id, wait=wait, timeout_s=timeout), request=request)


async def cancel_task(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["task_id"]
    tasks: Tasks = request.app[TASKS]
    if not tasks.owns(task_id):
        return await proxy_handler(request)
    await tasks.cancel(task_id)
    info = await tasks.get(task_id)
    return json_response({"nodes": {info["task"]["node"]: {"tasks": {task_id: info["task"]}}}}, request=request)
