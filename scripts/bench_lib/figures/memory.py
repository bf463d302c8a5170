"""Figure 4, memory: the sidecar's resident set size (RSS) with nothing loaded, idle with one
model loaded (one endpoint, after a call), with 10 endpoints sharing that model (each called
once: it must not grow per endpoint), and its peak during figure 1's ingest (measured there;
when figure 1 is not part of the run, a small ingest is run here)."""

from __future__ import annotations

import time
from typing import Any

from ..context import Context
from ..corpus import DOC_SIZES, make_docs
from ..stack import log
from ..stats import rnd

NAME = "memory"
ENDPOINTS = 10


def _settle(ctx: Context) -> float:
    time.sleep(1.0)
    return ctx.sidecar.memory_mb()["rss_mb"]


def _call(ctx: Context, inference_id: str) -> None:
    ctx.conn.json("POST", f"/_inference/text_embedding/{inference_id}",
                  {"input": ["a short text to embed", "and a second, somewhat longer one to embed as well"]})


def run(ctx: Context) -> dict[str, Any]:
    models_before = _loaded_models(ctx)
    start_mb = _settle(ctx)
    first = ctx.endpoint("memory-0", threads=ctx.threads)
    _call(ctx, first)
    one_mb = _settle(ctx)
    ids = [first]
    for k in range(1, ENDPOINTS):
        ids.append(ctx.endpoint(f"memory-{k}", threads=ctx.threads))
        _call(ctx, ids[-1])
    ten_mb = _settle(ctx)
    for inference_id in ids:
        _call(ctx, inference_id)
    ten_again_mb = _settle(ctx)
    for inference_id in ids:
        ctx.drop_endpoint(inference_id)
    after_delete_mb = _settle(ctx)
    per_endpoint = (ten_again_mb - one_mb) / (ENDPOINTS - 1)

    ingest = ctx.results.get("ingest")
    if ingest is not None:
        peak = ingest["sidecar"]["rss_peak_mb"]
        peak_source = "figure 1 (ingest)"
    elif "ingest" in (ctx.options.get("figures") or ()):
        peak, peak_source = None, "figure 1 (ingest), filled in once it has run"
    else:
        from .ingest import SidecarIngest

        n = ctx.size(40, 500)
        log(f"memory: figure 1 is not in this run: a {n}-document ingest for the peak")
        run_ = SidecarIngest(ctx, "memory-ingest")
        run_.part(make_docs(ctx.words, n, DOC_SIZES["medium"], offset=20_000))
        peak = run_.finish()["rss_peak_mb"]
        peak_source = f"a {n}-document ingest run here"
    out = {
        "start_mb": start_mb,
        "models_loaded_before": models_before,
        "idle_one_model_mb": one_mb,
        f"{ENDPOINTS}_endpoints_mb": ten_again_mb,
        f"{ENDPOINTS}_endpoints_first_call_mb": ten_mb,
        "growth_per_endpoint_mb": rnd(per_endpoint, 2),
        "after_deleting_endpoints_mb": after_delete_mb,
        "ingest_peak_mb": peak,
        "ingest_peak_source": peak_source,
    }
    if models_before:
        out["note"] = "the sidecar had models loaded before this figure: run it first (as 'all' does) for a clean idle figure"
    ctx.target(NAME, "RSS growth per extra endpoint sharing the model (MB)", out["growth_per_endpoint_mb"], "<=", 5.0)
    return out


def finalize(ctx: Context, result: dict[str, Any]) -> None:
    """After the whole run: the peak of figure 1 when it ran after this figure."""
    ingest = ctx.results.get("ingest")
    if result.get("ingest_peak_mb") is None and ingest is not None:
        result["ingest_peak_mb"] = ingest["sidecar"]["rss_peak_mb"]
        result["ingest_peak_source"] = "figure 1 (ingest)"


def _loaded_models(ctx: Context) -> int:
    answer = ctx.conn.json("GET", "/_ml/trained_models/_stats")
    return int(answer.get("count", 0))


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"measure": "RSS idle, one model loaded, MB", "sidecar": r["idle_one_model_mb"], "baseline": r["start_mb"],
         "result": "baseline: nothing loaded"},
        {"measure": f"RSS with {ENDPOINTS} endpoints sharing it, MB", "sidecar": r[f"{ENDPOINTS}_endpoints_mb"],
         "baseline": r["idle_one_model_mb"], "result": f"{r['growth_per_endpoint_mb']:+.1f} MB per endpoint",
         "target": "RSS growth per extra endpoint sharing the model (MB)"},
        {"measure": "RSS peak during ingest, MB", "sidecar": r["ingest_peak_mb"], "baseline": r["idle_one_model_mb"],
         "result": r["ingest_peak_source"]},
    ]


def chart(ax, r: dict[str, Any]) -> None:
    labels = ["nothing loaded", "1 model idle", f"{ENDPOINTS} endpoints", "ingest peak"]
    values = [r["start_mb"], r["idle_one_model_mb"], r[f"{ENDPOINTS}_endpoints_mb"], r["ingest_peak_mb"] or 0]
    bars = ax.bar(labels, values, color=["#9aa5b1", "#1f77b4", "#1f77b4", "#d62728"])
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("RSS, MB")
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("4. sidecar memory")
