"""The query rewriter: every query family it rewrites, by query name."""

from __future__ import annotations

from .context import RewriteContext
from .knn import KnnQueries
from .semantic import SemanticQueries

# What makes a request worth parsing at all (anything else passes through untouched).
KEYWORDS = (b"semantic", b"sparse_vector", b"text_expansion", b"weighted_tokens", b"query_vector_builder",
            b"retriever", b"highlight")


class QueryRewriter(SemanticQueries, KnnQueries):
    """Rewrites queries for one request. :attr:`leaves` collects every semantic leaf built."""

    def __init__(self, ctx: RewriteContext) -> None:
        super().__init__(ctx)
        self._handlers.update({
            "semantic": self._semantic,
            "sparse_vector": self._sparse_vector,
            "text_expansion": self._text_expansion,
            "weighted_tokens": self._weighted_tokens,
            "match": self._match,
            "exists": self._exists,
            "nested": self._nested,
            "knn": self._knn_query,
        })
