"""Figure 1, ingest: ``_bulk`` into a semantic_text index through the sidecar (docs/s and
chunks/s) against the in-process ceiling (the same chunk texts through
``SentenceTransformer.encode`` at its best batch size, no Elasticsearch) and against a naive
client that indexes one document per request. ``encode`` groups its batches by characters,
which pads chunks of similar length by 40-50 % (their token counts differ); the sidecar
groups by token count, so the same encode on batches of equal token count is reported too:
the ceiling without padding.

The machine may be shared, so the three are interleaved: the documents are cut into parts
and each part is run by the ceiling, then the sidecar, then the naive loop, before the next
part. Load that comes and goes then weighs on all three alike."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from .. import client
from ..context import Context
from ..corpus import DOC_SIZES, INGEST_CHUNKING, chunk_texts, make_docs
from ..stack import RssSampler, cpu_seconds, es_cpu_seconds, log
from ..stats import median, ratio, rnd

NAME = "ingest"


class SidecarIngest:
    """Bulk documents through the sidecar into one fresh semantic_text index with a fresh
    endpoint, part by part; totals the time spent in the parts."""

    def __init__(self, ctx: Context, label: str, *, allocations: int = 1, threads: int | None = None,
                 chunking: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.allocations = allocations
        self.threads = ctx.threads if threads is None else threads
        self.inference_id = ctx.endpoint(label, allocations=allocations, threads=self.threads)
        self.index = ctx.index(label)
        client.create_semantic_index(ctx.conn, self.index, self.inference_id,
                                     chunking=INGEST_CHUNKING if chunking is None else chunking)
        self.bulk_docs = int(ctx.options.get("bulk_docs") or 500)
        self.concurrency = int(ctx.options.get("bulk_concurrency") or 2)
        self.seconds = 0.0
        self.docs = 0
        self.failed = 0
        self.requests = 0
        self.warnings: set[str] = set()
        self.sidecar_cpu_s = 0.0
        self.es_cpu_s = 0.0
        self.peak_reset = ctx.sidecar.reset_peak()
        self.rss = RssSampler(ctx.sidecar).__enter__()

    def part(self, docs: list[dict[str, str]]) -> float:
        ids = [f"d{self.docs + i}" for i in range(len(docs))]
        side0, es0 = cpu_seconds(self.ctx.sidecar.pid), es_cpu_seconds(self.ctx.es_conn) or 0.0
        result = asyncio.run(client.bulk_ingest(self.ctx.sidecar.url, self.index, docs, bulk_docs=self.bulk_docs,
                                                concurrency=self.concurrency, ids=ids))
        self.seconds += result["seconds"]
        self.sidecar_cpu_s += cpu_seconds(self.ctx.sidecar.pid) - side0
        self.es_cpu_s += (es_cpu_seconds(self.ctx.es_conn) or 0.0) - es0
        self.docs += len(docs)
        self.failed += result["failed"]
        self.requests += result["requests"]
        self.warnings.update(result["warnings"])
        return result["seconds"]

    def finish(self) -> dict[str, Any]:
        self.rss.__exit__(None, None, None)
        ctx = self.ctx
        memory = ctx.sidecar.memory_mb()
        count = ctx.es_conn.json("GET", f"/{self.index}/_count")["count"]
        stats = ctx.deployment_stats(self.inference_id)
        embedded = int(stats.get("inference_count", 0))
        node = (stats.get("nodes") or [{}])[0]
        busy_s = float(node.get("average_inference_time_ms") or 0.0) * embedded / 1000.0
        ctx.drop_endpoint(self.inference_id)
        client.delete_index(ctx.es_conn, self.index)
        seconds = max(self.seconds, 1e-9)
        return {
            "docs": self.docs,
            "indexed": count,
            "failed": self.failed,
            "chunks_embedded": embedded,
            "seconds": rnd(seconds),
            "docs_per_s": rnd(self.docs / seconds, 2),
            "chunks_per_s": rnd(embedded / seconds, 2),
            "bulk_requests": self.requests,
            "bulk_docs": self.bulk_docs,
            "bulk_concurrency": self.concurrency,
            "allocations": self.allocations,
            "threads_per_allocation": self.threads,
            "rss_peak_mb": max(self.rss.peak_mb or 0.0, memory["peak_rss_mb"] if self.peak_reset else 0.0),
            "rss_after_mb": memory["rss_mb"],
            # Share of the wall time the deployment's workers spent running batches: below 1.0
            # the model waited for something else (chunking, HTTP, Elasticsearch).
            "worker_busy_fraction": rnd(busy_s / seconds / max(1, self.allocations), 3),
            # Where the machine's CPU went while the parts ran (cores × wall time available).
            "cpu_seconds": {"available": rnd(seconds * (os.cpu_count() or 1), 1),
                            "sidecar": rnd(self.sidecar_cpu_s, 1), "elasticsearch": rnd(self.es_cpu_s, 1),
                            "model_workers_busy": rnd(busy_s, 1)},
            "warnings": sorted(self.warnings),
        }


class NaiveLoop:
    """One ``PUT /index/_doc/id`` per document, one after the other (a client written
    without ``_bulk``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.inference_id = ctx.endpoint("naive")
        self.index = ctx.index("naive")
        client.create_semantic_index(ctx.conn, self.index, self.inference_id, chunking=INGEST_CHUNKING)
        self.conn = client.Conn(ctx.sidecar.url)
        self.seconds = 0.0
        self.docs = 0

    def part(self, docs: list[dict[str, str]]) -> float:
        t0 = time.perf_counter()
        for doc in docs:
            path = f"/{self.index}/_doc/n{self.docs}"
            status, body = self.conn.raw("PUT", path, json.dumps(doc).encode())
            if status >= 300:
                raise client.HttpError("PUT", path, status, body[:300])
            self.docs += 1
        self.conn.raw("POST", f"/{self.index}/_refresh")
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        return seconds

    def finish(self) -> dict[str, Any]:
        self.conn.close()
        self.ctx.drop_endpoint(self.inference_id)
        client.delete_index(self.ctx.es_conn, self.index)
        return {"docs": self.docs, "seconds": rnd(self.seconds), "docs_per_s": rnd(self.docs / self.seconds, 2)}


def split(items: list, parts: int) -> list[list]:
    size = -(-len(items) // max(1, parts))
    return [items[i:i + size] for i in range(0, len(items), size)]


def ceiling_setup(ctx: Context, texts: list[str], threads: int) -> tuple[int, dict[str, float]]:
    ctx.model.set_threads(threads)
    sizes = (32, 64) if ctx.quick else (16, 32, 64, 128)
    return ctx.model.best_batch_size(texts, sizes, ctx.size(64, 1024))


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.size(60, 5000, "docs")
    n_naive = ctx.size(8, 200, "naive_docs")
    n_parts = ctx.size(2, 5)
    words = DOC_SIZES["medium"]
    docs = make_docs(ctx.words, n, words)
    naive_docs = make_docs(ctx.words, n_naive, words, offset=n)
    parts = split(docs, n_parts)
    part_texts = [chunk_texts(p, INGEST_CHUNKING) for p in parts]
    texts = [t for p in part_texts for t in p]
    log(f"ingest: {n} documents of {words} words, {len(texts)} chunks, in {len(parts)} interleaved parts")

    threads = ctx.threads
    batch_size, sweep = ceiling_setup(ctx, texts, threads)
    log(f"ingest: ceiling batch size {batch_size} ({sweep} texts/s)")
    sidecar = SidecarIngest(ctx, "ingest")
    naive = NaiveLoop(ctx)
    ceiling_s = sorted_s = 0.0
    part_ratios: list[float] = []
    for k, (part, ptexts, pnaive) in enumerate(zip(parts, part_texts, split(naive_docs, len(parts)), strict=True)):
        t0 = time.perf_counter()
        ctx.model.encode(ptexts, batch_size=batch_size)
        c = time.perf_counter() - t0
        ceiling_s += c
        t0 = time.perf_counter()
        ctx.model.encode_token_sorted(ptexts, batch_size=batch_size)
        sorted_s += time.perf_counter() - t0
        s = sidecar.part(part)
        nv = naive.part(pnaive)
        part_ratios.append(round(c / s, 4))  # same chunks: sidecar rate / ceiling rate
        log(f"ingest: part {k + 1}/{len(parts)}: ceiling {len(ptexts) / c:.1f} chunks/s, sidecar "
            f"{len(ptexts) / s:.1f} chunks/s, naive {len(pnaive) / nv:.2f} docs/s")
    s_res = sidecar.finish()
    n_res = naive.finish()
    ceiling = {"texts": len(texts), "seconds": rnd(ceiling_s), "texts_per_s": rnd(len(texts) / ceiling_s, 2),
               "docs_per_s": rnd(n / ceiling_s, 2), "batch_size": batch_size, "sweep_texts_per_s": sweep,
               "torch_threads": threads}
    token_sorted = {"texts": len(texts), "seconds": rnd(sorted_s), "texts_per_s": rnd(len(texts) / sorted_s, 2),
                    "batch_size": batch_size}
    out = {
        "workload": {"docs": n, "words_per_doc": words, "chunking": INGEST_CHUNKING, "chunks": len(texts),
                     "chunks_per_doc": rnd(len(texts) / n, 2), "parts": len(parts)},
        "ceiling": ceiling,
        "sidecar": s_res,
        "naive": n_res,
        # encode sorts by characters and pads its batches; the same encode on batches of
        # equal token count is what the model can do without padding.
        "ceiling_token_sorted": token_sorted,
        "ratio_vs_ceiling": ratio(s_res["chunks_per_s"], ceiling["texts_per_s"]),
        "ratio_vs_token_sorted_ceiling": ratio(s_res["chunks_per_s"], token_sorted["texts_per_s"]),
        "ratio_vs_naive": ratio(s_res["docs_per_s"], n_res["docs_per_s"]),
        # Per part (sidecar vs ceiling on the same chunks, run back to back): the median is
        # robust to a burst of outside load that hit only one side of one part.
        "part_ratios_vs_ceiling": part_ratios,
        "median_part_ratio_vs_ceiling": rnd(median(part_ratios), 4),
    }
    if s_res["chunks_embedded"] != len(texts):
        out["note"] = (f"the sidecar embedded {s_res['chunks_embedded']} texts for {len(texts)} chunks "
                       "(identical chunk texts are embedded once)")
    ctx.target(NAME, "chunks/s vs in-process ceiling", out["ratio_vs_ceiling"], ">=", 1.0)
    ctx.target(NAME, "docs/s vs naive per-document loop", out["ratio_vs_naive"], ">=", 3.0)
    return out


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    s, c, n = r["sidecar"], r["ceiling"], r["naive"]
    w = r["workload"]
    return [
        {"measure": f"chunks/s, {w['docs']} docs × {w['chunks_per_doc']} chunks (vs encode ceiling)",
         "sidecar": s["chunks_per_s"], "baseline": c["texts_per_s"], "result": fmt_ratio(r["ratio_vs_ceiling"]),
         "target": "chunks/s vs in-process ceiling"},
        *([{"measure": "chunks/s (vs encode on batches of equal token count: no padding)",
            "sidecar": s["chunks_per_s"], "baseline": r["ceiling_token_sorted"]["texts_per_s"],
            "result": fmt_ratio(r.get("ratio_vs_token_sorted_ceiling"))}] if "ceiling_token_sorted" in r else []),
        {"measure": "chunks/s vs ceiling, median of the interleaved parts", "sidecar": None, "baseline": None,
         "result": fmt_ratio(r.get("median_part_ratio_vs_ceiling"))},
        {"measure": "docs/s (vs encode ceiling)", "sidecar": s["docs_per_s"], "baseline": c["docs_per_s"],
         "result": fmt_ratio(ratio(s["docs_per_s"], c["docs_per_s"]))},
        {"measure": "docs/s (vs naive one-request-per-doc loop)", "sidecar": s["docs_per_s"],
         "baseline": n["docs_per_s"], "result": fmt_ratio(r["ratio_vs_naive"]),
         "target": "docs/s vs naive per-document loop"},
        {"measure": "model workers busy (share of ingest wall time)", "sidecar": s.get("worker_busy_fraction"),
         "baseline": 1.0, "result": ""},
    ]


def chart(ax, r: dict[str, Any]) -> None:
    from ..report import ratio_bars

    s, c, n = r["sidecar"], r["ceiling"], r["naive"]
    ratio_bars(ax, ["chunks/s vs ceiling", "docs/s vs naive"], [s["chunks_per_s"], s["docs_per_s"]],
               [c["texts_per_s"], n["docs_per_s"]], unit="per second",
               title=f"1. ingest ({r['workload']['docs']} docs, {r['workload']['chunks']} chunks)")
