"""The rewriter's state and its walk: compound queries are walked down to the leaves the
query families (:mod:`.semantic`, :mod:`.knn`, :mod:`.sparse`) rewrite, and the indices a
field is semantic_text in are grouped by the endpoint that embeds its queries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import illegal_argument
from ...protocol.service import TaskType
from ..metadata import SemanticField
from ..query_cache import QueryEmbedding
from .context import RewriteContext, SemanticLeaf
from .embedder import TEXT_EMBEDDING_RESULT, TEXT_EXPANSION_RESULT, _WrongTask
from .errors import ShardFailure

_CHILD_KEYS: dict[str, tuple[str, ...]] = {
    "bool": ("must", "should", "filter", "must_not"),
    "dis_max": ("queries",),
    "constant_score": ("filter",),
    "boosting": ("positive", "negative"),
    "script_score": ("query",),
    "nested": ("query",),
    "has_child": ("query",),
    "has_parent": ("query",),
    "pinned": ("organic",),
    "rule": ("organic",),
}


class RewriterBase:
    """What every query family shares while one request's queries are rewritten."""

    def __init__(self, ctx: RewriteContext) -> None:
        self.ctx = ctx
        self.leaves: list[SemanticLeaf] = []
        # index -> the failure Elasticsearch would report for its shards
        self.failures: dict[str, dict[str, Any]] = {}
        self.changed = False
        # query name -> its rewrite (the query families add theirs: :class:`~.rewriter.QueryRewriter`)
        self._handlers: dict[str, Callable[[Any], Awaitable[dict[str, Any]]]] = {
            "function_score": self._function_score,
        }

    @property
    def all_indices(self) -> list[str]:
        return list(self.ctx.indices)

    def record(self, failure: ShardFailure) -> None:
        for index, cause in failure.failures.items():
            self.failures.setdefault(index, cause)

    # -- walking ---------------------------------------------------------------------------
    async def query(self, query: Any) -> Any:
        if not isinstance(query, dict) or len(query) != 1:
            return query
        (kind, body), = query.items()
        handler = self._handlers.get(kind)
        if handler is not None:
            return await handler(body)
        return await self.walk(query)

    async def walk(self, query: dict[str, Any]) -> Any:
        """A compound query with its child queries rewritten."""
        (kind, body), = query.items()
        keys = _CHILD_KEYS.get(kind)
        if keys is None or not isinstance(body, dict):
            return query
        out = dict(body)
        for key in keys:
            if key in out:
                out[key] = await self.rewrite_each(out[key])
        return {kind: out}

    async def rewrite_each(self, value: Any) -> Any:
        if isinstance(value, list):
            return list(await asyncio.gather(*(self.query(v) for v in value)))
        return await self.query(value)

    async def _function_score(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"function_score": body}
        out = dict(body)
        if "query" in out:
            out["query"] = await self.query(out["query"])
        if isinstance(out.get("functions"), list):
            functions = []
            for function in out["functions"]:
                if isinstance(function, dict) and "filter" in function:
                    function = {**function, "filter": await self.query(function["filter"])}
                functions.append(function)
            out["functions"] = functions
        return {"function_score": out}

    # -- per-index bookkeeping ---------------------------------------------------------------
    def split(self, field_name: str) -> tuple[dict[str, list[tuple[str, SemanticField]]], list[str]]:
        """Indices where ``field_name`` is semantic_text grouped by the endpoint that embeds its
        queries, and the other indices."""
        groups: dict[str, list[tuple[str, SemanticField]]] = {}
        others: list[str] = []
        for name, info in self.ctx.indices.items():
            fld = info.semantic_field(field_name)
            if fld is None:
                others.append(name)
            else:
                groups.setdefault(fld.query_inference_id, []).append((name, fld))
        return groups, others

    def indexed_groups(self, field_name: str, task_type: str, query_name: str
                       ) -> list[tuple[str, frozenset[str], SemanticField]]:
        """(endpoint, indices, field) for the indices where ``field_name`` is semantic_text with
        documents indexed; a field whose model does not fit the query is a shard failure."""
        groups, _ = self.split(field_name)
        out = []
        for inference_id, members in groups.items():
            indices = frozenset(i for i, f in members if f.model_settings)
            if not indices:
                continue
            fld = members[0][1]
            actual = (fld.model_settings or {}).get("task_type")
            if actual != task_type:
                self.record(ShardFailure(indices, "illegal_argument_exception",
                                         f"[{query_name}] queries are not supported on field [{fld.name}]: it is "
                                         f"a [semantic_text] field using a [{actual}] model"))
                continue
            out.append((inference_id, indices, fld))
        return out

    async def _model_embedding(self, model_id: str, text: str, task: TaskType) -> QueryEmbedding:
        """A query embedded by a model named in the query (model_id / inference_id)."""
        try:
            return await self.ctx.embedder.embed(model_id, text, task)
        except _WrongTask as wrong:
            expected = TEXT_EMBEDDING_RESULT if task is TaskType.TEXT_EMBEDDING else TEXT_EXPANSION_RESULT
            raise illegal_argument(f"expected a result of type [{expected}] received [{wrong.result_name}]. "
                                   f"Is [{model_id}] a compatible model?") from None
