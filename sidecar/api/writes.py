"""Write routes: ``_bulk`` and the single-document APIs, intercepted only when the target
index has semantic_text fields or an ingest pipeline the sidecar runs; everything else is
streamed straight through."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..errors import EsError
from ..es.caller import Caller
from ..proxy import proxy_handler
from ..semantic.metadata import SemanticIndices
from ..writes.bulk import BulkProcessor
from ..writes.documents import Documents
from ..writes.items import ndjson_lines, read_items, single_item, single_response
from .calls import caller_for
from .filter_path import filter_response
from .keys import FILLER, NODE_VERSION, PIPELINES, SEMANTIC_INDICES
from .render import PRODUCT_HEADER, content_type_for, json_response


def _semantic(app: web.Application) -> SemanticIndices:
    return app[SEMANTIC_INDICES]


async def _pipeline_plan(request: web.Request, index: str, pipeline: str | None):
    return await request.app[PIPELINES].plan(index, pipeline)


def make_processor(app: web.Application, caller: Caller, query: dict[str, str],
                   default_index: str | None = None) -> BulkProcessor:
    """A bulk processor acting with one caller's credentials. ``default_index`` is the index
    of ``/{index}/_bulk`` (items forwarded untouched may rely on it)."""
    documents = Documents(caller, app[NODE_VERSION], query, default_index)
    return BulkProcessor(app[SEMANTIC_INDICES], app[FILLER], documents, pipelines=app[PIPELINES],
                         request_pipeline=query.get("pipeline"), node_version=app[NODE_VERSION])


async def bulk(request: web.Request) -> web.StreamResponse:
    index = request.match_info.get("index")
    needs = await _semantic(request.app).any_semantic()
    if not needs:
        needs = await request.app[PIPELINES].any_inference_pipelines()
    if not needs:
        return await proxy_handler(request)
    query = dict(request.query)
    processor = make_processor(request.app, caller_for(request), query, index)
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


async def _single(request: web.Request, op: str, doc_id: str | None, source: Any) -> web.StreamResponse:
    query = dict(request.query)
    item = single_item(op, request.match_info["index"], doc_id, query, source)
    processor = make_processor(request.app, caller_for(request), query)

    async def one():
        yield item

    stats = await processor.run(one())
    status, body = single_response(stats.items[0])
    return json_response(body, status=status, request=request, headers=truncation_warning(stats.truncated))


async def _needs_work(request: web.Request, index: str) -> bool:
    semantic = _semantic(request.app)
    if semantic.known_plain(index) and request.app[PIPELINES].known_none():
        return False  # both answers cached: a plain write waits for nothing here
    if await semantic.for_write(index) is not None:
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
