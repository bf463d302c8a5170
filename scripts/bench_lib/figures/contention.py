"""Figure 12, tail latency on a shared machine: single short queries, one after another, while
another process keeps one core busy. Three settings side by side, each a fresh sidecar serving
the same packaged model: the defaults (``OMP_WAIT_POLICY=PASSIVE``, which the sidecar sets
before torch loads, 1 allocation x 2 threads), the same with OpenMP's spin-waiting left on
(``OMP_WAIT_POLICY=ACTIVE``, what torch does by default), and 2 allocations x 1 thread. Each
gives p50 / p99 latency and the sidecar's CPU per query; the ratio is the setting's p99 over
the defaults'."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from typing import Any

from ..context import Context
from ..stack import Sidecar, cpu_seconds, log
from ..stats import ratio, rnd

NAME = "contention"
SETTINGS = {
    "defaults (PASSIVE, 1x2)": ({}, 1, 2),
    "OMP spin-wait (ACTIVE, 1x2)": ({"OMP_WAIT_POLICY": "ACTIVE"}, 1, 2),
    "PASSIVE, 2x1": ({}, 2, 1),
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _query(url: str, inference_id: str, text: str, params: str = "") -> float:
    import json

    body = json.dumps({"input": text}).encode()
    request = urllib.request.Request(f"{url}/_inference/text_embedding/{inference_id}{params}", data=body,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as resp:
        resp.read()
    return (time.perf_counter() - t) * 1000


def run(ctx: Context) -> dict[str, Any]:
    from sidecar.testing.process import free_port

    queries = [" ".join(ctx.words[i:i + 8]) for i in range(0, 8 * ctx.size(150, 600), 8)]
    # Created (and started by the run's own sidecar) before the machine is made busy.
    ids = {name: ctx.endpoint("contention", allocations=a, threads=t) for name, (_, a, t) in SETTINGS.items()}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    out: dict[str, Any] = {"queries": len(queries), "busy_processes": 1, "settings": {}}
    try:
        for name, (env, _, _) in SETTINGS.items():
            inference_id = ids[name]
            sidecar = Sidecar(ctx.es.url, free_port(), ctx.out_dir / f"{ctx.stamp}-contention.log", extra_env=env)
            sidecar.start()
            try:
                # The model loads (slowly, on a busy machine), the allocations warm up.
                for text in queries[:20]:
                    _query(sidecar.url, inference_id, text, "?timeout=10m")
                cpu0 = cpu_seconds(sidecar.pid)
                latencies = [_query(sidecar.url, inference_id, text) for text in queries]
                cpu = cpu_seconds(sidecar.pid) - cpu0
            finally:
                sidecar.stop()
                ctx.drop_endpoint(inference_id)
            out["settings"][name] = {"p50_ms": rnd(_percentile(latencies, 0.5), 2),
                                     "p99_ms": rnd(_percentile(latencies, 0.99), 2),
                                     "cpu_ms_per_query": rnd(cpu / len(queries) * 1000, 2)}
            log(f"contention: {name}: {out['settings'][name]}")
    finally:
        busy.kill()
        busy.wait()
    base = out["settings"]["defaults (PASSIVE, 1x2)"]
    for values in out["settings"].values():
        values["p99_vs_defaults"] = ratio(values["p99_ms"], base["p99_ms"])
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    base = r["settings"]["defaults (PASSIVE, 1x2)"]
    return [{"measure": f"{name}: single-query p99 ms (p50 {v['p50_ms']}, CPU {v['cpu_ms_per_query']} ms/query), "
                        "one busy process beside",
             "sidecar": v["p99_ms"], "baseline": base["p99_ms"], "result": f"{v['p99_vs_defaults']:.2f}×"}
            for name, v in r["settings"].items()]


def chart(ax, r: dict[str, Any]) -> None:
    from ..report import ratio_bars

    names = list(r["settings"])
    base = r["settings"]["defaults (PASSIVE, 1x2)"]["p99_ms"]
    ratio_bars(ax, names, [r["settings"][n]["p99_ms"] for n in names], [base for _ in names], unit="p99 ms",
               title="12. single-query tail latency beside a busy process", base_label="defaults")
