"""Score fusion as Elasticsearch's ``linear`` retriever computes it, and the explanations of
the fused retrievers (``rrf``, ``linear``).

Normalizers (``LinearRetrieverBuilder`` / ``MinMaxScoreNormalizer`` / ``L2ScoreNormalizer``):

* ``minmax``: ``(s - min) / (max - min)`` in float32, with ``min`` starting at
  ``Float.MAX_VALUE`` and ``max`` at ``Float.MIN_VALUE``; when ``|max - min| < 1e-6`` every
  document gets ``1.0``;
* ``l2_norm``: ``s / sqrt(sum(s * s))`` (the squares summed as doubles), unchanged when the
  norm is below ``1e-6``;
* ``none``: the scores as they are.

Each child contributes ``weight * normalized`` (float32) to every document it holds; documents
are ordered by that sum, ties by shard and doc as ``RankDoc`` orders them, the top
``rank_window_size`` kept, then those below ``min_score`` dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...chunking.javafmt import double_to_string
from ...errors import illegal_argument
from ..rrf import Ranked, sort_key

NORMALIZERS = ("none", "minmax", "l2_norm")
_EPSILON = np.float32(1e-6)
_FLOAT_MAX = np.float32(np.finfo(np.float32).max)
_FLOAT_MIN = np.float32(1.4e-45)  # Float.MIN_VALUE, the smallest positive float


def check_normalizer(name: Any) -> str:
    if name not in NORMALIZERS:
        raise illegal_argument(f"Unknown normalizer [{name}]")
    return str(name)


def _score(doc: Ranked) -> np.float32:
    return np.float32("nan") if doc.score is None else np.float32(doc.score)


def normalize(name: str, docs: Sequence[Ranked]) -> list[np.float32]:
    """The normalized scores of ``docs`` (one result list) with normalizer ``name``."""
    scores = [_score(d) for d in docs]
    if not scores or name == "none":
        return scores
    if not any(not math.isnan(s) for s in scores):
        return scores
    if name == "minmax":
        lo, hi = _FLOAT_MAX, _FLOAT_MIN
        for s in scores:
            if s > hi:
                hi = s
            if s < lo:
                lo = s
        if abs(np.float32(lo - hi)) < _EPSILON:
            return [np.float32(1.0)] * len(scores)
        span = np.float32(hi - lo)
        return [np.float32(np.float32(s - lo) / span) for s in scores]
    total = 0.0
    for s in scores:
        if not math.isnan(s):
            total += float(np.float32(s * s))
    norm = math.sqrt(total)
    if norm < 1e-6:
        return scores
    return [np.float32(float(s) / norm) for s in scores]


def linear(results: Sequence[Sequence[Ranked]], weights: Sequence[float], normalizers: Sequence[str],
           window: int, min_score: float | None, *, names: Sequence[str | None] = (),
           explain: bool = False) -> list[Ranked]:
    fused: dict[tuple[str, str], Ranked] = {}
    scores: dict[tuple[str, str], np.float32] = {}
    seen = 0
    n = len(results)
    for i, result in enumerate(results):
        normalized = normalize(normalizers[i], result)
        weight = np.float32(weights[i])
        for doc, value in zip(result, normalized, strict=True):
            key = doc.key
            if key not in fused:
                fused[key] = Ranked(doc.index, doc.id, 0.0, doc.shard_doc, doc.routing, seen)
                fused[key].extra = {"normalized": [np.float32(0.0)] * n, "sources": [None] * n}
                scores[key] = np.float32(0.0)
                seen += 1
            elif fused[key].shard_doc is None:
                fused[key].shard_doc = doc.shard_doc
            fused[key].extra["normalized"][i] = value
            fused[key].extra["sources"][i] = doc.extra.get("explanation")
            contribution = np.float32(0.0) if math.isnan(value) else value
            scores[key] = np.float32(scores[key] + np.float32(weight * contribution))
    for key, doc in fused.items():
        doc.score = float(scores[key])
    ordered = sorted(fused.values(), key=sort_key)[:max(window, 0)]
    if min_score is not None:
        ordered = [d for d in ordered if np.float32(d.score) >= np.float32(min_score)]
    if explain:
        for doc in ordered:
            doc.extra["explanation"] = _linear_explanation(doc, weights, normalizers, names)
    return ordered


def jfloat(value: float) -> str:
    """A float32 as Java's ``Float.toString`` writes it."""
    return double_to_string(float(str(np.float32(value))))


def _jarray(values: Sequence[float]) -> str:
    return "[" + ", ".join(jfloat(v) for v in values) + "]"


def _alias(i: int, names: Sequence[str | None]) -> str:
    name = names[i] if i < len(names) else None
    return f"at index [{i}]" + (f" [{name}]" if name else "")


def _source(explanation: Any) -> list[Any]:
    return [explanation] if isinstance(explanation, dict) else []


def _linear_explanation(doc: Ranked, weights: Sequence[float], normalizers: Sequence[str],
                        names: Sequence[str | None]) -> dict[str, Any]:
    details = []
    normalized = doc.extra["normalized"]
    for i, value in enumerate(normalized):
        weight = np.float32(weights[i])
        if value > 0:
            weighted = np.float32(weight * value)
            details.append({"value": float(weighted), "description": (
                f"weighted score: [{jfloat(weighted)}] in query {_alias(i, names)} computed as "
                f"[{jfloat(weight)} * {jfloat(value)}] using score normalizer [{normalizers[i]}] for original "
                "matching query with score:"), "details": _source(doc.extra["sources"][i])})
        else:
            details.append({"value": 0.0, "description":
                            f"weighted score: [0], result not found in query {_alias(i, names)}", "details": []})
    return {"value": doc.score, "description": (
        f"weighted linear combination score: [{jfloat(doc.score)}] computed for normalized scores "
        f"{_jarray(normalized)} and weights {_jarray(weights)} as sum of (weight[i] * score[i]) for each query."),
        "details": details}


def rrf_explanation(doc: Ranked, rank_constant: int, names: Sequence[str | None]) -> dict[str, Any]:
    """``RRFRankDoc.explain``: the document's rank in each child (``-1``... as ``0`` when absent)."""
    positions: list[int] = doc.extra.get("positions") or []
    sources = doc.extra.get("sources") or [None] * len(positions)
    details = []
    for i, position in enumerate(positions):
        if position < 0:
            details.append({"value": 0.0, "description":
                            f"rrf score: [0], result not found in query {_alias(i, names)}", "details": []})
            continue
        rank = position + 1
        part = np.float32(1.0) / np.float32(rank + rank_constant)
        details.append({"value": rank, "description": (
            f"rrf score: [{jfloat(part)}], for rank [{rank}] in query {_alias(i, names)} computed as "
            f"[1 / ({rank} + {rank_constant})], for matching query with score"),
            "details": _source(sources[i])})
    ranks = ", ".join(str(p + 1) for p in positions)
    return {"value": doc.score, "description": (
        f"rrf score: [{jfloat(doc.score)}] computed for initial ranks [{ranks}] with rankConstant: "
        f"[{rank_constant}] as sum of [1 / (rank + rankConstant)] for each query"), "details": details}
