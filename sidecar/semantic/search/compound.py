"""Compound retrievers (``rrf``, ``linear``, ``pinned`` where the node lacks them,
``text_similarity_reranker``, and ``rescorer`` / ``diversify`` above or over what runs here) run as
Elasticsearch runs them: in a point in time, each child retriever runs as a search of
``rank_window_size`` hits sorted by score then ``_shard_doc``, the results are fused or
reranked, and one final search over the union of the child queries (so totals and
aggregations are Elasticsearch's) fetches the requested page with the computed scores."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import EsError
from ...es.caller import Answer, Caller, index_path
from ...es.errors import UpstreamError
from ...es.node import NodeVersion
from ..layout import inference_path
from ..queries.clauses import listify
from ..queries.errors import parsing_error
from ..rerank import DEFAULT_RERANK_ID, rerank, top_explanation
from ..rerank import explanation as rerank_explanation
from ..rrf import Ranked, f32, fuse
from ..values import MISSING, get_path
from . import stages
from .fusion import linear, rrf_explanation
from .hits import finish
from .plan import Plan
from .retrievers import Retriever, int_param

log = logging.getLogger("sidecar.search")

PIT_KEEP_ALIVE = "1m"
# URL parameters that say which indices a search reads (they go to the point in time instead).
INDEX_PARAMS = ("routing", "preference", "expand_wildcards", "ignore_unavailable", "allow_no_indices",
                "ignore_throttled", "ccs_minimize_roundtrips")


async def execute_compound(caller: Caller, plan: Plan, started: float, *, endpoints: Any,
                           timeout_s: float | None, node_version: NodeVersion) -> dict[str, Any]:
    """Run a plan's compound retriever tree; the answer is a search response with the page asked for.
    ``endpoints`` run the rerankers (within ``timeout_s``)."""
    root = plan.retriever
    assert root is not None
    body = plan.body
    size = int_param(plan.params.get("size", body.get("size")), "size", 10)
    start = int_param(plan.params.get("from", body.get("from")), "from", 0)
    run = _Run(caller, plan, endpoints, timeout_s)
    run.explain = body.get("explain") is True or plan.params.get("explain") == "true"
    run.vector_params = await node_version.vectors_params()
    await run.open_pit()
    try:
        ranked, union = await run.execute(root, root.window, [])
        page = ranked[start:start + size] if size > 0 else []
        final = {k: v for k, v in body.items()
                 if k not in ("retriever", "from", "size", "pit", "track_scores", "explain")}
        functions = [{"filter": _doc_filter(doc), "weight": float(len(page) - i + 1)}
                     for i, doc in enumerate(page)]
        query = union
        if functions:
            query = {"function_score": {"query": union, "functions": functions, "score_mode": "first",
                                        "boost_mode": "replace"}}
        final.update({"query": query, "size": len(page), "from": 0})
        response = (await run.search(final, final_params(plan.params))).ok()
    finally:
        await run.close_pit()
    hits = response.get("hits") or {}
    by_key = {(h.get("_index"), h.get("_id")): h for h in hits.get("hits") or []}
    ordered = []
    for doc in page:
        hit = by_key.get(doc.key)
        if hit is None:
            continue
        hit["_score"] = f32(doc.score)
        if run.explain and "explanation" in doc.extra:
            hit["_explanation"] = doc.extra["explanation"]
        ordered.append(hit)
    hits["hits"] = ordered
    hits["max_score"] = f32(ranked[0].score) if ranked else None
    response["hits"] = hits
    if not run.user_pit:
        response.pop("pit_id", None)
    await finish(caller, plan, response, node_version)
    response["took"] = int((time.monotonic() - started) * 1000)
    return response


def _doc_filter(doc: Ranked) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"_index": doc.index}}, {"ids": {"values": [doc.id]}}]}}


def final_params(params: Mapping[str, str]) -> dict[str, str]:
    skip = {*INDEX_PARAMS, "size", "from", "q", "sort", "scroll", "search_type", "explain", "track_scores"}
    return {k: v for k, v in params.items() if k not in skip}


def completed_async(response: dict[str, Any], started: float) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"is_partial": False, "is_running": False, "start_time_in_millis": now - response.get("took", 0),
            "expiration_time_in_millis": now, "completion_time_in_millis": now, "response": response}


class _Run:
    """One execution of a compound retriever tree, inside one point in time."""

    def __init__(self, caller: Caller, plan: Plan, endpoints: Any, timeout_s: float | None) -> None:
        self.endpoints = endpoints  # sidecar.endpoints.manager.InferenceEndpoints
        self.timeout_s = timeout_s
        self.caller = caller
        self.plan = plan
        self.pit: dict[str, Any] | None = None
        self.user_pit = isinstance(plan.body.get("pit"), dict)
        self.opened = False
        self.explain = False
        self.vector_params: dict[str, str] = {}

    async def open_pit(self) -> None:
        if self.user_pit:
            self.pit = dict(self.plan.body["pit"])
            return
        params = {"keep_alive": PIT_KEEP_ALIVE, **{k: v for k, v in self.plan.params.items() if k in INDEX_PARAMS
                                                   and k != "ccs_minimize_roundtrips"}}
        answer = await self.caller.send("POST", index_path(self.plan.index or "_all", "_pit"), None, params)
        if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("id"):
            self.pit = {"id": answer.body["id"], "keep_alive": PIT_KEEP_ALIVE}
            self.opened = True
        elif answer.status in (400, 404) and isinstance(answer.body, dict) and "error" in answer.body:
            err = answer.body["error"]
            if isinstance(err, dict) and err.get("type") in ("index_not_found_exception",):
                raise UpstreamError(answer.status, answer.body)
        # Otherwise (no point in time allowed): run without one; ties then keep first-seen order.

    async def close_pit(self) -> None:
        if self.opened and self.pit is not None:
            try:
                await self.caller.send("DELETE", "/_pit", {"id": self.pit["id"]})
            except EsError:
                log.warning("could not close a point in time")

    async def search(self, body: dict[str, Any], params: Mapping[str, str] | None = None) -> Answer:
        body = dict(body)
        if self.pit is not None:
            body["pit"] = self.pit
            answer = await self.caller.send("POST", "/_search", body, dict(params or {}))
            if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("pit_id"):
                self.pit = {**self.pit, "id": answer.body["pit_id"]}
            return answer
        merged = dict(params or {})
        merged.update({k: v for k, v in self.plan.params.items() if k in INDEX_PARAMS})
        return await self.caller.send("POST", index_path(self.plan.index, "_search"), body, merged)

    async def execute(self, node: Retriever, size: int, inherited: list[Any]) -> tuple[list[Ranked], Any]:
        if node.kind in ("standard", "knn"):
            return await self._leaf(node, size, inherited)
        filters = [*inherited, *node.filters]
        if node.kind in ("rrf", "linear"):
            results = await asyncio.gather(*(self.execute(c, node.window, filters) for c in node.children))
            lists = [r for r, _ in results]
            union = {"bool": {"should": [u for _, u in results]}}
            if node.kind == "linear":
                fused = linear(lists, node.weights, node.normalizers, node.window, node.min_score,
                               names=node.names, explain=self.explain)
                return fused[:size], union
            weights = node.weights if any(w != 1.0 for w in node.weights) else None
            fused = fuse(lists, node.rank_constant, node.window, weights)
            if node.min_score is not None:
                fused = [d for d in fused if d.score >= node.min_score]
            if self.explain:
                for doc in fused:
                    doc.extra["explanation"] = rrf_explanation(doc, node.rank_constant, node.names)
            return fused[:size], union
        if node.kind in ("pinned", "rescorer", "diversify"):
            child, union = await self.execute(node.children[0], node.window, filters)
            if node.kind == "pinned":
                out, pins = await stages.pinned(self._hits, node.pinned, child, node.window)
                return out[:size], {"bool": {"should": [union, pins]}}
            if node.kind == "rescorer":
                return (await stages.rescore(self._hits, node.rescore, child))[:size], union
            return (await self._diversify(node, child))[:size], union
        if node.kind == "text_similarity_reranker":
            child, union = await self.execute(node.children[0], node.window, filters)
            texts: list[Any] = await self._field_texts(child, node.rerank_field or "")
            if node.chunk_rescorer is not None:
                texts = await self._chunk_inputs(node, child, texts)
            try:
                reranked = await rerank(self.endpoints, node.inference_id or DEFAULT_RERANK_ID,
                                        node.inference_text or "", child, texts, rank_window_size=node.window,
                                        min_score=node.min_score, timeout_s=self.timeout_s)
            except EsError as err:
                if not node.allow_rerank_failures:
                    raise
                log.warning("reranking with [%s] failed, returning the first-stage hits: %s",
                            node.inference_id, err.reason)
                reranked = list(child)
            if self.explain:
                sources = {d.key: d.extra.get("explanation") for d in child}
                for doc in reranked:
                    source = sources.get(doc.key)
                    doc.extra["explanation"] = rerank_explanation(doc, node.inference_id or DEFAULT_RERANK_ID,
                                                                  node.rerank_field or "", source)
                    if node is self.plan.retriever:
                        doc.extra["explanation"] = top_explanation(doc, doc.extra["explanation"], source)
            if node.min_score is not None:
                # Documents the reranker dropped are not hits at all (nor counted in the total).
                union = stages.docs_query(reranked)
            return reranked[:size], union
        raise parsing_error(f"unknown retriever [{node.kind}]")

    async def _leaf(self, node: Retriever, size: int, inherited: list[Any]) -> tuple[list[Ranked], Any]:
        body: dict[str, Any] = {"size": size, "_source": False, "track_total_hits": False}
        filters = [*inherited, *node.filters]
        if node.kind == "standard":
            query = node.query if node.query is not None else {"match_all": {}}
            if filters:
                query = {"bool": {"must": query, "filter": filters}}
            body["query"] = query
            body.update({k: v for k, v in node.options.items()})
            union = query
        else:
            sections = []
            for section in node.knn:
                section = dict(section)
                if inherited:
                    section["filter"] = [*listify(section.get("filter")), *inherited]
                sections.append(section)
            body["knn"] = sections
            if node.min_score is not None:
                body["min_score"] = node.min_score
            union = None
        if self.explain:
            body["explain"] = True
        sort = listify(body.get("sort")) or ["_score"]
        if self.pit is not None:
            sort = [*sort, {"_shard_doc": "asc"}]
        body["sort"] = sort
        answer = await self.search(body)
        hits = (answer.ok().get("hits") or {}).get("hits") or []
        ranked = []
        for i, hit in enumerate(hits):
            sort_values = hit.get("sort") or []
            shard_doc = sort_values[-1] if self.pit is not None and sort_values else None
            doc = Ranked(hit["_index"], hit["_id"], float(hit.get("_score") or 0.0),
                         shard_doc if isinstance(shard_doc, int) else None, hit.get("_routing"), i)
            if "_explanation" in hit:
                doc.extra["explanation"] = hit["_explanation"]
            ranked.append(doc)
        if union is None:
            union = stages.docs_query(ranked)
        return ranked, union

    async def _hits(self, body: dict[str, Any]) -> dict[str, Any]:
        return (await self.search(body)).ok()

    def _semantic(self, field_name: str, index: str) -> bool:
        info = self.plan.targets.get(index)
        return info is not None and info.semantics is not None and field_name in info.semantics.fields

    async def _sources(self, docs: list[Ranked], paths: list[str]) -> list[Any]:
        entries = []
        for doc in docs:
            entry: dict[str, Any] = {"_index": doc.index, "_id": doc.id, "_source": {"includes": paths}}
            if doc.routing is not None:
                entry["routing"] = doc.routing
            entries.append(entry)
        found = (await self.caller.send("POST", "/_mget", {"docs": entries}, self.vector_params)).ok().get("docs")
        return [d.get("_source") if isinstance(d, dict) else None for d in found or []]

    async def _diversify(self, node: Retriever, child: list[Ranked]) -> list[Ranked]:
        spec = node.diversify
        name = spec["field"]
        if not child:
            return []
        paths = [name, inference_path(name) + ".chunks"]
        sources = await self._sources(child, paths)
        vectors = [stages.doc_vectors(src, name, self._semantic(name, doc.index))
                   for doc, src in zip(child, sources, strict=True)]
        stages.check_vectors(name, vectors)
        query = spec.get("query_vector")
        query_vector = np.asarray(query, dtype=np.float32) if isinstance(query, list) else None
        return stages.mmr(child, vectors, query_vector, spec["lambda"], spec["size"])

    async def _chunk_inputs(self, node: Retriever, docs: list[Ranked], texts: list[str]) -> list[Any]:
        name = node.rerank_field or ""
        config = node.chunk_rescorer or {}
        sources = await self._sources(docs, [name, inference_path(name) + ".chunks"])
        return [stages.rescorer_inputs(src, name, text, config, node.inference_text or "",
                                       self._semantic(name, doc.index))
                for doc, src, text in zip(docs, sources, texts, strict=True)]

    async def _field_texts(self, docs: list[Ranked], field_name: str) -> list[str]:
        if not docs:
            return []
        entries = []
        for doc in docs:
            entry: dict[str, Any] = {"_index": doc.index, "_id": doc.id, "_source": {"includes": [field_name]}}
            if doc.routing is not None:
                entry["routing"] = doc.routing
            entries.append(entry)
        found = (await self.caller.send("POST", "/_mget", {"docs": entries})).ok().get("docs") or []
        texts = []
        for doc in found:
            value = get_path(doc.get("_source") or {}, field_name) if isinstance(doc, dict) else MISSING
            if isinstance(value, list):
                value = value[0] if value else None
            texts.append("" if value is MISSING or value is None else str(value))
        return texts
