"""Figure 9, hybrid retrieval quality: BEIR SciFact searched through the sidecar with
retrievers, each as nDCG@10 beside the published figure for the same method:

* BM25 alone (a ``standard`` retriever, ``match`` on the title + text);
* semantic alone (the ``semantic`` query on a semantic_text field, all-MiniLM-L6-v2, chunking
  ``none`` as the published evaluation embeds whole documents);
* ``rrf`` of the two (rank_window_size 100, rank_constant 60);
* ``linear`` of the two with ``minmax`` on both and the semantic weight tuned: two-fold over the
  test queries (the weight chosen on one half is measured on the other, so no query scores with
  a weight tuned on itself), the children's lists fused with the sidecar's own fusion code for
  the grid, the chosen weights then run through the sidecar;
* semantic + ``text_similarity_reranker`` with the local rerank model (``.rerank-v1``, the
  MS MARCO MiniLM-L-6 cross-encoder), when that model can be loaded; it is not packaged, so
  without the model hub the figure says so instead.

Published: BM25 and BM25 + cross-encoder reranking from the BEIR paper (Thakur et al., 2021,
Table 2: SciFact nDCG@10 0.665 and 0.688); all-MiniLM-L6-v2 from SOURCE.md beside the data.
A hybrid should beat both its inputs; when it does not, ``diagnosis`` says how often each input
alone finds a relevant document the other misses (no complementarity, no gain) and how far the
fused list's recall@100 got. ``--quick`` uses a small subset (not comparable with the published
figures)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sidecar.semantic.rrf import Ranked
from sidecar.semantic.search.fusion import linear

from .. import client
from ..context import Context
from ..corpus import load_beir
from ..ir_metrics import evaluate, ndcg_at
from ..stack import log
from ..stats import rnd
from .quality import _subset

NAME = "hybrid"
WINDOW = 100
PUBLISHED = {"bm25": 0.665, "rerank": 0.688}
GRID = [round(0.1 * i, 1) for i in range(11)]
RERANK_MODEL = ".rerank-v1"


def _bm25(text: str) -> dict[str, Any]:
    return {"standard": {"query": {"match": {"lexical": text}}}}


def _semantic(text: str) -> dict[str, Any]:
    return {"standard": {"query": {"semantic": {"field": "content", "query": text}}}}


def _search(conn: client.Conn, index: str, retriever: dict[str, Any], size: int) -> list[tuple[str, float]]:
    body = {"retriever": retriever, "size": size, "_source": False}
    status, data = conn.raw("POST", f"/{index}/_search", json.dumps(body).encode())
    if status != 200:
        raise client.HttpError("POST", f"/{index}/_search", status, data[:400])
    return [(h["_id"], h["_score"]) for h in json.loads(data)["hits"]["hits"]]


def _runs(conn: client.Conn, index: str, queries: dict[str, str], make, size: int = 10) -> dict[str, list[str]]:
    return {qid: [d for d, _ in _search(conn, index, make(text), size)] for qid, text in queries.items()}


def _linear_offline(lists: dict[str, tuple[list, list]], qids: list[str], w: float) -> dict[str, list[str]]:
    out = {}
    for qid in qids:
        lexical, semantic = lists[qid]
        fused = linear([lexical, semantic], [1.0 - w, w], ["minmax", "minmax"], WINDOW, None)
        out[qid] = [d.id for d in fused]
    return out


def _tune(lists: dict[str, tuple[list, list]], qrels: dict[str, dict[str, int]], qids: list[str]) -> float:
    def score(w: float) -> float:
        runs = _linear_offline(lists, qids, w)
        return sum(ndcg_at(runs[q], qrels[q], 10) for q in qids) / max(1, len(qids))

    return max(GRID, key=lambda w: (score(w), -abs(w - 0.5)))


def _linear_retriever(text: str, w: float) -> dict[str, Any]:
    return {"linear": {"retrievers": [
        {"retriever": _bm25(text), "weight": round(1.0 - w, 4), "normalizer": "minmax"},
        {"retriever": _semantic(text), "weight": w, "normalizer": "minmax"}], "rank_window_size": WINDOW}}


def _rerank_endpoint(ctx: Context) -> tuple[str | None, str | None]:
    inference_id = f"bench-hybrid-rerank-{ctx.stamp.lower()}"
    status, data = ctx.conn.raw("PUT", f"/_inference/rerank/{inference_id}", json.dumps({
        "service": "elasticsearch",
        "service_settings": {"model_id": RERANK_MODEL, "num_allocations": 1, "num_threads": ctx.threads}}).encode())
    if status != 200:
        return None, f"no local rerank model: creating the {RERANK_MODEL} endpoint answered {status}: " \
                     f"{data[:300].decode(errors='replace')}"
    ctx._endpoints.append(inference_id)
    return inference_id, None


def _diagnosis(bm25: dict[str, list[str]], sem: dict[str, list[str]], qrels: dict[str, dict[str, int]],
               fused_recall: float, inputs_recall: dict[str, float]) -> dict[str, Any]:
    only_bm25 = only_sem = both = 0
    for qid, relevant in qrels.items():
        a = bool(set(bm25.get(qid, [])[:10]) & set(relevant))
        b = bool(set(sem.get(qid, [])[:10]) & set(relevant))
        only_bm25 += a and not b
        only_sem += b and not a
        both += a and b
    n = max(1, len(qrels))
    return {"queries_only_bm25_finds_in_top10": only_bm25, "queries_only_semantic_finds_in_top10": only_sem,
            "queries_both_find": both, "complementary_share": rnd((only_bm25 + only_sem) / n, 4),
            "rrf_recall@100": fused_recall, **{f"{k}_recall@100": v for k, v in inputs_recall.items()}}


def run(ctx: Context) -> dict[str, Any]:
    beir = load_beir(ctx.data_dir)
    comparable = not ctx.quick
    if ctx.quick:
        beir = _subset(beir, 20, 80)
    inference_id = ctx.endpoint("hybrid", threads=ctx.threads)
    index = ctx.index("hybrid")
    ctx.conn.json("DELETE", f"/{index}", ok=(200, 404))
    ctx.conn.json("PUT", f"/{index}", {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"lexical": {"type": "text"}, "content": {
            "type": "semantic_text", "inference_id": inference_id, "chunking_settings": {"strategy": "none"}}}}})
    ids = list(beir.corpus)
    docs = [{"lexical": d["title"] + " " + d["text"], "content": d["title"] + " " + d["text"]}
            for d in beir.corpus.values()]
    log(f"hybrid: indexing {len(docs)} documents through the sidecar")
    ingest = asyncio.run(client.bulk_ingest(ctx.sidecar.url, index, docs, bulk_docs=250, concurrency=2, ids=ids))
    conn = client.Conn(ctx.sidecar.url)
    queries, qrels, qids = beir.queries, beir.qrels, sorted(beir.queries)
    log(f"hybrid: {len(qids)} queries, BM25 and semantic lists of {WINDOW}")
    lists: dict[str, tuple[list, list]] = {}
    for qid in qids:
        pair = []
        for make in (_bm25, _semantic):
            hits = _search(conn, index, make(queries[qid]), WINDOW)
            pair.append([Ranked(index, d, s, None, None, i) for i, (d, s) in enumerate(hits)])
        lists[qid] = (pair[0], pair[1])
    bm25_runs = {q: [d.id for d in lists[q][0]] for q in qids}
    sem_runs = {q: [d.id for d in lists[q][1]] for q in qids}
    methods: dict[str, dict[str, Any]] = {
        "bm25": {**evaluate(bm25_runs, qrels), "published": PUBLISHED["bm25"]},
        "semantic": {**evaluate(sem_runs, qrels), "published": beir.published.get("ndcg@10")},
    }
    log("hybrid: rrf through the sidecar")
    rrf_runs = {q: [d for d, _ in _search(conn, index, {"rrf": {"retrievers": [
        _bm25(queries[q]), _semantic(queries[q])], "rank_window_size": WINDOW}}, WINDOW)] for q in qids}
    methods["rrf"] = {**evaluate(rrf_runs, qrels), "published": None}
    folds = [qids[0::2], qids[1::2]]
    weights = {}
    linear_runs: dict[str, list[str]] = {}
    for k, held_out in enumerate(folds):
        tuned_on = folds[1 - k] or held_out
        w = _tune(lists, qrels, tuned_on)
        weights[f"fold{k}"] = w
        log(f"hybrid: linear minmax, semantic weight {w} (tuned on the other half)")
        for q in held_out:
            linear_runs[q] = [d for d, _ in _search(conn, index, _linear_retriever(queries[q], w), WINDOW)]
    methods["linear_minmax"] = {**evaluate(linear_runs, qrels), "published": None, "semantic_weights": weights}
    rerank_id, rerank_note = _rerank_endpoint(ctx)
    if rerank_id is not None:
        log("hybrid: semantic + text_similarity_reranker")
        rr = {q: [d for d, _ in _search(conn, index, {"text_similarity_reranker": {
            "retriever": _semantic(queries[q]), "field": "lexical", "inference_id": rerank_id,
            "inference_text": queries[q], "rank_window_size": WINDOW}}, 10)] for q in qids}
        methods["semantic_rerank"] = {**evaluate(rr, qrels), "published": PUBLISHED["rerank"],
                                      "published_is": "BM25 + cross-encoder (BEIR)"}
        ctx.drop_endpoint(rerank_id)
    conn.close()
    best_input = max(methods["bm25"]["ndcg@10"], methods["semantic"]["ndcg@10"])
    out: dict[str, Any] = {
        "docs": len(docs), "queries": len(qids), "indexed_failed": ingest["failed"],
        "comparable_with_published": comparable, "methods": methods, "rerank_unavailable": rerank_note,
        "hybrid_beats_inputs": {m: methods[m]["ndcg@10"] > best_input for m in ("rrf", "linear_minmax")},
    }
    if not all(out["hybrid_beats_inputs"].values()):
        out["diagnosis"] = _diagnosis(bm25_runs, sem_runs, qrels, methods["rrf"]["recall@100"],
                                      {m: methods[m]["recall@100"] for m in ("bm25", "semantic")})
    for m in ("rrf", "linear_minmax"):
        ctx.target(NAME, f"{m} nDCG@10 minus the better input's", rnd(methods[m]["ndcg@10"] - best_input, 5),
                   ">=", 0.0)
    ctx.drop_endpoint(inference_id)
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    sub = "" if r["comparable_with_published"] else " (quick subset: not comparable)"
    out = []
    for name, m in r["methods"].items():
        pub = m.get("published")
        out.append({"measure": f"nDCG@10 {name}{sub}", "sidecar": m["ndcg@10"], "baseline": pub,
                    "result": "" if pub is None else f"{m['ndcg@10'] - pub:+.4f}",
                    "target": "beats BM25 and semantic" if name in ("rrf", "linear_minmax") else ""})
    if r.get("rerank_unavailable"):
        out.append({"measure": "semantic + text_similarity_reranker", "sidecar": None, "baseline": PUBLISHED["rerank"],
                    "result": "not run: no local rerank model without the model hub"})
    return out


def chart(ax, r: dict[str, Any]) -> None:
    import numpy as _np

    names = list(r["methods"])
    x = _np.arange(len(names))
    ax.bar(x - 0.2, [r["methods"][n]["ndcg@10"] for n in names], 0.4, label="sidecar", color="#1f77b4")
    ax.bar(x + 0.2, [r["methods"][n].get("published") or 0 for n in names], 0.4, label="published",
           color="#bbbbbb")
    ax.set_xticks(x, names, fontsize=7)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("9. SciFact hybrid nDCG@10" + ("" if r["comparable_with_published"] else " (quick subset)"))
