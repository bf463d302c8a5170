"""Figure 7, backend: the ``onnx-int8`` backend (the sidecar's own model class, int8 ONNX
Runtime) against the fp32 torch reference (``SentenceTransformer.encode`` at its best batch
size) on the packaged all-MiniLM-L6-v2: speed, vector agreement and retrieval quality.

Each runtime runs in its own worker process (torch and ONNX Runtime active in one process
slow each other down), with the same thread count; the parent hands both the same texts and
alternates between them part by part (ABBA), so load that comes and goes weighs on both.

- **Speed**: texts/s on the ingest figures' chunk texts (the sidecar's chunker on corpus
  documents). Both sides get the texts sorted by length and cut into batches of their best
  batch size (``SentenceTransformer.encode`` sorts the same way).
- **Agreement**: cosine of each onnx-int8 vector to its torch vector (chunks, SciFact
  documents and queries).
- **Quality**: BEIR SciFact nDCG@10 / recall@100 for both, ranked exactly (brute-force
  cosine over the whole corpus, as MTEB does), next to the published score. ``--quick`` uses
  a small subset (not comparable with the published score).

No Elasticsearch and no sidecar are involved. Run as ``python -m bench_lib.figures.backend
torch|onnx THREADS`` the module is a worker: JSON commands on stdin, JSON answers on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..context import Context
from ..corpus import DOC_SIZES, INGEST_CHUNKING, chunk_texts, load_beir, make_docs
from ..ir_metrics import evaluate
from ..stack import ROOT, log
from ..stats import median, ratio, rnd

NAME = "backend"
BATCH_SIZES = (16, 32, 64, 128)
SEARCH_SIZE = 100


# -- worker side (one runtime per process) -------------------------------------------------------


class _Encoder:
    """The benchmarked model (``bench_lib.ceiling.model_path``) on one runtime."""

    def __init__(self, kind: str, threads: int) -> None:
        from bench_lib.ceiling import model_path

        self.kind = kind
        self.threads = threads
        path = self.path = model_path()
        if kind == "torch":
            from bench_lib.ceiling import InProcessModel

            self.torch = InProcessModel()
            self.torch.set_threads(threads)
        else:
            from sidecar.runtime.loader import load_model

            self.model = load_model(path, "text_embedding", backend="onnx-int8")
            self.quantisation = json.loads((self.model.entry / "manifest.json").read_text())["quantisation"]

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self.kind == "torch":
            return np.asarray(self.torch.encode(texts, batch_size=batch_size), dtype=np.float32)
        # As SentenceTransformer.encode does: longest first, batches of batch_size.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[Any] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            for i, (vector, _) in zip(rows, self.model.run_batch([texts[i] for i in rows], self.threads),
                                      strict=True):
                out[i] = vector
        return np.stack(out).astype(np.float32, copy=False) if out else np.zeros((0, 384), np.float32)


def _worker(kind: str, threads: int) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=f"bench {kind} worker: %(message)s")
    t0 = time.perf_counter()
    enc = _Encoder(kind, threads)
    hello = {"ready": True, "load_s": round(time.perf_counter() - t0, 2), "model": Path(enc.path).name,
             "torch_imported": "torch" in sys.modules, "onnxruntime_imported": "onnxruntime" in sys.modules}
    if kind == "onnx":
        hello["quantisation"] = enc.quantisation
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "exit":
                break
            texts = json.loads(Path(cmd["texts"]).read_text(encoding="utf-8"))
            if cmd["cmd"] == "sweep":
                enc.encode(texts[:32], 32)  # kernels warm for these lengths
                rates = {}
                for size in cmd["sizes"]:
                    t = time.perf_counter()
                    enc.encode(texts, size)
                    rates[str(size)] = round(len(texts) / (time.perf_counter() - t), 1)
                answer: dict[str, Any] = {"rates": rates}
            else:
                t = time.perf_counter()
                vectors = enc.encode(texts, int(cmd["batch_size"]))
                answer = {"seconds": time.perf_counter() - t}
                np.save(cmd["out"], vectors)
            answer["torch_imported"] = "torch" in sys.modules
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    return 0


# -- parent side ---------------------------------------------------------------------------


class Worker:
    def __init__(self, kind: str, threads: int) -> None:
        scripts = str(ROOT / "scripts")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (scripts, str(ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, "-m", "bench_lib.figures.backend", kind, str(threads)],
                                     cwd=scripts, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} worker exited (code {self.proc.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.kind} worker: {answer['error']}")
        return answer

    def ready(self) -> dict[str, Any]:
        self.hello = self._read()
        return self.hello

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call(cmd="exit")
            except (OSError, RuntimeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _cos_summary(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    c = _cos(a, b)
    return {"n": len(c), "mean": rnd(float(c.mean()), 5), "min": rnd(float(c.min()), 5),
            "p01": rnd(float(np.percentile(c, 1)), 5)}


def _exact_runs(doc_ids: list[str], d: np.ndarray, qids: list[str], q: np.ndarray) -> dict[str, list[str]]:
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    runs: dict[str, list[str]] = {}
    k = min(SEARCH_SIZE, len(doc_ids))
    for start in range(0, len(qids), 64):
        scores = q[start:start + 64] @ d.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, qid in enumerate(qids[start:start + 64]):
            best = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
            runs[qid] = [doc_ids[i] for i in best]
    return runs


def _subset(beir, n_queries: int, n_docs: int):
    from .quality import _subset as quality_subset

    return quality_subset(beir, n_queries, n_docs)


def run(ctx: Context) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    threads = ctx.threads
    n_docs = ctx.size(20, 600)
    n_parts = ctx.size(2, 6)
    docs = make_docs(ctx.words, n_docs, DOC_SIZES["medium"])
    texts = chunk_texts(docs, INGEST_CHUNKING)
    beir = load_beir(ctx.data_dir)
    comparable = not ctx.quick
    if ctx.quick:
        beir = _subset(beir, 10, 40)
    doc_ids = list(beir.corpus)
    qids = sorted(beir.queries)
    log(f"backend: {len(texts)} chunk texts in {n_parts} interleaved parts; SciFact {len(doc_ids)} docs, "
        f"{len(qids)} queries; {threads} thread(s) each")

    tmp = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    files: dict[str, Path] = {}

    def put(name: str, items: list[str]) -> str:
        files[name] = tmp / f"{name}.json"
        files[name].write_text(json.dumps(items), encoding="utf-8")
        return str(files[name])

    size = -(-len(texts) // n_parts)
    parts = [texts[i:i + size] for i in range(0, len(texts), size)]
    for k, part in enumerate(parts):
        put(f"part{k}", part)
    put("sweep", texts[::max(1, len(texts) // ctx.size(48, 384))])
    put("docs", [beir.corpus[d]["title"] + " " + beir.corpus[d]["text"] for d in doc_ids])
    put("queries", [beir.queries[q] for q in qids])

    workers = {kind: Worker(kind, threads) for kind in ("torch", "onnx")}
    try:
        hello = {kind: w.ready() for kind, w in workers.items()}
        log(f"backend: workers ready (torch {hello['torch']['load_s']} s, onnx-int8 {hello['onnx']['load_s']} s)")
        sizes = (32, 64) if ctx.quick else BATCH_SIZES
        best: dict[str, int] = {}
        sweeps: dict[str, dict[str, float]] = {}
        for kind, w in workers.items():
            sweeps[kind] = w.call(cmd="sweep", texts=str(files["sweep"]), sizes=list(sizes))["rates"]
            best[kind] = int(max(sweeps[kind], key=lambda s: sweeps[kind][s]))
        log(f"backend: best batch sizes {best} (texts/s {sweeps})")

        seconds = {"torch": 0.0, "onnx": 0.0}
        part_ratios: list[float] = []
        vectors: dict[str, list[np.ndarray]] = {"torch": [], "onnx": []}
        for k in range(len(parts)):
            order = ("torch", "onnx") if k % 2 == 0 else ("onnx", "torch")
            took = {}
            for kind in order:
                out = tmp / f"{kind}-part{k}.npy"
                took[kind] = workers[kind].call(cmd="encode", texts=str(files[f"part{k}"]),
                                                batch_size=best[kind], out=str(out))["seconds"]
                seconds[kind] += took[kind]
                vectors[kind].append(np.load(out))
            part_ratios.append(round(took["torch"] / took["onnx"], 4))
            log(f"backend: part {k + 1}/{len(parts)}: torch {len(parts[k]) / took['torch']:.1f} texts/s, "
                f"onnx-int8 {len(parts[k]) / took['onnx']:.1f} texts/s")

        encoded: dict[str, dict[str, np.ndarray]] = {"torch": {}, "onnx": {}}
        scifact_s: dict[str, dict[str, float]] = {"torch": {}, "onnx": {}}
        for name in ("queries", "docs"):
            for kind in (("torch", "onnx") if name == "docs" else ("onnx", "torch")):
                out = tmp / f"{kind}-{name}.npy"
                answer = workers[kind].call(cmd="encode", texts=str(files[name]), batch_size=best[kind], out=str(out))
                scifact_s[kind][name] = answer["seconds"]
                encoded[kind][name] = np.load(out)
            log(f"backend: SciFact {name} encoded (torch {scifact_s['torch'][name]:.1f} s, "
                f"onnx-int8 {scifact_s['onnx'][name]:.1f} s)")
        onnx_imported_torch = workers["onnx"].call(cmd="encode", texts=str(files["queries"]), batch_size=32,
                                                   out=str(tmp / "last.npy"))["torch_imported"]
    finally:
        for w in workers.values():
            w.close()
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()

    t_vec, o_vec = np.concatenate(vectors["torch"]), np.concatenate(vectors["onnx"])
    quality = {}
    for kind in ("torch", "onnx"):
        runs = _exact_runs(doc_ids, encoded[kind]["docs"], qids, encoded[kind]["queries"])
        quality[kind] = {k: v for k, v in evaluate(runs, beir.qrels).items() if k in ("ndcg@10", "recall@100")}
    rates = {kind: rnd(len(texts) / seconds[kind], 2) for kind in seconds}
    out: dict[str, Any] = {
        "model": hello["torch"]["model"],
        "threads": threads,
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "workload": {"docs": n_docs, "words_per_doc": DOC_SIZES["medium"], "chunking": INGEST_CHUNKING,
                     "chunks": len(texts), "parts": len(parts)},
        "torch": {"texts_per_s": rates["torch"], "seconds": rnd(seconds["torch"]), "batch_size": best["torch"],
                  "sweep_texts_per_s": sweeps["torch"], "load_s": hello["torch"]["load_s"]},
        "onnx": {"texts_per_s": rates["onnx"], "seconds": rnd(seconds["onnx"]), "batch_size": best["onnx"],
                 "sweep_texts_per_s": sweeps["onnx"], "load_s": hello["onnx"]["load_s"],
                 "quantisation": hello["onnx"].get("quantisation"),
                 "worker_imported_torch": bool(hello["onnx"]["torch_imported"] or onnx_imported_torch)},
        "speed_ratio": ratio(rates["onnx"], rates["torch"]),
        "part_ratios": part_ratios,
        "median_part_ratio": rnd(median(part_ratios), 4),
        "cosine": {"chunks": _cos_summary(o_vec, t_vec),
                   "scifact_docs": _cos_summary(encoded["onnx"]["docs"], encoded["torch"]["docs"]),
                   "scifact_queries": _cos_summary(encoded["onnx"]["queries"], encoded["torch"]["queries"])},
        "scifact": {"docs": len(doc_ids), "queries": len(qids), "comparable_with_published": comparable,
                    "published": beir.published, "search": "exact (brute-force cosine)",
                    "torch": quality["torch"], "onnx": quality["onnx"],
                    "onnx_minus_torch_ndcg@10": rnd(quality["onnx"]["ndcg@10"] - quality["torch"]["ndcg@10"], 5),
                    "texts_per_s": {kind: rnd(len(doc_ids) / scifact_s[kind]["docs"], 2) for kind in scifact_s}},
    }
    log(f"backend: onnx-int8 {rates['onnx']} vs torch {rates['torch']} texts/s ({out['speed_ratio']}×), "
        f"cosine mean {out['cosine']['chunks']['mean']} min {out['cosine']['chunks']['min']}, nDCG@10 "
        f"{quality['onnx']['ndcg@10']} vs {quality['torch']['ndcg@10']}")
    ctx.target(NAME, "onnx-int8 texts/s vs torch fp32", out["speed_ratio"], ">=", 1.2)
    ctx.target(NAME, "onnx-int8 vs torch fp32: mean cosine", out["cosine"]["chunks"]["mean"], ">=", 0.98)
    if comparable:
        ctx.target(NAME, "onnx-int8 nDCG@10 loss vs torch fp32", -out["scifact"]["onnx_minus_torch_ndcg@10"],
                   "<=", 0.01)
    return out


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    c, s = r["cosine"], r["scifact"]
    sub = "" if s["comparable_with_published"] else " (quick subset)"
    pub = s["published"].get("ndcg@10")
    return [
        {"measure": f"onnx-int8 vs torch fp32: texts/s, {r['workload']['chunks']} chunks, {r['threads']} thr",
         "sidecar": r["onnx"]["texts_per_s"], "baseline": r["torch"]["texts_per_s"],
         "result": f"{fmt_ratio(r['speed_ratio'])} (median part {fmt_ratio(r['median_part_ratio'])})",
         "target": "onnx-int8 texts/s vs torch fp32"},
        {"measure": "onnx-int8 vs torch fp32: cosine, chunks (mean)", "sidecar": c["chunks"]["mean"],
         "baseline": 1.0, "result": f"min {c['chunks']['min']}, SciFact docs mean {c['scifact_docs']['mean']}",
         "target": "onnx-int8 vs torch fp32: mean cosine"},
        {"measure": f"SciFact nDCG@10, exact search{sub}: onnx-int8 vs torch", "sidecar": s["onnx"]["ndcg@10"],
         "baseline": s["torch"]["ndcg@10"],
         "result": f"{s['onnx_minus_torch_ndcg@10']:+.4f}" + (f" (published {pub})" if pub else ""),
         "target": "onnx-int8 nDCG@10 loss vs torch fp32"},
        {"measure": f"SciFact recall@100, exact search{sub}: onnx-int8 vs torch", "sidecar": s["onnx"]["recall@100"],
         "baseline": s["torch"]["recall@100"], "result": f"{s['onnx']['recall@100'] - s['torch']['recall@100']:+.4f}"},
    ]


def chart(ax, r: dict[str, Any]) -> None:
    labels = ["chunk texts/s", "SciFact docs/s"]
    torch_v = [r["torch"]["texts_per_s"], r["scifact"]["texts_per_s"]["torch"]]
    onnx_v = [r["onnx"]["texts_per_s"], r["scifact"]["texts_per_s"]["onnx"]]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, torch_v, 0.4, label="torch fp32", color="#9aa5b1")
    ax.bar(x + 0.2, onnx_v, 0.4, label="onnx-int8", color="#1f77b4")
    for i, (o, t) in enumerate(zip(onnx_v, torch_v, strict=True)):
        if t:
            ax.text(i + 0.2, o, f"{o / t:.2f}×", ha="center", va="bottom", fontsize=8)
    s = r["scifact"]
    ax.text(0.02, 0.97, f"cosine mean {r['cosine']['chunks']['mean']}, min {r['cosine']['chunks']['min']}\n"
            f"nDCG@10 {s['onnx']['ndcg@10']} vs {s['torch']['ndcg@10']}", transform=ax.transAxes,
            va="top", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("texts/s")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"7. backend: onnx-int8 vs torch fp32 ({r['threads']} threads)")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], int(sys.argv[2])))
