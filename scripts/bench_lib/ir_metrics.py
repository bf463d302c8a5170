"""Retrieval metrics as trec_eval/pytrec_eval compute them (what BEIR and MTEB report):
nDCG@k with linear gains and log2 discounts, recall@k; averaged over every judged query
(a query with no results scores 0)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


def evaluate(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean metrics over the queries of ``qrels``; ``runs`` maps query id to ranked doc ids."""
    out = {"ndcg@10": 0.0, "ndcg@100": 0.0, "recall@10": 0.0, "recall@100": 0.0}
    for qid, relevant in qrels.items():
        ranked = runs.get(qid, [])
        out["ndcg@10"] += ndcg_at(ranked, relevant, 10)
        out["ndcg@100"] += ndcg_at(ranked, relevant, 100)
        out["recall@10"] += recall_at(ranked, relevant, 10)
        out["recall@100"] += recall_at(ranked, relevant, 100)
    n = max(1, len(qrels))
    return {k: round(v / n, 5) for k, v in out.items()}
