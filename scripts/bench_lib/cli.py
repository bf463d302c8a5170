"""``scripts/bench [FIGURE ...] [--quick]``: start what is needed, run the figures, print each
as a ratio against its baseline, write ``bench-results/<timestamp>.json`` (+ ``.png``)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sidecar.testing.process import free_port

from .context import Context
from .corpus import default_data_dir
from .stack import ROOT, Elasticsearch, Sidecar, log

# Run order for "all": memory first (it needs a sidecar that has loaded nothing yet), then
# the figures that reuse what is already warm.
FIGURES = ("memory", "ingest", "batching", "passthrough", "scaling", "quality", "backend", "runtime", "hybrid", "workers", "peer", "contention")
DESCRIPTIONS = {
    "ingest": "1. _bulk into semantic_text vs the in-process encode ceiling and a naive loop",
    "passthrough": "2. searches and small index requests via the sidecar vs straight to Elasticsearch",
    "batching": "3. 1,000 concurrent single-input inference calls vs offline batches; single-query latency",
    "memory": "4. RSS idle with one model, with 10 endpoints sharing it, peak during ingest",
    "quality": "5. BEIR SciFact nDCG@10 / recall@100 through the semantic query vs the published score",
    "scaling": "6. ingest with 1 and 2 allocations and short/medium/long documents; py-spy profile",
    "backend": "7. onnx-int8 backend vs torch fp32, one process each: texts/s, cosine, SciFact nDCG@10",
    "runtime": "8. the local runtime in process (no HTTP, no Elasticsearch) vs encode, on --device",
    "hybrid": "9. SciFact nDCG@10: BM25, semantic, rrf, linear (tuned), semantic + reranker vs published",
    "workers": "10. --workers 1/2/4/8: pass-through searches/s, embedded texts/s, memory per worker",
    "peer": "11. the same embedding workload against Infinity (infinity-emb) when installed, else skipped",
    "contention": "12. single-query p50/p99 beside a busy process: PASSIVE vs spin-waiting OpenMP, 1x2 vs 2x1",
}
# Figures that need neither Elasticsearch nor the sidecar: a run of only these starts neither.
STANDALONE = ("backend", "runtime")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmarks of es-inference-sidecar. Each figure is measured against its baseline "
                    "in the same run and printed as a ratio; results go to bench-results/<timestamp>.json "
                    "and a PNG chart.",
        epilog="figures:\n" + "\n".join(f"  {k:<12} {v}" for k, v in DESCRIPTIONS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("figures", nargs="*", metavar="FIGURE", help="figures to run (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run in under 3 minutes")
    p.add_argument("--es-url", default=os.environ.get("BENCH_ES_URL"),
                   help="use this Elasticsearch instead of starting one with scripts/es [BENCH_ES_URL]")
    p.add_argument("--es-port", type=int, default=int(os.environ.get("BENCH_ES_PORT", "9230")),
                   help="port of the Elasticsearch started here (default 9230)")
    p.add_argument("--es-heap", default=os.environ.get("BENCH_ES_HEAP", "1g"), help="its heap (default 1g)")
    p.add_argument("--sidecar-port", type=int, default=int(os.environ.get("BENCH_SIDECAR_PORT", "0")) or None,
                   help="port of the sidecar started here (default: a free port)")
    p.add_argument("--sidecar-log-level", default="INFO", help="the sidecar's SIDECAR_LOG_LEVEL (default INFO)")
    p.add_argument("--sidecar-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the sidecar, e.g. SIDECAR_MAX_BATCH_WAIT_MS=0 (repeatable)")
    p.add_argument("--device", help="device of the runtime figure: cpu, cuda, cuda:N (default: cuda when "
                   "torch sees one, else cpu)")
    p.add_argument("--max-batch-size", type=int, help="micro-batch size of the runtime figure "
                   "(default: the sidecar's, 32 on CPU, 256 on GPU)")
    p.add_argument("--threads", type=int, help="torch threads per allocation of the main deployment "
                   "and of the in-process baseline (default: the cores, as a power of two)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(),
                   help="BEIR SciFact directory [BENCH_DATA_DIR] (default: ../shared/data/scifact)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results", help="results directory")
    p.add_argument("--no-png", action="store_true", help="write no chart")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of the scaling figure")
    p.add_argument("--docs", type=int, help="documents of the ingest figure (default 5000, quick 60)")
    p.add_argument("--naive-docs", type=int, help="documents of the naive loop (default 200, quick 8)")
    p.add_argument("--bulk-docs", type=int, default=500, help="documents per _bulk request (default 500)")
    p.add_argument("--bulk-concurrency", type=int, default=2, help="_bulk requests in flight (default 2)")
    p.add_argument("--duration", type=float, help="seconds per load-generator round of passthrough")
    p.add_argument("--keep-indices", action="store_true", help="leave the benchmark indices in place")
    args = p.parse_args(argv)
    bad = [kv for kv in args.sidecar_env if "=" not in kv]
    if bad:
        p.error(f"--sidecar-env takes NAME=VALUE, got {bad}")
    wanted = args.figures or ["all"]
    unknown = [f for f in wanted if f not in (*FIGURES, "all")]
    if unknown:
        p.error(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)} or all")
    # "all" is figures 1-7; the runtime figure runs when named (it is the one for GPUs).
    everything = [f for f in FIGURES if f != "runtime"]
    args.figures = everything if "all" in wanted else [f for f in FIGURES if f in wanted]
    return args


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in ("torch", "sentence_transformers", "aiohttp", "numpy", "onnxruntime"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "os": platform.platform(),
            "hostname": socket.gethostname(), "versions": versions}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except OSError:
        return None


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 8192):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    raise_fd_limit()
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(started))
    args.out.mkdir(parents=True, exist_ok=True)
    es = Elasticsearch(args.es_url, port=args.es_port, heap=args.es_heap)
    sidecar: Sidecar | None = None
    doc: dict[str, Any] = {
        "meta": {
            "timestamp": stamp,
            "quick": args.quick,
            "figures": args.figures,
            "git": git_commit(),
            "machine": machine(),
            "load_average_before": list(os.getloadavg()),
            "data_dir": str(args.data_dir),
        },
        "figures": {},
        "errors": {},
    }
    ctx: Context | None = None
    rc = 0
    try:
        needs_stack = any(name not in STANDALONE for name in args.figures)
        es_url = es.start() if needs_stack else es.url
        doc["meta"]["elasticsearch"] = {"url": es_url, "started_here": es.started_here}
        port = args.sidecar_port or free_port()
        extra_env = dict(kv.split("=", 1) for kv in args.sidecar_env)
        doc["meta"]["sidecar_env"] = extra_env
        sidecar = Sidecar(es_url, port, args.out / f"{stamp}-sidecar.log", log_level=args.sidecar_log_level,
                          extra_env=extra_env)
        if needs_stack:
            log(f"starting the sidecar on port {port} in front of {es_url}")
            sidecar.start()
        ctx = Context(quick=args.quick, es=es, sidecar=sidecar, data_dir=args.data_dir, out_dir=args.out,
                      stamp=stamp, options={
                          "docs": args.docs, "naive_docs": args.naive_docs, "bulk_docs": args.bulk_docs,
                          "bulk_concurrency": args.bulk_concurrency, "duration": args.duration,
                          "keep_indices": args.keep_indices, "profile": not args.no_profile,
                          "threads": args.threads, "figures": args.figures,
                          "device": args.device, "max_batch_size": args.max_batch_size,
                      })
        for name in args.figures:
            module = importlib.import_module(f".figures.{name}", __package__)
            log(f"=== {name}: {DESCRIPTIONS[name]}")
            t0 = time.time()
            try:
                result = module.run(ctx)
                result["elapsed_s"] = round(time.time() - t0, 1)
                doc["figures"][name] = result
                ctx.results[name] = result
            except Exception as exc:
                rc = 1
                doc["errors"][name] = f"{type(exc).__name__}: {exc}"
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            from .report import print_figure

            if name in doc["figures"]:
                print_figure(name, doc["figures"][name], [t for t in ctx.targets if t.figure == name])
        for name, result in doc["figures"].items():
            finalize = getattr(importlib.import_module(f".figures.{name}", __package__), "finalize", None)
            if finalize is not None:
                finalize(ctx, result)
    except KeyboardInterrupt:
        rc = 130
        doc["errors"]["run"] = "interrupted"
    except Exception as exc:
        rc = 1
        doc["errors"]["run"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if ctx is not None:
            ctx.cleanup()
        if sidecar is not None:
            sidecar.stop()
        es.stop()
    # Figures in their numbered order for the table and the chart (they ran in FIGURES order).
    doc["figures"] = {name: doc["figures"][name] for name in DESCRIPTIONS if name in doc["figures"]}
    doc["meta"]["load_average_after"] = list(os.getloadavg())
    doc["meta"]["elapsed_s"] = round(time.time() - started, 1)
    doc["targets"] = [t.to_dict() for t in (ctx.targets if ctx else [])]
    path = args.out / f"{stamp}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    from .report import markdown_table, write_png

    print()
    print(markdown_table(doc))
    print()
    log(f"results: {path}")
    if not args.no_png:
        png = write_png(doc, args.out / f"{stamp}.png")
        if png:
            log(f"chart: {png}")
    return rc
