"""Figure 5, retrieval quality: BEIR SciFact indexed through a semantic_text field (title +
" " + text, as the published evaluation embeds it) and searched with the ``semantic`` query
through the sidecar; nDCG@10 and recall@100 next to the published all-MiniLM-L6-v2 score.

With chunking ``none`` the gap to the published score must be at most 0.01. To tell where a
gap comes from, the same run also ranks exactly (brute force, in numpy) with the vectors the
sidecar stored and the query vectors it computes — the difference to the ``semantic`` query
is what approximate search costs — and compares a sample of those vectors with the
in-process model's (truncation, normalisation). With the default chunking the difference is
reported. ``--quick`` uses a small subset (not comparable with the published score)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import numpy as np

from .. import client
from ..context import Context
from ..corpus import Beir, load_beir
from ..ir_metrics import evaluate
from ..stack import log
from ..stats import rnd

NAME = "quality"
FIELD = "content"
VARIANTS = {"none": {"strategy": "none"}, "default": None}
SEARCH_SIZE = 100


def _subset(beir: Beir, n_queries: int, n_docs: int) -> Beir:
    qids = sorted(beir.qrels)[:n_queries]
    qrels = {q: beir.qrels[q] for q in qids}
    wanted = {d for q in qids for d in qrels[q]}
    rng = random.Random(13)
    others = [d for d in beir.corpus if d not in wanted]
    wanted |= set(rng.sample(others, max(0, n_docs - len(wanted))))
    corpus = {d: beir.corpus[d] for d in beir.corpus if d in wanted}
    return Beir(corpus, {q: beir.queries[q] for q in qids}, qrels, beir.published)


def _search(ctx: Context, index: str, inference_id: str, queries: dict[str, str]) -> tuple[dict[str, list[str]], str]:
    """Rank with the ``semantic`` query; where the sidecar does not serve it yet, with the
    query Elasticsearch builds for it (nested knn over the chunk embeddings, score_mode max)."""
    runs: dict[str, list[str]] = {}
    mode = "semantic"
    conn = client.Conn(ctx.sidecar.url)
    for qid, text in queries.items():
        if mode == "semantic":
            body = {"size": SEARCH_SIZE, "_source": False, "query": {"semantic": {"field": FIELD, "query": text}}}
            status, data = conn.raw("POST", f"/{index}/_search", json.dumps(body).encode())
            if status != 200:
                log(f"quality: the semantic query answered {status} ({data[:200]!r}); using nested knn")
                mode = "nested_knn"
        if mode == "nested_knn":
            vec = conn.json("POST", f"/_inference/text_embedding/{inference_id}",
                            {"input": text, "input_type": "search"})["text_embedding"][0]["embedding"]
            body = {"size": SEARCH_SIZE, "_source": False, "query": {"nested": {
                "path": f"_sidecar_inference.{FIELD}.chunks", "score_mode": "max",
                "query": {"knn": {"field": f"_sidecar_inference.{FIELD}.chunks.embeddings",
                                  "query_vector": vec, "k": SEARCH_SIZE}}}}}
            status, data = conn.raw("POST", f"/{index}/_search", json.dumps(body).encode())
            if status != 200:
                raise client.HttpError("POST", f"/{index}/_search", status, data[:400])
        runs[qid] = [h["_id"] for h in json.loads(data)["hits"]["hits"]]
    conn.close()
    return runs, mode


def _stored_vectors(ctx: Context, index: str) -> tuple[list[str], np.ndarray]:
    """Every chunk vector the sidecar stored (read straight from Elasticsearch): doc id per row."""
    conn = ctx.es_conn
    path = f"_sidecar_inference.{FIELD}.chunks.embeddings"
    page = conn.json("POST", f"/{index}/_search?scroll=1m", {"size": 1000, "_source": [path], "sort": ["_doc"]})
    owners: list[str] = []
    rows: list[list[float]] = []
    while page["hits"]["hits"]:
        for hit in page["hits"]["hits"]:
            chunks = hit["_source"]["_sidecar_inference"][FIELD]["chunks"]
            for chunk in chunks:
                owners.append(hit["_id"])
                rows.append(chunk["embeddings"])
        page = conn.json("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": page["_scroll_id"]})
    conn.json("DELETE", "/_search/scroll", {"scroll_id": page["_scroll_id"]}, ok=(200, 404))
    return owners, np.asarray(rows, dtype=np.float32)


def _query_vectors(ctx: Context, inference_id: str, texts: list[str]) -> np.ndarray:
    out = []
    for i in range(0, len(texts), 100):
        answer = ctx.conn.json("POST", f"/_inference/text_embedding/{inference_id}",
                               {"input": texts[i:i + 100], "input_type": "search"})
        out += [e["embedding"] for e in answer["text_embedding"]]
    return np.asarray(out, dtype=np.float32)


def _exact_runs(qids: list[str], q: np.ndarray, owners: list[str], d: np.ndarray) -> dict[str, list[str]]:
    """Brute-force ranking, a document scoring as its best chunk (what score_mode max does)."""
    docs = sorted(set(owners))
    col = {doc: i for i, doc in enumerate(docs)}
    idx = np.asarray([col[o] for o in owners])
    runs: dict[str, list[str]] = {}
    for start in range(0, len(qids), 64):
        scores = q[start:start + 64] @ d.T  # (queries, chunks)
        best = np.full((scores.shape[0], len(docs)), -np.inf, dtype=np.float32)
        for row in range(scores.shape[0]):
            np.maximum.at(best[row], idx, scores[row])
        for row, qid in enumerate(qids[start:start + 64]):
            top = np.argsort(-best[row], kind="stable")[:SEARCH_SIZE]
            runs[qid] = [docs[i] for i in top]
    return runs


def _fidelity(ctx: Context, beir: Beir, owners: list[str], d: np.ndarray, q: np.ndarray,
              qtexts: list[str], sample: int) -> dict[str, Any]:
    """The sidecar's vectors against the in-process model's, for a sample of documents
    (chunking none: one chunk per document) and for the queries."""
    first = {}
    for i, o in enumerate(owners):
        first.setdefault(o, i)
    ids = sorted(first)[:sample]
    texts = [beir.corpus[i]["title"] + " " + beir.corpus[i]["text"] for i in ids]
    local_d = ctx.model.encode(texts, batch_size=32)
    local_q = ctx.model.encode(qtexts, batch_size=64)
    side_d = d[[first[i] for i in ids]]

    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    cd, cq = cos(local_d, side_d), cos(local_q, q)
    return {"docs_compared": len(ids), "doc_cosine_min": rnd(float(cd.min()), 6),
            "doc_cosine_mean": rnd(float(cd.mean()), 6), "query_cosine_min": rnd(float(cq.min()), 6),
            "sidecar_doc_norm_mean": rnd(float(np.linalg.norm(side_d, axis=1).mean()), 4)}


def run(ctx: Context) -> dict[str, Any]:
    beir = load_beir(ctx.data_dir)
    comparable = not ctx.quick
    if ctx.quick:
        beir = _subset(beir, 20, 80)
    variants = list(VARIANTS)
    inference_id = ctx.endpoint("quality", threads=ctx.threads)
    qids = sorted(beir.queries)
    qtexts = [beir.queries[q] for q in qids]
    docs = [{FIELD: d["title"] + " " + d["text"]} for d in beir.corpus.values()]
    ids = list(beir.corpus)
    out: dict[str, Any] = {"docs": len(docs), "queries": len(qids), "comparable_with_published": comparable,
                           "published": beir.published, "variants": {}}
    q_vectors = None
    for variant in variants:
        index = ctx.index(f"quality-{variant}")
        client.create_semantic_index(ctx.conn, index, inference_id, field=FIELD, chunking=VARIANTS[variant])
        log(f"quality: indexing {len(docs)} documents (chunking {variant}) through the sidecar")
        ingest = asyncio.run(client.bulk_ingest(ctx.sidecar.url, index, docs, bulk_docs=250, concurrency=2, ids=ids))
        count = ctx.es_conn.json("GET", f"/{index}/_count")["count"]
        log(f"quality: searching {len(qids)} queries")
        runs, mode = _search(ctx, index, inference_id, beir.queries)
        metrics = evaluate(runs, beir.qrels)
        owners, d = _stored_vectors(ctx, index)
        if q_vectors is None:
            q_vectors = _query_vectors(ctx, inference_id, qtexts)
        exact = evaluate(_exact_runs(qids, q_vectors, owners, d), beir.qrels)
        res: dict[str, Any] = {
            "chunking": VARIANTS[variant] or "default (sentence, 250 words, overlap 1)",
            "indexed": count, "failed": ingest["failed"], "chunks": len(owners),
            "index_seconds": rnd(ingest["seconds"]), "docs_per_s": rnd(len(docs) / ingest["seconds"], 2),
            "truncation_warning": bool(ingest["warnings"]),
            "query": mode, **metrics,
            "exact_on_stored_vectors": exact,
            "ann_loss_ndcg@10": rnd(exact["ndcg@10"] - metrics["ndcg@10"], 5),
        }
        if "ndcg@10" in beir.published:
            res["gap_to_published_ndcg@10"] = rnd(beir.published["ndcg@10"] - metrics["ndcg@10"], 5)
        if variant == "none":
            res["vectors_vs_in_process"] = _fidelity(ctx, beir, owners, d, q_vectors, qtexts, ctx.size(50, 300))
        out["variants"][variant] = res
        log(f"quality: chunking {variant}: nDCG@10 {metrics['ndcg@10']} (exact on stored vectors "
            f"{exact['ndcg@10']}), recall@100 {metrics['recall@100']}")
        client.delete_index(ctx.es_conn, index)
    none = out["variants"]["none"]
    if "default" in out["variants"]:
        out["default_minus_none_ndcg@10"] = rnd(out["variants"]["default"]["ndcg@10"] - none["ndcg@10"], 5)
    if comparable and "gap_to_published_ndcg@10" in none:
        ctx.target(NAME, "chunking none: gap to published nDCG@10", abs(none["gap_to_published_ndcg@10"]), "<=", 0.01)
    ctx.drop_endpoint(inference_id)
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    pub = r["published"]
    sub = "" if r["comparable_with_published"] else " (quick subset: not comparable)"
    out = []
    for variant, v in r["variants"].items():
        gap = v.get("gap_to_published_ndcg@10")
        out += [
            {"measure": f"nDCG@10, chunking {variant}, {v['query']} query{sub}", "sidecar": v["ndcg@10"],
             "baseline": pub.get("ndcg@10"), "result": "" if gap is None else f"{-gap:+.4f}",
             "target": "chunking none: gap to published nDCG@10" if variant == "none" else ""},
            {"measure": f"recall@100, chunking {variant}", "sidecar": v["recall@100"], "baseline": pub.get("recall@100"),
             "result": "" if pub.get("recall@100") is None else f"{v['recall@100'] - pub['recall@100']:+.4f}"},
            {"measure": f"nDCG@10, chunking {variant}, exact search on the stored vectors", "sidecar":
             v["exact_on_stored_vectors"]["ndcg@10"], "baseline": v["ndcg@10"],
             "result": f"ANN costs {v['ann_loss_ndcg@10']:+.4f}"},
        ]
    return out


def chart(ax, r: dict[str, Any]) -> None:
    import numpy as _np

    names = list(r["variants"])
    x = _np.arange(len(names))
    nd = [r["variants"][n]["ndcg@10"] for n in names]
    rc = [r["variants"][n]["recall@100"] for n in names]
    ax.bar(x - 0.2, nd, 0.4, label="nDCG@10", color="#1f77b4")
    ax.bar(x + 0.2, rc, 0.4, label="recall@100", color="#2ca02c")
    pub = r["published"]
    if "ndcg@10" in pub:
        ax.axhline(pub["ndcg@10"], color="#1f77b4", ls="--", lw=1, label="published nDCG@10")
    if "recall@100" in pub:
        ax.axhline(pub["recall@100"], color="#2ca02c", ls="--", lw=1, label="published recall@100")
    ax.set_xticks(x, [f"chunking {n}" for n in names], fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("5. SciFact quality" + ("" if r["comparable_with_published"] else " (quick subset)"))
