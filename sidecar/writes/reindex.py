"""Reindexing through the sidecar's ingest path.

Elasticsearch's own ``_reindex`` runs inside Elasticsearch and would bypass the sidecar, so a
reindex whose destination has semantic_text fields (or an ingest pipeline the sidecar runs)
is done here: a point-in-time scan of the source with ``search_after``, each page sent
through the same batched bulk path as ``_bulk``. Embeddings the source documents already
carry for the same inference endpoints are reused, so reindexing unchanged documents costs
no inference. ``op_type: create`` skips documents already in the destination before any
inference is spent on them, which is how an interrupted reindex resumes cheaply.

The response is Elasticsearch's ``BulkByScrollResponse``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from ..errors import EsError
from ..es.caller import Caller
from ..semantic.layout import INFERENCE_ROOT
from .bulk import BulkItem, BulkProcessor

DEFAULT_BATCH = 1000


@dataclass
class ReindexSpec:
    source_index: str | list[str]
    dest_index: str
    query: dict[str, Any] | None = None
    source_filter: Any = None
    batch_size: int = DEFAULT_BATCH
    op_type: str = "index"
    pipeline: str | None = None
    conflicts: str = "abort"
    max_docs: int | None = None

    @classmethod
    def parse(cls, body: Any, max_docs_param: str | None = None) -> ReindexSpec:
        if not isinstance(body, dict):
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: use _reindex with a body;")
        source, dest = body.get("source"), body.get("dest")
        errors = []
        if not isinstance(source, dict) or not source.get("index"):
            errors.append("use _all if you really want to copy from all existing indexes")
        if not isinstance(dest, dict) or not dest.get("index"):
            errors.append("index must be specified")
        if body.get("script") is not None:
            raise EsError(400, "illegal_argument_exception",
                          "reindex [script] is not supported when the destination has semantic_text fields or "
                          "inference processors: run the script in an ingest pipeline instead")
        if isinstance(source, dict) and source.get("remote"):
            errors.append("reindex from [remote] is not supported through es-inference-sidecar")
        if errors:
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(errors, 1)))
        def names(value: Any) -> bool:
            return isinstance(value, str) or (isinstance(value, list) and bool(value)
                                              and all(isinstance(v, str) and v for v in value))

        if not names(source["index"]):
            raise EsError(400, "x_content_parse_exception",
                          "[1:1] [reindex] failed to parse field [source.index]: expected a string or an array of strings")
        if not isinstance(dest["index"], str):
            raise EsError(400, "x_content_parse_exception",
                          "[1:1] [reindex] failed to parse field [dest.index]: expected a string")
        size = source.get("size", DEFAULT_BATCH)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise EsError(400, "x_content_parse_exception",
                          f"[1:1] [reindex] failed to parse field [source.size]: expected a positive integer, got [{size}]")
        op_type = dest.get("op_type", "index")
        if op_type not in ("index", "create"):
            raise EsError(400, "illegal_argument_exception", f"opType must be 'create' or 'index', found: [{op_type}]")
        conflicts = body.get("conflicts", "abort")
        if conflicts not in ("abort", "proceed"):
            raise EsError(400, "illegal_argument_exception",
                          f"conflicts may only be \"proceed\" or \"abort\" but was [{conflicts}]")
        max_docs = body.get("max_docs", body.get("size"))
        if max_docs_param is not None:
            try:
                max_docs = int(max_docs_param)
            except ValueError:
                raise EsError(400, "illegal_argument_exception",
                              f"Failed to parse int parameter [max_docs] with value [{max_docs_param}]") from None
        if max_docs is not None and (not isinstance(max_docs, int) or isinstance(max_docs, bool) or max_docs < 0):
            raise EsError(400, "action_request_validation_exception",
                          f"Validation Failed: 1: [max_docs] parameter cannot be negative or non-numeric, found [{max_docs}];")
        return cls(
            source_index=source["index"],
            dest_index=dest["index"],
            query=source.get("query"),
            source_filter=source.get("_source"),
            batch_size=size,
            op_type=op_type,
            pipeline=dest.get("pipeline"),
            conflicts=conflicts,
            max_docs=max_docs,
        )

    def description(self) -> str:
        src = self.source_index if isinstance(self.source_index, str) else ",".join(self.source_index)
        return f"reindex from [{src}] to [{self.dest_index}]"


def new_status() -> dict[str, Any]:
    return {"total": 0, "updated": 0, "created": 0, "deleted": 0, "batches": 0, "version_conflicts": 0,
            "noops": 0, "retries": {"bulk": 0, "search": 0}, "throttled_millis": 0,
            "requests_per_second": -1.0, "throttled_until_millis": 0}


class Reindexer:
    # More options of the search that reads each page.
    page_options: dict[str, Any] = {}

    def __init__(self, spec: ReindexSpec, caller: Caller, processor: BulkProcessor, *,
                 vectors_params: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.caller = caller
        # Stored embeddings come back with the source documents (see sidecar.es.node).
        self._search_path = "/_search" + (f"?{urlencode(vectors_params)}" if vectors_params else "")
        self.processor = processor
        self.status = new_status()
        self.failures: list[dict[str, Any]] = []

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        reply = await self.caller.send(method, path, body)
        status, answer = reply.status, reply.body
        if status >= 300:
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                raise EsError(status, error.get("type", "exception"), error.get("reason", str(answer)))
            raise EsError(status, "status_exception", f"Elasticsearch answered {status}: {answer}")
        return answer

    async def _pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        spec = self.spec
        indices = spec.source_index if isinstance(spec.source_index, str) else ",".join(spec.source_index)
        pit = await self._json("POST", f"/{indices}/_pit?keep_alive=5m")
        pit_id = pit["id"]
        search_after = None
        seen = 0
        try:
            while True:
                size = spec.batch_size
                if spec.max_docs is not None:
                    size = min(size, spec.max_docs - seen)
                    if size <= 0:
                        return
                body: dict[str, Any] = {"size": size, "pit": {"id": pit_id, "keep_alive": "5m"},
                                        "sort": [{"_shard_doc": "asc"}], "track_total_hits": search_after is None,
                                        "query": spec.query or {"match_all": {}}, **self.page_options}
                if spec.source_filter is not None:
                    body["_source"] = spec.source_filter
                if search_after is not None:
                    body["search_after"] = search_after
                page = await self._json("POST", self._search_path, body)
                pit_id = page.get("pit_id", pit_id)
                if search_after is None:
                    total = page["hits"]["total"]["value"]
                    self.status["total"] = min(total, spec.max_docs) if spec.max_docs is not None else total
                hits = page["hits"]["hits"]
                if not hits:
                    return
                seen += len(hits)
                search_after = hits[-1]["sort"]
                yield hits
        finally:
            try:
                await self.caller.send("DELETE", "/_pit", {"id": pit_id})
            except Exception:
                pass

    async def _existing(self, hits: list[dict[str, Any]]) -> set[str]:
        docs = [{"_index": self.spec.dest_index, "_id": h["_id"], "_source": False} for h in hits]
        answer = await self._json("POST", "/_mget", {"docs": docs})
        return {d["_id"] for d in answer.get("docs", []) if d.get("found")}

    def _items(self, hits: list[dict[str, Any]], skip: set[str]) -> list[BulkItem]:
        items = []
        for hit in hits:
            if hit["_id"] in skip:
                continue
            source = dict(hit.get("_source") or {})
            previous = dict(source)
            source.pop(INFERENCE_ROOT, None)
            meta: dict[str, Any] = {"_index": self.spec.dest_index, "_id": hit["_id"]}
            if hit.get("_routing") is not None:
                meta["routing"] = hit["_routing"]
            if self.spec.pipeline:
                meta["pipeline"] = self.spec.pipeline
            items.append(BulkItem(op=self.spec.op_type, meta=meta,
                                  action_line=orjson.dumps({self.spec.op_type: meta}),
                                  source_line=orjson.dumps(source), index=self.spec.dest_index,
                                  source=source, previous=previous))
        return items

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        async for hits in self._pages():
            skip = await self._existing(hits) if self.spec.op_type == "create" else set()
            self.status["version_conflicts"] += len(skip)
            items = self._items(hits, skip)

            async def page_items(items=items):
                for item in items:
                    yield item

            stats = await self.processor.run(page_items())
            self.status["batches"] += 1
            for result in stats.items:
                body = next(iter(result.values()))
                if body.get("error") is not None:
                    if body.get("status") == 409 and self.spec.conflicts == "proceed":
                        self.status["version_conflicts"] += 1
                        continue
                    self.failures.append({"index": body.get("_index"), "id": body.get("_id"),
                                          "cause": body["error"], "status": body.get("status")})
                elif body.get("result") == "created":
                    self.status["created"] += 1
                elif body.get("result") == "updated":
                    self.status["updated"] += 1
                else:
                    self.status["noops"] += 1
            if self.failures:
                break  # Elasticsearch stops a reindex at the first batch with failures
        return {"took": int((time.monotonic() - started) * 1000), "timed_out": False, **self.status,
                "failures": self.failures}
