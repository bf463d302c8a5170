"""``semantic``, and ``match`` on a semantic_text field: the query text embedded once per
endpoint, then the nested query over the field's chunks Elasticsearch builds itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ..layout import chunks_path, embeddings_path
from ..metadata import SemanticField
from ..query_cache import DENSE, SPARSE, QueryEmbedding
from .clauses import check_spec, combine_per_index, decorate, index_filtered, text_value
from .context import SemanticLeaf
from .embedder import TEXT_EMBEDDING_RESULT, TEXT_EXPANSION_RESULT, _WrongTask
from .errors import ShardFailure, parsing_error
from .sparse import SparseQueries

DEFAULT_K = 10
# Where a semantic_text field's chunks lived before 8.18: ``<field>.inference.chunks``.
LEGACY_CHUNKS = ".inference.chunks"


class SemanticQueries(SparseQueries):
    """``semantic`` and ``match`` on semantic_text (a sparse model's leaf is a weighted-token query)."""

    async def _check_not_semantic(self, field_name: str, indices: list[str], query_name: str) -> None:
        """Elasticsearch's error for a semantic query on a field of another type."""
        if not indices:
            return
        types = await self.ctx.field_types(field_name, indices)
        bad = {index: mapping for index, mapping in types.items() if mapping is not None}
        for index, mapping in bad.items():
            self.record(ShardFailure([index], "illegal_argument_exception",
                                     f"Field [{field_name}] of type [{mapping.get('type', 'object')}] does not "
                                     f"support {query_name} queries"))

    async def _embed_groups(self, groups: dict[str, list[tuple[str, SemanticField]]], text: str,
                            field_name: str) -> dict[str, QueryEmbedding | None]:
        """Embed ``text`` once per endpoint, as Elasticsearch does while rewriting the query even
        where the field has no documents yet (an endpoint that no longer exists fails the search)."""
        wanted = list(groups)
        results = await asyncio.gather(*(self._embed_for_field(i, text, groups[i]) for i in wanted))
        return dict(zip(wanted, results, strict=True))

    async def _embed_for_field(self, inference_id: str, text: str,
                               members: list[tuple[str, SemanticField]]) -> QueryEmbedding | None:
        try:
            return await self.ctx.embedder.embed(inference_id, text)
        except _WrongTask as wrong:
            if not any(f.model_settings for _, f in members):
                return None  # no documents: the field matches nothing whatever the endpoint
            fld = members[0][1]
            expected = TEXT_EXPANSION_RESULT if (fld.model_settings or {}).get("task_type") == "sparse_embedding" \
                else TEXT_EMBEDDING_RESULT
            self.record(ShardFailure([i for i, _ in members], "illegal_argument_exception",
                                     _mismatch_message(fld, expected, wrong.result_name)))
            return None

    # -- semantic ----------------------------------------------------------------------------
    async def _semantic(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parsing_error("[semantic] query malformed, no start_object after query name")
        check_spec("semantic", body, ("field", "query", "boost", "_name", "lenient"), ("field", "query"),
                   unknown="[{kind}] unknown field [{key}]", missing="[{kind}] requires a {key} value")
        field_name = text_value(body["field"], "field")
        text = text_value(body["query"], "query")
        return await self.semantic(field_name, text, body.get("boost"), body.get("_name"),
                                   lenient=bool(body.get("lenient", False)))

    async def semantic(self, field_name: str, text: str, boost: Any = None, name: Any = None, *,
                       lenient: bool = False, only: Iterable[str] | None = None) -> dict[str, Any]:
        self.changed = True
        groups, others = self.split(field_name)
        scope = self.all_indices
        if only is not None:
            scope = list(only)
            keep = set(only)
            groups = {k: [(i, f) for i, f in v if i in keep] for k, v in groups.items()}
            groups = {k: v for k, v in groups.items() if v}
            others = [i for i in others if i in keep]
        if not lenient:
            await self._check_not_semantic(field_name, others, "semantic")
        embeddings = await self._embed_groups(groups, text, field_name)
        clauses: list[tuple[frozenset[str], dict[str, Any]]] = []
        for inference_id, members in groups.items():
            embedding = embeddings.get(inference_id)
            with_docs = [(index, fld) for index, fld in members if fld.model_settings]
            if embedding is None or not with_docs:
                continue
            # Indices whose fields agree on model settings share one clause.
            by_settings: dict[str, list[tuple[str, SemanticField]]] = {}
            for index, fld in with_docs:
                by_settings.setdefault(repr(sorted((fld.model_settings or {}).items())), []).append((index, fld))
            for same in by_settings.values():
                indices = frozenset(i for i, _ in same)
                try:
                    clauses.append((indices, self._semantic_leaf(same[0][1], embedding, indices, boost, name)))
                except ShardFailure as failure:
                    self.record(failure)
        return combine_per_index(clauses, scope, name)

    def _semantic_leaf(self, fld: SemanticField, embedding: QueryEmbedding, indices: frozenset[str],
                       boost: Any, name: Any) -> dict[str, Any]:
        settings = fld.model_settings or {}
        task = settings.get("task_type")
        if task == "sparse_embedding":
            if embedding.kind != SPARSE:
                raise ShardFailure(indices, "illegal_argument_exception",
                                   _mismatch_message(fld, TEXT_EXPANSION_RESULT, TEXT_EMBEDDING_RESULT))
            child = self.sparse_leaf(embeddings_path(fld.name), embedding.tokens or (), None, None)
        elif task == "text_embedding":
            if embedding.kind != DENSE:
                raise ShardFailure(indices, "illegal_argument_exception",
                                   _mismatch_message(fld, TEXT_EMBEDDING_RESULT, TEXT_EXPANSION_RESULT))
            vector = list(embedding.vector or ())
            dims = len(vector) * (8 if settings.get("element_type") == "bit" else 1)
            if settings.get("dimensions") is not None and dims != settings["dimensions"]:
                raise ShardFailure(indices, "illegal_argument_exception", _dims_message(fld, dims))
            # k = max(size, 10) as Elasticsearch sets it (so size 0 and _count still match).
            knn = {"field": embeddings_path(fld.name), "query_vector": vector,
                   "k": max(self.ctx.size or DEFAULT_K, DEFAULT_K)}
            child = {"knn": knn}
        else:
            raise ShardFailure(indices, "illegal_state_exception",
                               f"Field [{fld.name}] is configured to use an inference endpoint with an "
                               f"unsupported task type [{task}]")
        self.leaves.append(SemanticLeaf(fld.name, indices, embedding))
        nested = {"path": chunks_path(fld.name), "query": child, "score_mode": "max", "ignore_unmapped": True}
        return decorate({"nested": nested}, boost, name)

    # -- exists on semantic_text ---------------------------------------------------------------
    async def _exists(self, body: Any) -> dict[str, Any]:
        """A semantic_text field exists where it has embeddings (``SemanticTextFieldType.existsQuery``:
        no match before the field's model settings are known)."""
        field_name = body.get("field") if isinstance(body, dict) else None
        if not isinstance(field_name, str):
            return {"exists": body}
        groups, others = self.split(field_name)
        if not groups:
            return {"exists": body}
        self.changed = True
        boost, name = body.get("boost"), body.get("_name")
        # The field's path is the same in every index; where its embeddings are not mapped yet
        # the nested query matches nothing.
        semantic = frozenset(index for members in groups.values() for index, _ in members)
        nested = {"path": chunks_path(field_name), "query": {"exists": {"field": embeddings_path(field_name)}},
                  "score_mode": "none", "ignore_unmapped": True}
        clauses = [(semantic, decorate({"constant_score": {"filter": {"nested": nested}}}, boost, name))]
        if others:
            clauses.append((frozenset(others), {"exists": body}))
        return combine_per_index(clauses, self.all_indices, name)

    # -- nested over the pre-8.18 layout -------------------------------------------------------
    async def _nested(self, body: Any) -> dict[str, Any]:
        """``nested`` on ``<field>.inference.chunks`` (the layout before 8.18, which saved queries
        still name): Elasticsearch resolves it onto the semantic_text field's chunks."""
        path = body.get("path") if isinstance(body, dict) else None
        field_name = path[: -len(LEGACY_CHUNKS)] if isinstance(path, str) and path.endswith(LEGACY_CHUNKS) else None
        groups, others = self.split(field_name) if field_name else ({}, [])
        if not groups:
            return await self.walk({"nested": body})
        legacy = {path + ".embeddings": embeddings_path(field_name), path: chunks_path(field_name)}
        semantic = frozenset(index for members in groups.values() for index, _ in members)
        moved = _renamed({**body, "path": chunks_path(field_name)}, legacy)
        clauses = [(semantic, await self.walk({"nested": moved}))]
        if others:
            clauses.append((frozenset(others), await self.walk({"nested": body})))
        self.changed = True
        return combine_per_index(clauses, self.all_indices)

    # -- match on semantic_text ----------------------------------------------------------------
    async def _match(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or len(body) != 1:
            return {"match": body}
        (field_name, spec), = body.items()
        groups, others = self.split(field_name)
        if not groups:
            return {"match": body}
        if isinstance(spec, dict):
            text, boost, name = spec.get("query"), spec.get("boost"), spec.get("_name")
        else:
            text, boost, name = spec, None, None
        text = text_value(text, "query")
        if not others:
            return await self.semantic(field_name, text, boost, name)
        semantic_indices = [i for members in groups.values() for i, _ in members]
        semantic = await self.semantic(field_name, text, boost, name, lenient=True, only=semantic_indices)
        return {"bool": {"should": [index_filtered(semantic, semantic_indices),
                                    index_filtered({"match": body}, others)]}}


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every field name in ``names`` replaced (keys and ``field`` values)."""
    if isinstance(value, dict):
        return {names.get(k, k): (names.get(v, v) if k in ("field", "path") and isinstance(v, str)
                                  else _renamed(v, names)) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    return value


def _advice(fld: SemanticField) -> str:
    if fld.search_inference_id and fld.search_inference_id != fld.inference_id:
        return (f" Is the search inference endpoint [{fld.search_inference_id}] compatible with the inference "
                f"endpoint [{fld.inference_id}]?")
    return f" Has the configuration for inference endpoint [{fld.inference_id}] changed?"


def _mismatch_message(fld: SemanticField, expected: str, got: str) -> str:
    return f"Field [{fld.name}] expected query inference results to be of type [{expected}], got [{got}]." + \
        _advice(fld)


def _dims_message(fld: SemanticField, got: int) -> str:
    expected = (fld.model_settings or {}).get("dimensions")
    return (f"Field [{fld.name}] expected query inference results with {expected} dimensions, got {got} "
            "dimensions." + _advice(fld))
