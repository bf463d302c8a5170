"""Figure 7, the local runtime on its own: the sidecar's deployment (micro-batching queue,
length-sorted sub-batches, worker threads) in this process, without HTTP or Elasticsearch,
against ``SentenceTransformer.encode`` on the same device. It shows what the runtime adds on
top of the model, on CPU or GPU (``--device``), and needs no Elasticsearch.

* bulk: SciFact passages sent as the ingest path sends them (windows of 500 texts, two in
  flight) against ``encode`` of the same texts at its best batch size;
* concurrent: 1,000 single-text calls at once against the same texts in offline batches;
* single: one short query at a time against ``encode`` of one text.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..context import Context
from ..corpus import load_corpus, query_texts
from ..stack import log
from ..stats import latency_summary_ms, ratio, rnd

NAME = "runtime"
NEEDS_STACK = False
QUERY = "What causes muscle loss in older adults?"
WINDOW = 500


def _passages(ctx: Context, n: int) -> list[str]:
    """SciFact documents as the published evaluation embeds them: title + " " + text."""
    return [d["title"] + " " + d["text"] for d in load_corpus(ctx.data_dir).values()][:n]


async def _deploy(path: str, device: str, threads: int, max_batch_size: int | None):
    from sidecar.runtime import ModelManager

    manager = ModelManager(aliases={"bench-model": path}, device=device, max_batch_size=max_batch_size)
    dep = await manager.deploy("bench-runtime", "bench-model", "text_embedding", num_allocations=1,
                               num_threads=threads, timeout=600)
    await dep.embed(["warm up"] * 64)
    return manager, dep


async def _bulk(dep, texts: list[str]) -> float:
    windows = [texts[i:i + WINDOW] for i in range(0, len(texts), WINDOW)]
    gate = asyncio.Semaphore(2)

    async def one(window: list[str]) -> None:
        async with gate:
            await dep.embed(window)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(w) for w in windows))
    return time.perf_counter() - t0


async def _concurrent(dep, texts: list[str]) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def one(text: str) -> None:
        t = time.perf_counter()
        await dep.embed([text])
        latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(t) for t in texts))
    return time.perf_counter() - t0, latencies


async def _single(dep, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await dep.embed([QUERY])
        out.append(time.perf_counter() - t)
    return out


def run(ctx: Context) -> dict[str, Any]:
    import torch

    from ..ceiling import InProcessModel

    device = ctx.options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = ctx.threads
    max_batch_size = int(ctx.options["max_batch_size"]) if ctx.options.get("max_batch_size") else None
    on_gpu = device != "cpu"
    # A CPU encodes SciFact passages at tens per second: smaller sets keep the figure short.
    passages = _passages(ctx, ctx.size(1000, 5000) if on_gpu else ctx.size(100, 1000))
    queries = query_texts(ctx.data_dir)[: (ctx.size(300, 1000) if on_gpu else ctx.size(100, 1000))]
    model = InProcessModel(device=device)
    log(f"runtime: on {device}, {len(passages)} passages, {len(queries)} queries")

    loop = asyncio.new_event_loop()
    try:
        manager, dep = loop.run_until_complete(_deploy(model.path, device, threads, max_batch_size))
        bulk_s: list[float] = []
        encode_s: list[float] = []
        best, rates = model.best_batch_size(passages, sizes=(32, 64, 128, 256) if on_gpu else (16, 32, 64),
                                            sample=min(len(passages), 256))
        for _ in range(2):  # interleaved
            t0 = time.perf_counter()
            model.encode(passages, batch_size=best)
            encode_s.append(time.perf_counter() - t0)
            bulk_s.append(loop.run_until_complete(_bulk(dep, passages)))
        t0 = time.perf_counter()
        model.encode(queries, batch_size=best)
        offline_s = time.perf_counter() - t0
        wall, latencies = loop.run_until_complete(_concurrent(dep, queries))
        single_rt: list[float] = []
        single_enc: list[float] = []
        for _ in range(2):
            single_rt += loop.run_until_complete(_single(dep, ctx.size(20, 200)))
            single_enc += model.single_latencies(QUERY, ctx.size(20, 200), threads=threads)
        loop.run_until_complete(manager.close())
    finally:
        loop.close()

    n = len(passages)
    bulk = {"texts": n, "texts_per_s": rnd(n / min(bulk_s), 1),
            "encode_texts_per_s": rnd(n / min(encode_s), 1), "encode_batch_size": best,
            "encode_sweep_texts_per_s": rates}
    bulk["vs_encode"] = ratio(bulk["texts_per_s"], bulk["encode_texts_per_s"])
    concurrent = {"calls": len(queries), "texts_per_s": rnd(len(queries) / wall, 1),
                  "offline_texts_per_s": rnd(len(queries) / offline_s, 1), **latency_summary_ms(latencies)}
    concurrent["vs_offline"] = ratio(concurrent["texts_per_s"], concurrent["offline_texts_per_s"])
    single = {"runtime": latency_summary_ms(single_rt), "encode": latency_summary_ms(single_enc)}
    single["added_p50_ms"] = rnd(single["runtime"]["p50_ms"] - single["encode"]["p50_ms"], 2)
    out = {"device": device, "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
           "torch_threads": threads, "max_batch_size": dep.batcher.max_batch_size, "bulk": bulk, "concurrent": concurrent, "single": single}
    log(f"runtime: bulk {bulk['vs_encode']}× encode, {len(queries)} concurrent {concurrent['vs_offline']}× offline, "
        f"single +{single['added_p50_ms']} ms")
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    b, c, s = r["bulk"], r["concurrent"], r["single"]
    where = r["device_name"] or r["device"]
    return [
        {"measure": f"runtime on {where}: {b['texts']:,} passages in windows of {WINDOW}, texts/s",
         "sidecar": b["texts_per_s"], "baseline": b["encode_texts_per_s"], "result": f"{b['vs_encode']:.2f}×"},
        {"measure": f"runtime on {where}: {c['calls']:,} concurrent single-text calls, texts/s",
         "sidecar": c["texts_per_s"], "baseline": c["offline_texts_per_s"], "result": f"{c['vs_offline']:.2f}×"},
        {"measure": f"runtime on {where}: single query p50, ms", "sidecar": s["runtime"]["p50_ms"],
         "baseline": s["encode"]["p50_ms"], "result": f"{s['added_p50_ms']:+.2f} ms"},
    ]


def chart(ax, r: dict[str, Any]) -> None:
    from ..report import ratio_bars

    ratio_bars(ax, ["passages texts/s", "concurrent texts/s"],
               [r["bulk"]["texts_per_s"], r["concurrent"]["texts_per_s"]],
               [r["bulk"]["encode_texts_per_s"], r["concurrent"]["offline_texts_per_s"]], unit="texts/s",
               title=f"8. local runtime on {r['device']}", base_label="encode")
