"""The search service the HTTP handlers call: cheap checks of whether a request needs parsing
at all, planning (:mod:`.planner`), running a planned search or ``_msearch`` (forwarded with
the hits finished, or executed here for compound retrievers), and the gets by id."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterable, Mapping
from typing import Any

from elasticsearch import AsyncElasticsearch

from ...errors import EsError
from ...es.caller import Answer, Caller, index_path
from ...es.capabilities import Capabilities
from ...es.node import NodeVersion
from ...es.upstream import Upstream
from ..metadata import SemanticIndices
from ..queries.embedder import Embedder
from ..queries.errors import parsing_error
from ..query_cache import QueryEmbeddingCache
from .catalog import IndexCatalog
from .compound import completed_async, execute_compound
from .hits import finish
from .plan import Plan, hide_inference, hide_inference_params
from .planner import Planner, mentions_inference


class SemanticSearch:
    """Search over semantic_text and the inference queries, for the HTTP handlers."""

    def __init__(self, *, endpoints: Any, semantic: SemanticIndices, es: AsyncElasticsearch, upstream: Upstream,
                 cache: QueryEmbeddingCache | None = None, timeout_s: float | None = 30.0,
                 node_version: NodeVersion | None = None) -> None:
        self.endpoints = endpoints
        self.node_version = node_version or NodeVersion(es)
        self.semantic = semantic
        self.upstream = upstream
        self.cache = cache or QueryEmbeddingCache()
        self.embedder = Embedder(endpoints, self.cache, timeout_s)
        self.catalog = IndexCatalog(es, semantic)
        self.caps = Capabilities(es)
        self.timeout_s = timeout_s
        self.planner = Planner(self.catalog, self.caps, self.embedder, self.node_version)

    # -- cheap checks ------------------------------------------------------------------------------
    async def has_semantic(self, expression: str | None) -> bool:
        return bool(await self.semantic.resolve(expression or "_all"))

    mentions_inference = staticmethod(mentions_inference)

    async def needs_parsing(self, expression: str | None, raw: bytes) -> bool:
        if self.mentions_inference(raw):
            return True
        known = self.semantic.resolved(expression or "_all")  # most searches: no wait at all
        return bool(known) if known is not None else await self.has_semantic(expression)

    async def any_semantic(self, expressions: Iterable[str | None]) -> bool:
        for expression in expressions:
            if await self.has_semantic(expression):
                return True
        return False

    # -- planning ----------------------------------------------------------------------------------
    async def plan(self, index: str | None, params: Mapping[str, str], body: Any) -> Plan:
        return await self.planner.plan(index, params, body)

    async def count_body(self, index: str | None, params: Mapping[str, str], body: Any) -> dict[str, Any] | None:
        """A ``_count`` body with its query rewritten; None when there is nothing to rewrite."""
        return await self.planner.count_body(index, params, body)

    # -- running -----------------------------------------------------------------------------------
    async def search(self, caller: Caller, plan: Plan, endpoint: str = "_search") -> Answer:
        """Run a planned search; the answer is what the client gets."""
        started = plan.started
        if plan.execute_here:
            body = await execute_compound(caller, plan, started, endpoints=self.endpoints,
                                          timeout_s=self.timeout_s, node_version=self.node_version)
            if endpoint == "_async_search":
                body = completed_async(body, started)
            return Answer(200, body, filter_path=plan.post.filter_path)
        answer = await caller.send("POST", index_path(plan.index, endpoint), plan.body, plan.params)
        if answer.status >= 300:
            return answer
        result = answer.body
        target = result.get("response") if endpoint == "_async_search" and isinstance(result, dict) else result
        if isinstance(target, dict):
            await finish(caller, plan, target, self.node_version)
            if isinstance(target.get("took"), int):
                target["took"] = int((time.monotonic() - started) * 1000)
        return Answer(answer.status, result, filter_path=plan.post.filter_path)

    # -- _msearch ----------------------------------------------------------------------------------
    async def plan_msearch(self, index: str | None, params: Mapping[str, str],
                           items: list[tuple[dict[str, Any], Any]]) -> list[Plan | EsError]:
        async def one(header: dict[str, Any], body: Any) -> Plan | EsError:
            target = header.get("index")
            if target is not None and not isinstance(target, str) and not (
                    isinstance(target, list) and all(isinstance(t, str) for t in target)):
                return parsing_error("[msearch] header [index] must be a string or an array of strings")
            expression = ",".join(target) if isinstance(target, list) else (target or index)
            item_params = {k: _param(v) for k, v in header.items() if k != "index"}
            try:
                return await self.plan(expression, item_params, body)
            except EsError as err:
                return err

        return list(await asyncio.gather(*(one(h, b) for h, b in items)))

    async def msearch(self, caller: Caller, index: str | None, params: Mapping[str, str],
                      items: list[tuple[dict[str, Any], Any]], plans: list[Plan | EsError]) -> Answer:
        started = time.monotonic()
        params = dict(params)
        filter_path = None
        if "filter_path" in params and any(isinstance(p, Plan) and (p.post.needed or p.execute_here) for p in plans):
            filter_path = params.pop("filter_path")
        results: list[Any] = [None] * len(plans)
        forwarded = [i for i, p in enumerate(plans) if isinstance(p, Plan) and not p.execute_here]
        here = [i for i, p in enumerate(plans) if isinstance(p, Plan) and p.execute_here]
        for i, p in enumerate(plans):
            if isinstance(p, EsError):
                results[i] = p.to_body()

        async def forward() -> None:
            if not forwarded:
                return
            lines: list[Any] = []
            for i in forwarded:
                plan = plans[i]
                assert isinstance(plan, Plan)
                lines.extend([items[i][0], plan.body])
            answer = (await caller.send("POST", index_path(index, "_msearch"), lines, params, ndjson=True)).ok()
            responses = answer.get("responses") or []
            for i, response in zip(forwarded, responses, strict=False):
                plan = plans[i]
                assert isinstance(plan, Plan)
                if isinstance(response, dict) and response.get("status", 200) < 300:
                    await finish(caller, plan, response, self.node_version)
                results[i] = response

        async def execute(i: int) -> None:
            plan = plans[i]
            assert isinstance(plan, Plan)
            try:
                answer = await self.search(caller, plan)
                body = answer.body
                if isinstance(body, dict) and "error" not in body:
                    body["status"] = answer.status
                results[i] = body
            except EsError as err:
                results[i] = err.to_body()

        await asyncio.gather(forward(), *(execute(i) for i in here))
        took = int((time.monotonic() - started) * 1000)
        return Answer(200, {"took": took, "responses": results}, filter_path=filter_path)

    # -- documents by id -----------------------------------------------------------------------------
    async def doc_params(self, index: str, params: Mapping[str, str]) -> dict[str, str] | None:
        """The URL parameters a get of a document (or its source) needs to hide the internals;
        None when the request can go through unchanged."""
        if not await self.has_semantic(index):
            return None
        out = dict(params)
        return out if hide_inference_params(out) else None

    async def mget_request(self, index: str | None, params: Mapping[str, str],
                           body: Any) -> tuple[dict[str, str], Any] | None:
        if not isinstance(body, dict):
            return None
        docs = body.get("docs") if isinstance(body.get("docs"), list) else []
        expressions = {d.get("_index") for d in docs if isinstance(d, dict) and d.get("_index")}
        if index:
            expressions.add(index)
        if not await self.any_semantic(expressions):
            return None
        out_params = dict(params)
        changed = hide_inference_params(out_params)
        body = copy.deepcopy(body)
        for doc in body.get("docs") or []:
            if isinstance(doc, dict) and "_source" in doc:
                changed |= hide_inference(doc, {})
        return (out_params, body) if changed else None


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
