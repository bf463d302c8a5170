"""``knn`` (query and search section) and ``query_vector_builder``: a field that is
semantic_text in some indices becomes the knn over its chunk embeddings there."""

from __future__ import annotations

from typing import Any

from ...errors import illegal_argument
from ...protocol.service import TaskType
from ..layout import chunks_path, embeddings_path
from ..query_cache import DENSE, QueryEmbedding
from .base import RewriterBase
from .clauses import decorate, listify, text_value
from .context import SemanticLeaf
from .errors import parsing_error


class KnnQueries(RewriterBase):
    """The ``knn`` query and search section, and the query vectors their builders ask for."""

    async def vector_from_builder(self, builder: Any, default_model: str | None = None) -> list[Any]:
        if not isinstance(builder, dict) or list(builder) != ["text_embedding"]:
            raise parsing_error("[query_vector_builder] unknown query vector builder; expected [text_embedding]")
        spec = builder["text_embedding"]
        if not isinstance(spec, dict):
            raise parsing_error("[text_embedding] must be an object")
        model_id = spec.get("model_id") or default_model
        if model_id is None:
            raise illegal_argument("[model_id] must not be null.")
        embedding = await self._model_embedding(model_id, text_value(spec.get("model_text"), "model_text"),
                                                TaskType.TEXT_EMBEDDING)
        self.changed = True
        return list(embedding.vector or ())

    async def knn_body(self, knn: dict[str, Any], *, section: bool = False) -> list[dict[str, Any]]:
        """A knn search section or query body rewritten; a field that is semantic_text in some
        indices becomes the knn over its chunk embeddings there (one body per endpoint)."""
        if not isinstance(knn, dict):
            return [knn]
        knn = dict(knn)
        if "filter" in knn:
            knn["filter"] = await self.rewrite_each(knn["filter"])
        if "query_vector_builder" in knn and knn.get("query_vector") is not None:
            raise illegal_argument("cannot provide both [query_vector_builder] and [query_vector]")
        field_name = knn.get("field")
        groups, others = self.split(field_name) if isinstance(field_name, str) else ({}, self.all_indices)
        if not groups:
            if "query_vector_builder" in knn:
                knn["query_vector"] = await self.vector_from_builder(knn.pop("query_vector_builder"))
            return [knn]
        self.changed = True
        bodies: list[dict[str, Any]] = []
        for inference_id, indices, fld in self.indexed_groups(field_name, "text_embedding", "knn"):
            body = dict(knn)
            body["field"] = embeddings_path(fld.name)
            if "query_vector_builder" in body:
                body["query_vector"] = await self.vector_from_builder(body.pop("query_vector_builder"), inference_id)
            vector = body.get("query_vector")
            if isinstance(vector, list):
                self.leaves.append(SemanticLeaf(fld.name, indices, QueryEmbedding(inference_id, DENSE,
                                                                                  vector=tuple(vector))))
            bodies.append(self._restrict_knn(body, indices, section, fld.name))
        if others:
            rest = dict(knn)
            if "query_vector_builder" in rest:
                rest["query_vector"] = await self.vector_from_builder(rest.pop("query_vector_builder"))
            bodies.append(self._restrict_knn(rest, frozenset(others), section, None))
        return bodies

    def _restrict_knn(self, body: dict[str, Any], indices: frozenset[str], section: bool,
                      semantic_field: str | None) -> dict[str, Any]:
        body = dict(body)
        if not indices >= frozenset(self.all_indices):
            filters = listify(body.get("filter"))
            body["filter"] = [*filters, {"terms": {"_index": sorted(indices)}}]
        if section or semantic_field is None:
            return body
        boost, name = body.pop("boost", None), body.pop("_name", None)
        nested = {"path": chunks_path(semantic_field), "query": {"knn": body}, "score_mode": "max",
                  "ignore_unmapped": True}
        return decorate({"nested": nested}, boost, name)

    async def _knn_query(self, body: Any) -> dict[str, Any]:
        bodies = await self.knn_body(body)
        queries = [b if "nested" in b else {"knn": b} for b in bodies]
        if len(queries) == 1:
            return queries[0]
        return {"bool": {"should": queries}}

    async def knn_section(self, knn: Any) -> Any:
        """The top-level ``knn`` search section (an object or a list of them)."""
        sections = knn if isinstance(knn, list) else [knn]
        out: list[Any] = []
        for section in sections:
            out.extend(await self.knn_body(section, section=True))
        if not isinstance(knn, list) and len(out) == 1:
            return out[0]
        return out
