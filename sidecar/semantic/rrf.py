"""Reciprocal rank fusion exactly as Elasticsearch's ``rrf`` retriever computes it.

Each child result list contributes ``weight * (1 / (rank_constant + rank))`` (rank from 1,
weight 1 unless the ``{retriever, weight}`` form gives one) to every document it holds, summed
in float32 in child order as ``RRFRetrieverBuilder`` does; documents
are ordered by that score, ties broken by shard then Lucene doc id (the ``_shard_doc`` sort
value the child searches return) as ``RankDoc`` compares them, and the top
``rank_window_size`` are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_RANK_CONSTANT = 60
DEFAULT_RANK_WINDOW_SIZE = 10


@dataclass
class Ranked:
    """A document in a ranked result list."""

    index: str
    id: str
    score: float = 0.0
    # (shard request index << 32) | Lucene doc id, when the search ran in a point in time.
    shard_doc: int | None = None
    routing: str | None = None
    # First position at which the document was seen (tie-breaker without shard_doc).
    seen: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.index, self.id


def f32(value: float) -> float:
    """A float32 result as the shortest decimal that reads back as the same float32 (what
    Elasticsearch writes for scores)."""
    return float(str(np.float32(value)))


def sort_key(doc: Ranked) -> tuple:
    tie = doc.shard_doc if doc.shard_doc is not None else doc.seen
    return -doc.score, tie, doc.seen


def fuse(results: Sequence[Sequence[Ranked]], rank_constant: int = DEFAULT_RANK_CONSTANT,
         rank_window_size: int = DEFAULT_RANK_WINDOW_SIZE, weights: Sequence[float] | None = None) -> list[Ranked]:
    """Fused documents; each keeps in ``extra`` its position in every child (``-1`` where
    absent) and the child's explanation of it, for ``explain``."""
    fused: dict[tuple[str, str], Ranked] = {}
    scores: dict[tuple[str, str], np.float32] = {}
    seen = 0
    constant = np.float32(rank_constant)
    n = len(results)
    for i, result in enumerate(results):
        weight = np.float32(1.0 if weights is None else weights[i])
        for rank, doc in enumerate(result, start=1):
            key = doc.key
            if key not in fused:
                fused[key] = Ranked(doc.index, doc.id, 0.0, doc.shard_doc, doc.routing, seen)
                fused[key].extra = {"positions": [-1] * n, "sources": [None] * n}
                scores[key] = np.float32(0.0)
                seen += 1
            elif fused[key].shard_doc is None:
                fused[key].shard_doc = doc.shard_doc
            fused[key].extra["positions"][i] = rank - 1
            fused[key].extra["sources"][i] = doc.extra.get("explanation")
            part = np.float32(1.0) / (constant + np.float32(rank))
            scores[key] = np.float32(scores[key] + (part if weights is None else np.float32(weight * part)))
    for key, doc in fused.items():
        doc.score = float(scores[key])
    ordered = sorted(fused.values(), key=sort_key)
    return ordered[:max(rank_window_size, 0)]
