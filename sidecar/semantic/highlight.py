"""The ``semantic`` highlighter: the best-matching chunks of a semantic_text field, returned
whole, as Elasticsearch's ``SemanticTextHighlighter`` returns them.

Every stored chunk of the field is scored against the query embeddings the search used on that
field (a dense chunk by the field's vector similarity, a sparse chunk by Σ weight·value; several
queries on one field add up; ``match_all`` scores every chunk 1). The ``number_of_fragments``
best chunks (default 5, at least 1) are returned, in score order with ``order: score`` and in
document order otherwise. A fragment is the chunk's text sliced from its source field with the
stored UTF-16 offsets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EsError
from .query_cache import DENSE, QueryEmbedding
from .values import MISSING, field_text, get_path

DEFAULT_FRAGMENTS = 5


def utf16_slice(text: str, start: int, end: int) -> str:
    """``text[start:end]`` where offsets count UTF-16 code units (as Java's String does)."""
    if text.isascii():
        return text[start:end]
    encoded = text.encode("utf-16-le")
    return encoded[2 * start:2 * end].decode("utf-16-le", errors="replace")


def chunk_source_text(source: dict[str, Any], path: str) -> str | None:
    """The text a chunk's offsets index into: the source field's value (arrays NUL-joined)."""
    value = get_path(source, path) if isinstance(source, dict) else MISSING
    try:
        return field_text(value, path)
    except EsError:
        return None


def dense_score(similarity: str, query: Sequence[float], doc: Sequence[float]) -> float:
    dot = math.fsum(q * d for q, d in zip(query, doc, strict=False))
    if similarity == "dot_product":
        return (1.0 + dot) / 2.0
    if similarity == "l2_norm":
        squared = math.fsum((q - d) ** 2 for q, d in zip(query, doc, strict=False))
        return 1.0 / (1.0 + squared)
    if similarity == "max_inner_product":
        return 1.0 / (1.0 - dot) if dot < 0 else dot + 1.0
    norms = math.sqrt(math.fsum(q * q for q in query)) * math.sqrt(math.fsum(d * d for d in doc))
    cosine = dot / norms if norms else 0.0
    return (1.0 + cosine) / 2.0


def sparse_score(query: dict[str, float], doc: dict[str, Any]) -> float:
    return math.fsum(weight * float(doc[token]) for token, weight in query.items() if token in doc)


@dataclass
class FieldHighlight:
    """Options of one highlighted field (merged with the global highlight options)."""

    number_of_fragments: int = DEFAULT_FRAGMENTS
    score_order: bool = False

    @classmethod
    def from_options(cls, global_options: dict[str, Any], field_options: dict[str, Any]) -> FieldHighlight:
        merged = {**global_options, **(field_options or {})}
        fragments = merged.get("number_of_fragments", DEFAULT_FRAGMENTS)
        try:
            fragments = int(fragments)
        except (TypeError, ValueError):
            fragments = DEFAULT_FRAGMENTS
        return cls(number_of_fragments=fragments if fragments > 0 else 1,
                   score_order=merged.get("order") == "score")


def score_chunks(chunks: Sequence[dict[str, Any]], queries: Iterable[QueryEmbedding | None],
                 similarity: str) -> list[float]:
    """The score of each chunk: the sum of its scores against every query."""
    queries = list(queries)
    scores = [0.0] * len(chunks)
    for query in queries:
        for i, chunk in enumerate(chunks):
            embeddings = chunk.get("embeddings")
            if query is None:
                scores[i] += 1.0
            elif query.kind == DENSE:
                if isinstance(embeddings, list) and query.vector:
                    scores[i] += dense_score(similarity, query.vector, embeddings)
            elif isinstance(embeddings, dict):
                scores[i] += sparse_score(query.token_dict(), embeddings)
    return scores


def fragments(source: dict[str, Any], chunks: Sequence[dict[str, Any]], queries: Sequence[QueryEmbedding | None],
              similarity: str, options: FieldHighlight, field_name: str) -> list[str]:
    """The highlight fragments of one semantic_text field of one document."""
    if not chunks or not queries:
        return []
    scores = score_chunks(chunks, queries, similarity)
    order = sorted(range(len(chunks)), key=lambda i: -scores[i])
    picked = order[:min(len(order), options.number_of_fragments)]
    if not options.score_order:
        picked.sort()
    return chunk_texts(source, [chunks[i] for i in picked], field_name)


def chunk_texts(source: dict[str, Any], chunks: Sequence[dict[str, Any]], field_name: str) -> list[str]:
    """The text of each chunk, cut from the source field it came from (the semantic_text field
    itself or a ``copy_to`` source)."""
    texts: dict[str, str | None] = {}
    out = []
    for chunk in chunks:
        src = chunk.get("source") or field_name
        if src not in texts:
            texts[src] = chunk_source_text(source, src)
        text = texts[src]
        if text is None:
            continue
        out.append(utf16_slice(text, int(chunk.get("start_offset", 0)), int(chunk.get("end_offset", 0))))
    return out
