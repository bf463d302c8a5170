"""Write routes: ``_bulk`` and the single-document APIs, intercepted only when the target
index has semantic_text fields or an ingest pipeline the sidecar runs; everything else is
streamed straight through."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from ..errors import EsError
from ..proxy import forwarded_request_headers, proxy_handler
from ..semantic.bulk import BulkItem, BulkProcessor, ndjson_lines, read_items
from ..semantic.metadata import SemanticIndices
from .calls import CallerClient
from .filter_path import filter_response
from .keys import FILLER, NODE_VERSION, PIPELINES, SEMANTIC_INDICES
from .render import PRODUCT_HEADER, content_type_for, json_response

_ITEM_PARAMS = {"routing", "pipeline", "if_seq_no", "if_primary_term", "version", "version_type",
                "require_alias", "retry_on_conflict", "_source"}
_BULK_PARAMS = {"refresh", "timeout", "wait_for_active_shards", "require_alias", "pipeline", "routing",
                "_source", "_source_includes", "_source_excludes", "list_executed_pipelines",
                "require_data_stream", "error_trace", "pretty", "human"}


def _semantic(app: web.Application) -> SemanticIndices:
    return app[SEMANTIC_INDICES]


async def _pipeline_plan(request: web.Request, index: str, pipeline: str | None):
    return await request.app[PIPELINES].plan(index, pipeline, forwarded_request_headers(request))


def make_processor(app: web.Application, client: CallerClient, query: dict[str, str],
                   default_index: str | None = None) -> BulkProcessor:
    """A bulk processor acting with one caller's credentials. ``default_index`` is the index
    of ``/{index}/_bulk`` (items forwarded untouched may rely on it)."""
    forward_query = {k: v for k, v in query.items() if k in _BULK_PARAMS and k != "pipeline"}
    prefix = f"/{quote(default_index, safe=',*')}" if default_index else ""
    bulk_path = f"{prefix}/_bulk" + (f"?{urlencode(forward_query)}" if forward_query else "")

    async def send(body: bytes) -> tuple[int, Any]:
        status, _, answer = await client.call("POST", bulk_path, ndjson=body)
        return status, answer

    async def fetch(keys):
        docs = []
        for index, doc_id, routing in keys:
            entry: dict[str, Any] = {"_index": index, "_id": doc_id}
            if routing is not None:
                entry["routing"] = routing
            docs.append(entry)
        params = await app[NODE_VERSION].vectors_params()
        path = "/_mget" + (f"?{urlencode(params)}" if params else "")
        status, _, answer = await client.call("POST", path, {"docs": docs})
        if status != 200 or not isinstance(answer, dict):
            return [None] * len(keys)
        return [(d.get("_source") or {}, d.get("_seq_no"), d.get("_primary_term")) if d.get("found") else None
                for d in answer.get("docs", [])]

    return BulkProcessor(
        app[SEMANTIC_INDICES], app[FILLER], send, fetch,
        pipelines=app[PIPELINES], caller_headers=client.headers,
        request_pipeline=query.get("pipeline"), node_version=app[NODE_VERSION],
    )


async def bulk(request: web.Request) -> web.StreamResponse:
    index = request.match_info.get("index")
    needs = await _semantic(request.app).any_semantic()
    if not needs:
        needs = await request.app[PIPELINES].any_inference_pipelines()
    if not needs:
        return await proxy_handler(request)
    query = dict(request.query)
    processor = make_processor(request.app, CallerClient.for_request(request), query, index)
    items = read_items(ndjson_lines(request.content.iter_chunked(256 * 1024)), index)
    stats = await processor.run(items)
    headers = truncation_warning(stats.truncated)
    if "filter_path" in query:
        return raw_json_response(filtered_bulk_response(stats, query["filter_path"]), request, headers)
    return raw_json_response(stats.response_bytes(), request, headers)


def filtered_bulk_response(stats, filter_path: str) -> bytes:
    """``filter_path`` applied item by item, so that a bulk of many documents is never held
    parsed all at once."""
    top = filter_response({"errors": stats.errors, "took": stats.took_ms}, filter_path)
    items = []
    for raw in stats.raw_items:
        kept = filter_response({"items": [orjson.loads(raw)]}, filter_path).get("items")
        if kept:
            items.append(memoryview(orjson.dumps(kept[0])).tobytes())
    head = orjson.dumps({k: v for k, v in top.items() if k != "items"})
    if not items:
        return head
    sep = b"," if head != b"{}" else b""
    return head[:-1] + sep + b'"items":[' + b",".join(items) + b"]}"


def raw_json_response(body: bytes, request: web.Request, headers: dict[str, str]) -> web.Response:
    out = {**PRODUCT_HEADER, "Content-Type": content_type_for(request), **headers}
    return web.Response(body=body, headers=out)


def truncation_warning(count: int) -> dict[str, str]:
    """Truncation is never silent: it is reported as an Elasticsearch-style ``Warning``
    header (clients surface these as warnings)."""
    if not count:
        return {}
    return {"Warning": f'299 es-inference-sidecar "{count} document(s) had text longer than the input '
                       'window of their inference endpoint\'s model; that text was truncated before '
                       'embedding. Use smaller chunking_settings.max_chunk_size to embed all of it."'}


# -- single documents ---------------------------------------------------------------------------


def _item_response(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = dict(next(iter(result.values())))
    status = body.pop("status", 200)
    error = body.get("error")
    if error is not None:
        cause = {k: v for k, v in error.items() if k != "caused_by"}
        return status, {"error": {"root_cause": [cause], **error}, "status": status}
    return status, body


async def _single(request: web.Request, op: str, doc_id: str | None, source: Any) -> web.StreamResponse:
    index = request.match_info["index"]
    query = dict(request.query)
    meta: dict[str, Any] = {"_index": index}
    if doc_id is not None:
        meta["_id"] = doc_id
    for key in _ITEM_PARAMS:
        if key in query and key != "_source":
            value: Any = query[key]
            if key in ("if_seq_no", "if_primary_term", "version", "retry_on_conflict"):
                try:
                    value = int(value)
                except ValueError:
                    raise EsError(400, "illegal_argument_exception",
                                  f"Failed to parse int parameter [{key}] with value [{value}]") from None
            meta[key] = value
    item = BulkItem(op=op, meta=meta, action_line=orjson.dumps({op: meta}),
                    source_line=orjson.dumps(source), index=index, source=source)
    processor = make_processor(request.app, CallerClient.for_request(request), query)

    async def one():
        yield item

    stats = await processor.run(one())
    status, body = _item_response(stats.items[0])
    return json_response(body, status=status, request=request, headers=truncation_warning(stats.truncated))


async def _needs_work(request: web.Request, index: str) -> bool:
    if await _semantic(request.app).for_write(index) is not None:
        return True
    return await _pipeline_plan(request, index, request.query.get("pipeline")) is not None


async def _read_source(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EsError(400, "mapper_parsing_exception", f"failed to parse: {exc.msg}") from None


async def index_doc(request: web.Request) -> web.StreamResponse:
    index = request.match_info["index"]
    if index.startswith("_") or not await _needs_work(request, index):
        return await proxy_handler(request)
    doc_id = request.match_info.get("id")
    op = "create" if request.query.get("op_type") == "create" or "/_create/" in request.path else "index"
    return await _single(request, op, doc_id, await _read_source(request))


async def update_doc(request: web.Request) -> web.StreamResponse:
    index = request.match_info["index"]
    if index.startswith("_") or await _semantic(request.app).for_write(index) is None:
        return await proxy_handler(request)
    body = await _read_source(request)
    return await _single(request, "update", request.match_info["id"], body)
