"""A search request rewritten into a :class:`~.plan.Plan`: its inference queries rewritten
(:mod:`sidecar.semantic.queries`), its retriever tree built, the indices whose queries fail
left out, and what the answer needs noted."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import action_request_validation, illegal_argument
from ...es.capabilities import Capabilities
from ...es.node import NodeVersion
from ..queries.clauses import listify
from ..queries.context import IndexInfo, RewriteContext, SemanticLeaf
from ..queries.embedder import Embedder
from ..queries.errors import ShardFailure, parsing_error
from ..queries.rewriter import KEYWORDS, QueryRewriter
from .catalog import IndexCatalog
from .native import NativeRetrievers
from .plan import (
    Plan,
    asks_for_vectors,
    contains_match_all,
    hide_inference,
    names_inference_fields,
    plan_fields,
    plan_highlight,
    semantic_field_names,
)
from .retrievers import Retriever, build_retriever, int_param

# Body keys Elasticsearch refuses next to a retriever (as it names them).
NOT_WITH_RETRIEVER = {"query": "query", "sub_searches": "query", "knn": "knn", "search_after": "search_after",
                      "terminate_after": "terminate_after", "sort": "sort", "rescore": "rescore",
                      "min_score": "min_score", "rank": "rank"}


_KEYWORDS = re.compile(b"|".join(KEYWORDS))


def mentions_inference(raw: bytes) -> bool:
    """Whether a body may hold something to rewrite (anything else passes through untouched)."""
    return _KEYWORDS.search(raw) is not None


class Planner:
    """Plans the searches of one service: index metadata from ``catalog``, what the node runs
    itself from ``caps``, query texts embedded by ``embedder``."""

    def __init__(self, catalog: IndexCatalog, caps: Capabilities, embedder: Embedder,
                 node_version: NodeVersion) -> None:
        self.catalog = catalog
        self.caps = caps
        self.embedder = embedder
        self.node_version = node_version
        self.native = NativeRetrievers(caps.es)

    async def _rewriter(self, index: str | None, params: Mapping[str, str],
                        body: dict[str, Any]) -> tuple[QueryRewriter, dict[str, IndexInfo]]:
        expression = None if isinstance(body.get("pit"), dict) else index
        targets = await self.catalog.targets(expression, params.get("expand_wildcards"))
        size = params.get("size", body.get("size"))
        ctx = RewriteContext(indices=targets, embedder=self.embedder, field_types=self.catalog.field_types,
                             size=int(size) if isinstance(size, (int, str)) and str(size).isdigit() else None,
                             native_sparse=True)
        if mentions_inference(orjson.dumps(body)):
            ctx.native_sparse = await self.caps.native_sparse_vector()
        return QueryRewriter(ctx), targets

    async def count_body(self, index: str | None, params: Mapping[str, str], body: Any) -> dict[str, Any] | None:
        """A ``_count`` body with its query rewritten; None when there is nothing to rewrite."""
        if not isinstance(body, dict) or "query" not in body:
            return None
        body = copy.deepcopy(body)
        rw, targets = await self._rewriter(index, params, body)
        body["query"] = await rw.query(body["query"])
        if rw.failures:
            excluded = self._failed(rw, targets)
            body["query"] = {"bool": {"must": body["query"], "must_not": excluded}}
        return body if rw.changed else None

    @staticmethod
    def _failed(rw: QueryRewriter, targets: Mapping[str, IndexInfo]) -> dict[str, Any]:
        """Raise when every index fails; else the filter that leaves the failed ones out."""
        if set(rw.failures) >= set(targets):
            raise ShardFailure.of(rw.failures)
        return {"terms": {"_index": sorted(rw.failures)}}

    async def plan(self, index: str | None, params: Mapping[str, str], body: Any) -> Plan:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise parsing_error("request body or source parameter is required")
        body = copy.deepcopy(body)
        params = dict(params)
        rw, targets = await self._rewriter(index, params, body)
        plan = Plan(index, params, body, targets)
        query_leaves: list[SemanticLeaf] = []
        # What the highlighter sees as the query (no query at all is match_all).
        match_all = "query" not in body and "knn" not in body and "retriever" not in body
        match_all = match_all or contains_match_all(body.get("query")) or contains_match_all(body.get("retriever"))

        if "retriever" in body:
            plan.retriever = await build_retriever(body["retriever"], rw, await self.node_version.features())
            query_leaves = list(rw.leaves)
            if await self._runs_here(plan.retriever, targets):
                plan.execute_here = True
            else:
                body["retriever"] = plan.retriever.to_json()
        if "query" in body:
            body["query"] = await rw.query(body["query"])
            query_leaves = list(rw.leaves)
        if "knn" in body:
            body["knn"] = await rw.knn_section(body["knn"])
        for key in ("post_filter",):
            if key in body:
                body[key] = await rw.query(body[key])
        for rescore in listify(body.get("rescore")):
            if isinstance(rescore, dict) and isinstance(rescore.get("query"), dict) \
                    and "rescore_query" in rescore["query"]:
                rescore["query"]["rescore_query"] = await rw.query(rescore["query"]["rescore_query"])
        for sub in listify(body.get("sub_searches")):
            if isinstance(sub, dict) and "query" in sub:
                sub["query"] = await rw.query(sub["query"])

        if rw.failures:
            self._exclude_failed(plan, rw)
        semantic_fields = semantic_field_names(targets)
        plan.changed = rw.changed
        if "highlight" in body and isinstance(body["highlight"], dict):
            plan.changed |= await plan_highlight(plan, rw, semantic_fields, query_leaves, match_all)
        if semantic_fields:
            plan.post.source_inference_fields = (asks_for_vectors(body, plan.params)
                                                 and (await self.node_version.features()).source_inference_fields)
            plan.post.inference_fields = names_inference_fields(body, plan.params)
            plan.changed |= hide_inference(body, plan.params)
            plan.changed |= plan_fields(plan, semantic_fields)
            if plan.post.chunk_fields and not (await self.node_version.features()).chunks_format:
                name = sorted(plan.post.chunk_fields)[0]
                raise illegal_argument(f"Field [{name}] of type [semantic_text] doesn't support formats.")
        if plan.execute_here:
            self._validate_compound(plan)
        if (plan.post.needed or plan.execute_here) and "filter_path" in plan.params:
            plan.post.filter_path = plan.params.pop("filter_path")
        return plan

    async def _runs_here(self, root: Retriever, targets: Mapping[str, IndexInfo]) -> bool:
        """Whether the tree must run here: some retriever in it is one the node lacks (and the
        sidecar computes), or a ``diversify`` over a semantic_text field. A retriever neither
        has (``rule`` without query rules) answers as the node does."""
        semantic = semantic_field_names(targets)
        here = False
        for node in _walk(root):
            if node.kind == "text_similarity_reranker":
                here = True
            elif node.kind in ("rrf", "linear", "pinned") and not await self.native.has(node.kind):
                here = True
            elif node.kind in ("rule", "diversify") and not await self.native.has(node.kind):
                raise parsing_error(f"unknown retriever [{node.kind}]")
            elif node.kind == "diversify" and node.diversify.get("field") in semantic:
                here = True
        if here:
            for node in _walk(root):
                if node.kind == "rule":
                    raise illegal_argument("[rule] cannot be combined with a retriever the node does not run")
        return here

    def _exclude_failed(self, plan: Plan, rw: QueryRewriter) -> None:
        """Indices whose shards would fail answer nothing (their failures are reported)."""
        excluded = self._failed(rw, plan.targets)
        body = plan.body
        if "query" in body:
            body["query"] = {"bool": {"must": body["query"], "must_not": excluded}}
        if "knn" in body:
            for section in listify(body["knn"]):
                if isinstance(section, dict):
                    section["filter"] = [*listify(section.get("filter")), {"bool": {"must_not": excluded}}]
        if plan.retriever is not None:
            plan.retriever.add_filter({"bool": {"must_not": excluded}})
            if not plan.execute_here:
                body["retriever"] = plan.retriever.to_json()
        plan.post.failures = dict(rw.failures)
        plan.post.shards = {index: plan.targets[index].shards for index in rw.failures if index in plan.targets}

    @staticmethod
    def _validate_compound(plan: Plan) -> None:
        body = plan.body
        specified = []
        for key, name in NOT_WITH_RETRIEVER.items():
            if key in body and name not in specified:
                specified.append(name)
        if specified:
            raise illegal_argument(f"cannot specify [retriever] and [{', '.join(specified)}]")
        root = plan.retriever
        assert root is not None
        size = int_param(plan.params.get("size", body.get("size")), "size", 10)
        problems = []
        if size > root.window:
            window = "window_size" if root.kind == "rescorer" else "rank_window_size"
            problems.append(f"[{root.kind}] requires [{window}: {root.window}] be greater than or equal to "
                            f"[size: {size}]")
        if "scroll" in plan.params:
            problems.append(f"cannot specify [{root.kind}] and [scroll]")
        if plan.params.get("allow_partial_search_results") == "true":
            problems.append(f"cannot specify [{root.kind}] and [allow_partial_search_results]")
        if problems:
            raise action_request_validation(*problems)


def _walk(node: Retriever):
    yield node
    for child in node.children:
        yield from _walk(child)
