"""``_update_by_query`` through the sidecar's ingest path.

Elasticsearch's own update-by-query rewrites each matching document inside Elasticsearch,
bypassing the sidecar: semantic_text fields added to the mapping since the document was
indexed would stay empty. Where the node has the reindex module, the sidecar runs it itself, as
a :class:`~sidecar.writes.reindex.Reindexer` whose documents go back to their own index: each
is re-sent through the bulk path (the embeddings it carries are reused, the fields it lacks are
filled) and guarded by its sequence number, so a concurrent change is a version conflict, as in
Elasticsearch. The response is Elasticsearch's update-by-query ``BulkByScrollResponse``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import EsError
from ..semantic.layout import INFERENCE_ROOT
from .bulk import BulkItem
from .reindex import DEFAULT_BATCH, Reindexer, ReindexSpec


def parse(index: str, body: Any, params: dict[str, str]) -> ReindexSpec:
    """The update-by-query request as a reindex of ``index`` into itself."""
    if body is not None and not isinstance(body, dict):
        raise EsError(400, "parsing_exception", "request body is required to be an object")
    body = body or {}
    if body.get("script") is not None:
        raise EsError(400, "illegal_argument_exception",
                      "update_by_query [script] is not supported on indices with semantic_text fields: run the "
                      "script in an ingest pipeline instead")
    conflicts = params.get("conflicts", body.get("conflicts", "abort"))
    if conflicts not in ("abort", "proceed"):
        raise EsError(400, "illegal_argument_exception",
                      f"conflicts may only be \"proceed\" or \"abort\" but was [{conflicts}]")
    max_docs: Any = params.get("max_docs", body.get("max_docs"))
    try:
        max_docs = int(max_docs) if max_docs is not None else None
        size = int(params.get("scroll_size", DEFAULT_BATCH))
    except (TypeError, ValueError):
        raise EsError(400, "illegal_argument_exception", "[max_docs] and [scroll_size] must be integers") from None
    if max_docs is not None and max_docs < 0:
        raise EsError(400, "action_request_validation_exception",
                      f"Validation Failed: 1: [max_docs] parameter cannot be negative, found [{max_docs}];")
    return ReindexSpec(source_index=index, dest_index=index, query=body.get("query"), batch_size=max(size, 1),
                       conflicts=conflicts, max_docs=max_docs, pipeline=params.get("pipeline"))


class UpdateByQuery(Reindexer):
    page_options = {"seq_no_primary_term": True}

    def _items(self, hits: list[dict[str, Any]], skip: set[str]) -> list[BulkItem]:
        items = []
        for hit in hits:
            source = dict(hit.get("_source") or {})
            previous = dict(source)
            source.pop(INFERENCE_ROOT, None)
            meta: dict[str, Any] = {"_index": hit["_index"], "_id": hit["_id"]}
            if hit.get("_routing") is not None:
                meta["routing"] = hit["_routing"]
            if hit.get("_seq_no") is not None and hit.get("_primary_term") is not None:
                meta["if_seq_no"], meta["if_primary_term"] = hit["_seq_no"], hit["_primary_term"]
            if self.spec.pipeline:
                meta["pipeline"] = self.spec.pipeline
            items.append(BulkItem(op="index", meta=meta, action_line=orjson.dumps({"index": meta}),
                                  source_line=orjson.dumps(source), index=hit["_index"], source=source,
                                  previous=previous))
        return items

    async def run(self) -> dict[str, Any]:
        result = await super().run()
        result.pop("created", None)  # an update-by-query reports no "created"
        return result


def description(index: str) -> str:
    return f"update-by-query [{index}]"
