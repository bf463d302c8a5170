"""What a rewriter needs to know about the request: its indices, their semantic_text
fields, and how to embed and to look a field's type up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..metadata import IndexSemantics, SemanticField
from ..query_cache import QueryEmbedding
from .embedder import Embedder


@dataclass
class IndexInfo:
    name: str
    version_created: int = 0
    semantics: IndexSemantics | None = None
    shards: int = 1

    def semantic_field(self, name: str) -> SemanticField | None:
        return self.semantics.fields.get(name) if self.semantics is not None else None


@dataclass
class SemanticLeaf:
    """A query embedding applied to a semantic_text field in some indices (kept for highlighting)."""

    field: str
    indices: frozenset[str]
    embedding: QueryEmbedding | None  # None: match_all (highlight every chunk)


FieldTypes = Callable[[str, list[str]], Awaitable[dict[str, dict[str, Any] | None]]]


@dataclass
class RewriteContext:
    indices: dict[str, IndexInfo]
    embedder: Embedder
    # (field, indices) -> {index: leaf mapping of the field or None}
    field_types: FieldTypes
    # The request's explicit size (k of the knn a semantic query builds), if any.
    size: int | None = None
    # Whether the node runs the sparse_vector query itself (pruning needs shard statistics).
    native_sparse: bool = True
