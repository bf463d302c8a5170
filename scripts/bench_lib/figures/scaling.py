"""Figure 6, scaling: how figure 1 changes with the deployment's workers (``num_allocations``
1 and 2, one torch thread each) and with the document size (short, medium, long at figure
1's configuration), each against the in-process ceiling on the same chunk texts and the
same number of torch threads (run just before it). One run (medium documents, figure 1's
configuration) is profiled with py-spy to show where the sidecar's time goes."""

from __future__ import annotations

import time
from typing import Any

from ..context import Context
from ..corpus import DOC_SIZES, INGEST_CHUNKING, chunk_texts, make_docs
from ..profile import Profile, available
from ..stack import log
from ..stats import ratio, rnd
from .ingest import SidecarIngest

NAME = "scaling"


def _one(ctx: Context, label: str, size: str, docs_count: int, allocations: int, threads: int,
         offset: int, profile: Profile | None = None) -> dict[str, Any]:
    docs = make_docs(ctx.words, docs_count, DOC_SIZES[size], offset=offset)
    texts = chunk_texts(docs, INGEST_CHUNKING)
    total_threads = allocations * threads
    ctx.model.set_threads(total_threads)
    batch = int(ctx.results.get("ingest", {}).get("ceiling", {}).get("batch_size") or 32)
    ctx.model.encode(texts[:32], batch_size=batch)
    t0 = time.perf_counter()
    ctx.model.encode(texts, batch_size=batch)
    ceiling_s = time.perf_counter() - t0
    run = SidecarIngest(ctx, f"scaling-{label}", allocations=allocations, threads=threads)
    if profile is not None:
        profile.start()
    try:
        run.part(docs)
    finally:
        if profile is not None:
            profile.stop()
    res = run.finish()
    ceiling = {"texts_per_s": rnd(len(texts) / ceiling_s, 2), "docs_per_s": rnd(len(docs) / ceiling_s, 2),
               "batch_size": batch, "torch_threads": total_threads}
    out = {"size": size, "words_per_doc": DOC_SIZES[size], "docs": len(docs), "chunks": len(texts),
           "allocations": allocations, "threads_per_allocation": threads, "sidecar": res, "ceiling": ceiling,
           "ratio_vs_ceiling": ratio(res["chunks_per_s"], ceiling["texts_per_s"])}
    log(f"scaling: {label}: sidecar {res['docs_per_s']} docs/s, {res['chunks_per_s']} chunks/s "
        f"({out['ratio_vs_ceiling']}× the ceiling, workers busy {res['worker_busy_fraction']})")
    return out


def run(ctx: Context) -> dict[str, Any]:
    medium = ctx.size(12, 500)
    budget_words = medium * DOC_SIZES["medium"]
    offset = 40_000  # documents not used by other figures
    out: dict[str, Any] = {"workers": {}, "sizes": {}}
    for allocations in (1, 2):
        label = f"{allocations}x1"
        out["workers"][label] = _one(ctx, label, "medium", medium, allocations, 1, offset)
        offset += medium
    do_profile = ctx.options.get("profile", True) and available()
    profile = Profile(ctx.sidecar.pid, ctx.out_dir / f"{ctx.stamp}-pyspy.txt") if do_profile else None
    for size in ("short", "medium", "long"):
        count = max(4, budget_words // DOC_SIZES[size])
        out["sizes"][size] = _one(ctx, size, size, count, 1, ctx.threads, offset,
                                  profile if size == "medium" else None)
        offset += count
    if profile is not None:
        out["profile"] = {"run": f"sizes.medium (1 allocation × {ctx.threads} threads)",
                          "raw_file": str(profile.path), **profile.summary()}
    else:
        out["profile"] = {"skipped": "py-spy is not installed (pip install -e '.[bench]')"
                          if not available() else "--no-profile"}
    w1, w2 = out["workers"]["1x1"], out["workers"]["2x1"]
    out["speedup_2_workers"] = ratio(w2["sidecar"]["chunks_per_s"], w1["sidecar"]["chunks_per_s"])
    out["ceiling_speedup_2_threads"] = ratio(w2["ceiling"]["texts_per_s"], w1["ceiling"]["texts_per_s"])
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for group in ("workers", "sizes"):
        for label, x in r[group].items():
            s = x["sidecar"]
            name = (f"{x['allocations']} allocation(s) × {x['threads_per_allocation']} thread" if group == "workers"
                    else f"{label} docs ({x['words_per_doc']} words, {x['chunks'] / max(1, x['docs']):.1f} chunks)")
            out.append({"measure": f"{name}: chunks/s (vs encode ceiling)", "sidecar": s["chunks_per_s"],
                        "baseline": x["ceiling"]["texts_per_s"],
                        "result": f"{x['ratio_vs_ceiling']:.2f}×, {s['docs_per_s']:.1f} docs/s, busy {s['worker_busy_fraction']}"})
    out.append({"measure": "2 workers vs 1 (sidecar chunks/s)", "sidecar": r["speedup_2_workers"],
                "baseline": r["ceiling_speedup_2_threads"], "result": "baseline: encode, 2 threads vs 1"})
    prof = r.get("profile", {})
    for kind, t in (prof.get("threads") or {}).items():
        cats = ", ".join(f"{c} {v:.0%}" for c, v in list(t["by_category"].items())[:4])
        out.append({"measure": f"profile: {kind} busy", "sidecar": t["busy_per_thread"], "baseline": None,
                    "result": cats})
    return out


def chart(ax, r: dict[str, Any]) -> None:
    import numpy as np

    labels, side, ceil = [], [], []
    for group in ("workers", "sizes"):
        for label, x in r[group].items():
            labels.append(label if group == "sizes" else f"{label} workers")
            side.append(x["sidecar"]["chunks_per_s"])
            ceil.append(x["ceiling"]["texts_per_s"])
    xs = np.arange(len(labels))
    ax.bar(xs - 0.2, ceil, 0.4, label="in-process ceiling", color="#9aa5b1")
    ax.bar(xs + 0.2, side, 0.4, label="sidecar _bulk", color="#1f77b4")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("chunks/s")
    ax.legend(fontsize=8)
    ax.set_title("6. scaling: workers and document size")
