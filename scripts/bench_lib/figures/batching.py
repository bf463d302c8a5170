"""Figure 3, batching under concurrency and single-query latency.

* 1,000 concurrent single-input ``POST /_inference/text_embedding/{id}`` calls (one
  connection each): aggregate texts/s against the offline ceiling (the same 1,000 texts
  through ``SentenceTransformer.encode`` at its best batch size), p50/p99 latency.
* One short query at a time over HTTP against the same ``encode`` of one text in process:
  the added median latency.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .. import client
from ..context import Context
from ..corpus import load_beir, query_texts
from ..profile import Profile, available
from ..stack import log
from ..stats import latency_summary_ms, ratio, rnd

NAME = "batching"
QUERY = "What causes muscle loss in older adults?"


def _texts(ctx: Context, n: int) -> list[str]:
    texts = query_texts(ctx.data_dir)
    if len(texts) < n:  # not expected with SciFact (1,109 queries)
        beir = load_beir(ctx.data_dir)
        texts += [d["title"] for d in beir.corpus.values()]
    return texts[:n]


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.size(200, 1000)
    n_single = ctx.size(30, 300)
    texts = _texts(ctx, n)
    threads = ctx.threads
    inference_id = ctx.endpoint("batching", threads=threads)
    path = f"/_inference/text_embedding/{inference_id}"
    bodies = [json.dumps({"input": t}).encode() for t in texts]

    # Warm the sidecar's path (and its model kernels) with a few calls.
    asyncio.run(client.concurrent_posts(ctx.sidecar.url, path, bodies[:64], concurrency=16))

    log(f"batching: offline ceiling for {n} texts")
    ceiling = ctx.model.throughput(texts, threads=threads, sweep_sample=n,
                                   sizes=(32, 64) if ctx.quick else (16, 32, 64, 128))
    log(f"batching: {n} concurrent single-input calls through the sidecar")
    profile = None
    if ctx.options.get("profile", True) and available():
        profile = Profile(ctx.sidecar.pid, ctx.out_dir / f"{ctx.stamp}-pyspy-batching.txt")
        profile.start()
    try:
        wall, latencies, errors = asyncio.run(client.concurrent_posts(ctx.sidecar.url, path, bodies, concurrency=n))
    finally:
        if profile is not None:
            profile.stop()
    concurrent = {"calls": n, "concurrency": n, "seconds": rnd(wall), "texts_per_s": rnd(n / wall, 2),
                  "errors": errors, **latency_summary_ms(latencies)}
    log(f"batching: {concurrent['texts_per_s']} texts/s vs ceiling {ceiling['texts_per_s']}")

    log(f"batching: single-query latency ({n_single} calls each way, interleaved)")
    body = json.dumps({"input": QUERY}).encode()
    http_lat: list[float] = []
    local_lat: list[float] = []
    for _ in range(2):
        http_lat += client.sequential_latencies(ctx.sidecar.url, "POST", path, body, n_single // 2)
        local_lat += ctx.model.single_latencies(QUERY, n_single // 2, threads=threads)
    http = latency_summary_ms(http_lat)
    local = latency_summary_ms(local_lat)
    stats = ctx.deployment_stats(inference_id)
    ctx.drop_endpoint(inference_id)
    out = {
        "ceiling": ceiling,
        "concurrent": concurrent,
        "ratio_vs_ceiling": ratio(concurrent["texts_per_s"], ceiling["texts_per_s"]),
        "single": {"query": QUERY, "http": http, "in_process": local, "torch_threads": threads,
                   "added_p50_ms": rnd(http["p50_ms"] - local["p50_ms"])},
        "deployment": {"inference_count": stats.get("inference_count"),
                       "average_inference_time_ms": (stats.get("nodes") or [{}])[0].get("average_inference_time_ms")},
    }
    if profile is not None:
        out["concurrent"]["profile"] = {"raw_file": str(profile.path), **profile.summary()}
    ctx.target(NAME, f"{n:,} concurrent calls: texts/s vs offline batch ceiling", out["ratio_vs_ceiling"], ">=", 0.8)
    ctx.target(NAME, "single query: added p50 over HTTP (ms)", out["single"]["added_p50_ms"], "<=", 3.0)
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    c, s = r["concurrent"], r["single"]
    return [
        {"measure": f"{c['calls']} concurrent single-input calls, texts/s (vs offline encode)",
         "sidecar": c["texts_per_s"], "baseline": r["ceiling"]["texts_per_s"],
         "result": f"{r['ratio_vs_ceiling']:.2f}×",
         "target": f"{c['calls']:,} concurrent calls: texts/s vs offline batch ceiling"},
        {"measure": "  their latency p50 / p99, ms", "sidecar": c["p50_ms"], "baseline": None,
         "result": f"p99 {c['p99_ms']:.0f} ms"},
        {"measure": "single query p50, ms (vs encode in process)", "sidecar": s["http"]["p50_ms"],
         "baseline": s["in_process"]["p50_ms"], "result": f"{s['added_p50_ms']:+.2f} ms",
         "target": "single query: added p50 over HTTP (ms)"},
    ]


def chart(ax, r: dict[str, Any]) -> None:
    from ..report import ratio_bars

    ratio_bars(ax, [f"texts/s ({r['concurrent']['calls']:,} concurrent)", "single query p50 ms"],
               [r["concurrent"]["texts_per_s"], r["single"]["http"]["p50_ms"]],
               [r["ceiling"]["texts_per_s"], r["single"]["in_process"]["p50_ms"]], unit="texts/s | ms",
               title="3. batching under concurrency; latency", base_label="in process")
