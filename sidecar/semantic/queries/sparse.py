"""``sparse_vector``, ``text_expansion`` and ``weighted_tokens``: weighted tokens as the exact
bool-of-terms query Lucene runs, or the node's own ``sparse_vector`` query where Elasticsearch
would prune tokens (pruning needs the shard's term statistics)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...errors import illegal_argument
from ...protocol.service import TaskType
from ..layout import chunks_path, embeddings_path
from ..query_cache import SPARSE, QueryEmbedding
from .base import RewriterBase
from .clauses import check_spec, combine_per_index, decorate, terms_query, text_value
from .context import SemanticLeaf
from .errors import parsing_error

# Index versions from which a sparse_vector query prunes tokens unless told otherwise
# (IndexVersions.SPARSE_VECTOR_PRUNING_INDEX_OPTIONS_SUPPORT[_BACKPORT_8_X]).
PRUNING_DEFAULT_8X = (8_535_0_00, 9_000_0_00)
PRUNING_DEFAULT_9X = 9_031_0_00


def default_pruning(version_created: int) -> bool:
    low, high = PRUNING_DEFAULT_8X
    return low <= version_created < high or version_created >= PRUNING_DEFAULT_9X


def parse_pruning_config(value: Any) -> dict[str, Any]:
    """Validate ``pruning_config`` as ``TokenPruningConfig`` does; returns it with defaults."""
    if not isinstance(value, dict):
        raise parsing_error("[pruning_config] should be an object")
    known = ("tokens_freq_ratio_threshold", "tokens_weight_threshold", "only_score_pruned_tokens")
    for key in value:
        if key not in known:
            raise parsing_error(f"[pruning_config] unknown token [{key}]")
    ratio = value.get("tokens_freq_ratio_threshold", 5)
    weight = value.get("tokens_weight_threshold", 0.4)
    try:
        ratio = int(ratio)
        weight = float(weight)
    except (TypeError, ValueError):
        raise parsing_error("[pruning_config] has an invalid value") from None
    if ratio < 1 or ratio > 100:
        raise illegal_argument(f"[tokens_freq_ratio_threshold] must be between [1] and [100], got {float(ratio)}")
    if weight < 0 or weight > 1:
        raise illegal_argument("[tokens_weight_threshold] must be between 0 and 1")
    return {"tokens_freq_ratio_threshold": ratio, "tokens_weight_threshold": weight,
            "only_score_pruned_tokens": bool(value.get("only_score_pruned_tokens", False))}


class SparseQueries(RewriterBase):
    """Weighted-token queries; :meth:`sparse_leaf` also builds the leaf of a semantic query on a
    sparse model."""

    def sparse_leaf(self, field_path: str, tokens: Iterable[tuple[str, float]], prune: Any, pruning_config: Any,
                    boost: Any = None, name: Any = None, *, may_prune_by_default: bool = True) -> dict[str, Any]:
        """Weighted tokens on a sparse_vector field. Without pruning: the exact bool-of-terms
        query. With pruning (asked for, or Elasticsearch's default): the node's own query."""
        self.changed = True
        tokens = list(tokens)
        if prune is False or (prune is None and pruning_config is None and not may_prune_by_default):
            return terms_query(field_path, tokens, boost, name)
        if not self.ctx.native_sparse:
            return terms_query(field_path, tokens, boost, name)
        body: dict[str, Any] = {"field": field_path, "query_vector": dict(tokens)}
        if prune is not None:
            body["prune"] = prune
        if pruning_config is not None:
            body["pruning_config"] = pruning_config
        return decorate({"sparse_vector": body}, boost, name)

    def _prunes_by_default(self, indices: Iterable[str]) -> bool:
        return any(default_pruning(self.ctx.indices[i].version_created) for i in indices if i in self.ctx.indices)

    async def _sparse_tokens(self, inference_id: str, text: str) -> tuple[tuple[str, float], ...]:
        embedding = await self._model_embedding(inference_id, text, TaskType.SPARSE_EMBEDDING)
        return embedding.tokens or ()

    async def _sparse_vector(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parsing_error("[sparse_vector] query malformed, no start_object after query name")
        check_spec("sparse_vector", body, ("field", "query_vector", "inference_id", "query", "prune",
                                            "pruning_config", "boost", "_name"))
        field_name = body.get("field")
        if not isinstance(field_name, str):
            raise illegal_argument("[sparse_vector] requires a [field]")
        vector, inference_id, text = body.get("query_vector"), body.get("inference_id"), body.get("query")
        if (vector is not None and inference_id is not None) or ((vector is None) == (text is None)):
            raise illegal_argument("[sparse_vector] requires one of [query_vector] or [inference_id] for "
                                   "sparse_vector fields")
        prune = body.get("prune")
        config = parse_pruning_config(body["pruning_config"]) if body.get("pruning_config") is not None else None
        boost, name = body.get("boost"), body.get("_name")
        _, others = self.split(field_name)
        clauses: list[tuple[frozenset[str], dict[str, Any]]] = []
        for group_id, indices, fld in self.indexed_groups(field_name, "sparse_embedding", "sparse_vector"):
            tokens = _vector_tokens(vector) if vector is not None else \
                await self._sparse_tokens(inference_id or group_id, text_value(text, "query"))
            self.leaves.append(SemanticLeaf(fld.name, indices, QueryEmbedding(group_id, SPARSE, tokens=tuple(tokens))))
            child = self.sparse_leaf(embeddings_path(fld.name), tokens, prune, config,
                                     may_prune_by_default=self._prunes_by_default(indices))
            nested = {"path": chunks_path(fld.name), "query": child, "score_mode": "max", "ignore_unmapped": True}
            clauses.append((indices, decorate({"nested": nested}, boost, name)))
        if others:
            if vector is not None:
                tokens = _vector_tokens(vector)
            elif inference_id is None:
                raise illegal_argument("inference_id required to perform vector search on query string")
            else:
                tokens = await self._sparse_tokens(inference_id, text_value(text, "query"))
            clauses.append((frozenset(others), self.sparse_leaf(
                field_name, tokens, prune, config, boost, name,
                may_prune_by_default=self._prunes_by_default(others))))
        self.changed = True
        return combine_per_index(clauses, self.all_indices, name)

    @staticmethod
    def _single_field(kind: str, body: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(body, dict) or not body:
            raise parsing_error(f"[{kind}] query malformed, no start_object after query name")
        if len(body) != 1:
            raise parsing_error(f"[{kind}] query doesn't support multiple fields, found [{list(body)[0]}] "
                                f"and [{list(body)[1]}]")
        (field_name, spec), = body.items()
        if not isinstance(spec, dict):
            raise parsing_error(f"[{kind}] query malformed, no start_object after query name")
        return field_name, spec

    async def _text_expansion(self, body: Any) -> dict[str, Any]:
        field_name, spec = self._single_field("text_expansion", body)
        check_spec("text_expansion", spec, ("model_id", "model_text", "pruning_config", "boost", "_name"),
                   ("model_id", "model_text"), unknown="[{kind}] query does not support [{key}]")
        tokens = await self._sparse_tokens(spec["model_id"], text_value(spec["model_text"], "model_text"))
        return self._weighted(field_name, tokens, spec)

    async def _weighted_tokens(self, body: Any) -> dict[str, Any]:
        field_name, spec = self._single_field("weighted_tokens", body)
        check_spec("weighted_tokens", spec, ("tokens", "pruning_config", "boost", "_name"))
        raw = spec.get("tokens")
        if isinstance(raw, list):
            merged: dict[str, Any] = {}
            for item in raw:
                if isinstance(item, dict):
                    merged.update(item)
            raw = merged
        if not isinstance(raw, dict) or not raw:
            raise illegal_argument("[weighted_tokens] requires at least one token")
        return self._weighted(field_name, _vector_tokens(raw), spec)

    def _weighted(self, field_name: str, tokens: Iterable[tuple[str, float]], spec: dict[str, Any]) -> dict:
        """text_expansion / weighted_tokens: every token, unless a pruning_config asks for pruning."""
        config = parse_pruning_config(spec["pruning_config"]) if spec.get("pruning_config") is not None else None
        prune = True if config is not None else False
        return self.sparse_leaf(field_name, tokens, prune, config, spec.get("boost"), spec.get("_name"))


def _vector_tokens(vector: Any) -> list[tuple[str, float]]:
    if not isinstance(vector, dict):
        raise parsing_error("[query_vector] must be an object of token weights")
    out = []
    for token, weight in vector.items():
        try:
            out.append((str(token), float(weight)))
        except (TypeError, ValueError):
            raise parsing_error(f"Illegal weight for token: [{token}], expected floating point") from None
    return out
