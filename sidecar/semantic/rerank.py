"""The ``text_similarity_reranker`` retriever's scoring: the top documents of its child
retriever are scored by a ``rerank`` inference endpoint against ``inference_text``.

As in Elasticsearch: the endpoint must be a rerank endpoint whose configured ``top_n`` (if any)
is not below ``rank_window_size``; documents scoring below ``min_score`` (on the model's score)
are dropped; scores are made non-negative with ``max(s, 0) + min(exp(s), 1)`` (float32); the
result is ordered by score, ties by shard and doc as ``RankDoc`` orders them.

With ``chunk_rescorer`` a document's input is a list of its best chunks: every chunk is scored,
the document takes its best chunk's score, normalized once per chunk list and once more when
the reranked documents are ordered, as ``TextSimilarityRankFeaturePhaseRankCoordinatorContext``
does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EsError, illegal_argument, status_exception
from ..protocol.service import TaskType
from .rrf import Ranked, sort_key

DEFAULT_RERANK_ID = ".rerank-v1-elasticsearch"


def normalize(score: float) -> float:
    """``Math.max(score, 0) + Math.min((float) Math.exp(score), 1)`` in float32."""
    s = np.float32(score)
    return float(np.float32(max(s, np.float32(0.0))) + np.float32(min(np.float32(math.exp(float(s))), np.float32(1.0))))


def configured_top_n(task_settings: dict[str, Any]) -> int | None:
    for key in ("top_n", "top_n_documents_only"):
        value = task_settings.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


async def rerank(endpoints: Any, inference_id: str, inference_text: str, docs: Sequence[Ranked],
                 texts: Sequence[str | list[str]], *, rank_window_size: int, min_score: float | None,
                 timeout_s: float | None = 30.0) -> list[Ranked]:
    """Score ``docs`` (whose inputs are ``texts``) and return them reranked."""
    target = await endpoints.inference.target(inference_id)
    endpoint = target.endpoint
    if endpoint.task_type is not TaskType.RERANK:
        raise status_exception(
            400, f"Requested task type [{TaskType.RERANK.value}] does not match the inference endpoint's task type "
                 f"[{endpoint.task_type.value}]")
    top_n = configured_top_n(endpoint.task_settings or {})
    if top_n is not None and top_n < rank_window_size:
        raise illegal_argument(
            f"Inference endpoint [{inference_id}] is configured to return the top [{top_n}] results, but "
            f"rank_window_size is [{rank_window_size}]. Reduce rank_window_size to be less than or equal to the "
            "configured top N value.")
    if not docs:
        return []
    settings = dict(endpoint.task_settings or {})
    settings["return_documents"] = False
    settings.pop("top_n", None)
    chunked = any(isinstance(t, list) for t in texts)
    inputs: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        for part in (text if isinstance(text, list) else [text]):
            inputs.append(part)
            owner.append(i)
    ranked = await endpoints.inference.rerank(target, inference_text, inputs, settings, timeout_s)
    scores: dict[int, float] = {r.index: float(r.relevance_score) for r in ranked}
    if chunked:
        best: dict[int, float] = {}
        for index, score in scores.items():
            doc_index = owner[index]
            best[doc_index] = max(best.get(doc_index, score), score)
        scores = {i: normalize(best[i]) if i in best else 0.0 for i in range(len(docs))}
    if len(scores) != len(docs):
        raise EsError(500, "illegal_state_exception",
                      f"Reranker input document count and returned score count mismatch: [{len(docs)}] vs "
                      f"[{len(scores)}]")
    out = []
    for i, doc in enumerate(docs):
        raw = float(np.float32(scores[i]))
        if min_score is not None and raw < min_score:
            continue
        out.append(Ranked(doc.index, doc.id, normalize(raw), doc.shard_doc, doc.routing, doc.seen))
    out.sort(key=sort_key)
    return out


def explanation(doc: Ranked, inference_id: str, field_name: str, source: Any) -> dict[str, Any]:
    """``TextSimilarityRankDoc.explain``: the reranked score, over the explanation of the
    document's score in the child retriever."""
    return {"value": doc.score,
            "description": f"text_similarity_reranker match using inference endpoint: [{inference_id}] on document "
                           f"field: [{field_name}] matching on source query ",
            "details": [source] if isinstance(source, dict) else []}


def top_explanation(doc: Ranked, rank_doc: dict[str, Any], source: Any) -> dict[str, Any]:
    """A reranked hit's ``_explanation`` as the node's rank-docs query gives it: the rank
    document's explanation summed with the child query's (which only filters, weight 0)."""
    required = {"value": 0.0, "description": "match on required clause, product of:",
                "details": [{"value": 0.0, "description": "# clause", "details": []},
                            *([source] if isinstance(source, dict) else [])]}
    return {"value": doc.score, "description": "sum of:", "details": [rank_doc, required]}

