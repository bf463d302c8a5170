"""Figure 2, pass-through overhead: searches and small index requests sent through the
sidecar versus straight to Elasticsearch, under concurrency (64 connections, ``wrk`` or an
aiohttp client), and one at a time. Rounds alternate direct/sidecar (ABBA) so that load from
elsewhere weighs on both. CPU time per request of the sidecar and of Elasticsearch is read
from ``/proc`` and the node stats: it shows the cost even where the machine is noisy.

A bare aiohttp reverse proxy (:mod:`bench_lib.bare_proxy`: no routing, middlewares, logs or
metrics) runs in the same rounds: the floor of a Python proxy on this machine, which tells
what the sidecar's own logic costs apart from the HTTP library and the system calls. It runs
twice: with CPython's default garbage-collector settings, and with the sidecar's
(:mod:`sidecar.gc_tuning`), the stricter floor that leaves only the sidecar's own code."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from typing import Any

from .. import client
from ..context import Context
from ..loadgen import Scenario, have_wrk, run_round
from ..profile import Profile, available
from ..stack import ROOT, cpu_seconds, es_cpu_seconds, log
from ..stats import median, ratio, rnd

NAME = "passthrough"
CONNECTIONS = 64


def _setup(ctx: Context) -> tuple[list[Scenario], str, str]:
    search_index = ctx.index("pt-search")
    write_index = ctx.index("pt-write")
    client.create_plain_index(ctx.es_conn, search_index)
    client.create_plain_index(ctx.es_conn, write_index)
    words = ctx.words
    titles = [" ".join(words[i:i + 12]) for i in range(0, 12 * 2000, 12)]
    body = client.bulk_body(search_index, [{"title": t, "n": i} for i, t in enumerate(titles)])
    client.check_bulk(ctx.es_conn.json("POST", "/_bulk", ndjson=body))
    ctx.es_conn.json("POST", f"/{search_index}/_refresh")
    rng = random.Random(7)
    terms = rng.sample(sorted({w.lower().strip(".,;:()") for t in titles for w in t.split() if len(w) > 5}), 50)
    searches = [json.dumps({"query": {"match": {"title": term}}, "size": 10}) for term in terms]
    docs = [json.dumps({"title": t, "n": i}) for i, t in enumerate(titles[:200])]
    return [
        Scenario("search", "POST", f"/{search_index}/_search", searches),
        Scenario("index", "POST", f"/{write_index}/_doc", docs),
    ], search_index, write_index


class BareProxy:
    """The bare aiohttp proxy in its own process, in front of the same Elasticsearch."""

    def __init__(self, es_url: str, *, gc_tuned: bool = False) -> None:
        from sidecar.testing.process import answers, free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        scripts = str(ROOT / "scripts")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (scripts, env.get("PYTHONPATH")) if p)
        args = [sys.executable, "-m", "bench_lib.bare_proxy", es_url, str(self.port)]
        self.proc = subprocess.Popen([*args, "--gc-tuned"] if gc_tuned else args,
                                     cwd=scripts, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if answers(self.url):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the bare aiohttp proxy did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _round(ctx: Context, base_url: str, scenario: Scenario, duration: float,
           profile: Profile | None = None, pid: int | None = None) -> dict[str, Any]:
    pid = pid or ctx.sidecar.pid
    side_cpu0 = cpu_seconds(pid)
    es_cpu0 = es_cpu_seconds(ctx.es_conn)
    if profile is not None:
        profile.start()
    try:
        result = run_round(base_url, scenario, connections=CONNECTIONS, duration_s=duration)
    finally:
        if profile is not None:
            profile.stop()
    side_cpu = cpu_seconds(pid) - side_cpu0
    es_cpu1 = es_cpu_seconds(ctx.es_conn)
    n = max(1, result["requests"])
    result["sidecar_cpu_us_per_req"] = rnd(side_cpu / n * 1e6, 1)
    if es_cpu0 is not None and es_cpu1 is not None:
        result["es_cpu_us_per_req"] = rnd((es_cpu1 - es_cpu0) / n * 1e6, 1)
    return result


def run(ctx: Context) -> dict[str, Any]:
    scenarios, _, _ = _setup(ctx)
    duration = float(ctx.options.get("duration") or (3 if ctx.quick else 10))
    rounds = ctx.size(1, 3)
    sequential_n = ctx.size(100, 500)
    bare = BareProxy(ctx.es.url)
    try:
        tuned = BareProxy(ctx.es.url, gc_tuned=True)
        try:
            return _measure(ctx, scenarios, bare, tuned, duration, rounds, sequential_n)
        finally:
            tuned.stop()
    finally:
        bare.stop()


def _measure(ctx: Context, scenarios: list[Scenario], bare: BareProxy, tuned: BareProxy, duration: float,
             rounds: int, sequential_n: int) -> dict[str, Any]:
    targets = {"direct": ctx.es.url, "sidecar": ctx.sidecar.url, "bare_proxy": bare.url, "bare_proxy_gc": tuned.url}
    pids = {"direct": ctx.sidecar.pid, "sidecar": ctx.sidecar.pid, "bare_proxy": bare.pid, "bare_proxy_gc": tuned.pid}
    out: dict[str, Any] = {"load_generator": "wrk" if have_wrk() else "aiohttp", "connections": CONNECTIONS,
                           "round_seconds": duration, "rounds": rounds, "scenarios": {}}
    for scenario in scenarios:
        # Warm both paths (connection pools, JIT) before measuring.
        for url in targets.values():
            run_round(url, scenario, connections=CONNECTIONS, duration_s=1)
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in targets}
        profile = None
        if ctx.options.get("profile", True) and available():
            profile = Profile(ctx.sidecar.pid, ctx.out_dir / f"{ctx.stamp}-pyspy-{scenario.name}.txt")
        for r in range(rounds):
            order = ("direct", "sidecar", "bare_proxy", "bare_proxy_gc")
            order = order if r % 2 == 0 else order[::-1]
            for side in order:
                # The sidecar's first round is profiled (py-spy samples without stopping it).
                prof = profile if side == "sidecar" and r == 0 else None
                res = _round(ctx, targets[side], scenario, duration, prof, pids[side])
                runs[side].append(res)
                log(f"passthrough: {scenario.name} {side}: {res['req_per_s']} req/s, p50 {res['p50_ms']} ms")
        seq: dict[str, list[float]] = {"direct": [], "sidecar": []}
        for side in ("direct", "sidecar", "direct", "sidecar"):
            lat = client.sequential_latencies(targets[side], scenario.method, scenario.path,
                                              scenario.bodies[0].encode(), sequential_n // 2)
            seq[side].extend(lat)
        seq["bare_proxy"] = seq["bare_proxy_gc"] = []
        summary: dict[str, Any] = {}
        for side in targets:
            rs = runs[side]
            summary[side] = {
                "req_per_s": rnd(median([x["req_per_s"] for x in rs]), 1),
                "p50_ms": rnd(median([x["p50_ms"] for x in rs])),
                "p99_ms": rnd(median([x["p99_ms"] for x in rs])),
                "errors": sum(x["errors"] for x in rs),
                "sidecar_cpu_us_per_req": rnd(median([x["sidecar_cpu_us_per_req"] for x in rs]), 1),
                "es_cpu_us_per_req": rnd(median([x.get("es_cpu_us_per_req") or 0 for x in rs]), 1),
                "sequential_p50_ms": rnd(median(seq[side]) * 1000) if seq[side] else None,
                "rounds": rs,
            }
        if profile is not None:
            summary["profile"] = {"raw_file": str(profile.path), **profile.summary()}
        d, s = summary["direct"], summary["sidecar"]
        summary["throughput_ratio"] = ratio(s["req_per_s"], d["req_per_s"])
        summary["added_p50_ms"] = rnd(s["p50_ms"] - d["p50_ms"])
        summary["added_sequential_p50_ms"] = rnd(s["sequential_p50_ms"] - d["sequential_p50_ms"])
        b = summary["bare_proxy"]
        summary["bare_proxy_throughput_ratio"] = ratio(b["req_per_s"], d["req_per_s"])
        summary["sidecar_cpu_vs_bare_proxy"] = ratio(s["sidecar_cpu_us_per_req"], b["sidecar_cpu_us_per_req"])
        g = summary["bare_proxy_gc"]
        summary["sidecar_cpu_vs_bare_proxy_gc"] = ratio(s["sidecar_cpu_us_per_req"], g["sidecar_cpu_us_per_req"])
        out["scenarios"][scenario.name] = summary
        ctx.target(NAME, f"{scenario.name} throughput via sidecar / direct", summary["throughput_ratio"], ">=", 0.9)
        ctx.target(NAME, f"{scenario.name} added median latency at {CONNECTIONS} connections (ms)",
                   summary["added_p50_ms"], "<=", 1.0)
        ctx.target(NAME, f"{scenario.name} CPU per request vs the bare proxy", summary["sidecar_cpu_vs_bare_proxy"],
                   "<=", 1.15)
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, s in r["scenarios"].items():
        d, v = s["direct"], s["sidecar"]
        out += [
            {"measure": f"{name}: req/s at {r['connections']} connections ({r['load_generator']})",
             "sidecar": v["req_per_s"], "baseline": d["req_per_s"], "result": f"{s['throughput_ratio']:.2f}×",
             "target": f"{name} throughput via sidecar / direct"},
            {"measure": f"{name}: median latency at {r['connections']} connections, ms",
             "sidecar": v["p50_ms"], "baseline": d["p50_ms"], "result": f"{s['added_p50_ms']:+.2f} ms",
             "target": f"{name} added median latency at {r['connections']} connections (ms)"},
            {"measure": f"{name}: median latency one at a time, ms", "sidecar": v["sequential_p50_ms"],
             "baseline": d["sequential_p50_ms"], "result": f"{s['added_sequential_p50_ms']:+.2f} ms"},
            {"measure": f"{name}: sidecar CPU per request, µs", "sidecar": v["sidecar_cpu_us_per_req"],
             "baseline": v["es_cpu_us_per_req"], "result": "baseline: Elasticsearch's CPU per request"},
        ]
        b = s.get("bare_proxy")
        if b:
            out += [
                {"measure": f"{name}: req/s through a bare aiohttp proxy (the Python floor) vs direct",
                 "sidecar": b["req_per_s"], "baseline": d["req_per_s"],
                 "result": f"{s['bare_proxy_throughput_ratio']:.2f}×"},
                {"measure": f"{name}: CPU per request, µs, sidecar vs bare aiohttp proxy",
                 "sidecar": v["sidecar_cpu_us_per_req"], "baseline": b["sidecar_cpu_us_per_req"],
                 "result": f"{s['sidecar_cpu_vs_bare_proxy']:.2f}×",
                 "target": f"{name} CPU per request vs the bare proxy"},
            ]
        g = s.get("bare_proxy_gc")
        if g:
            out.append({"measure": f"{name}: CPU per request, µs, sidecar vs bare proxy with the sidecar's GC settings",
                        "sidecar": v["sidecar_cpu_us_per_req"], "baseline": g["sidecar_cpu_us_per_req"],
                        "result": f"{s['sidecar_cpu_vs_bare_proxy_gc']:.2f}×"})
    return out


def chart(ax, r: dict[str, Any]) -> None:
    from ..report import ratio_bars

    names = list(r["scenarios"])
    ratio_bars(ax, [f"{n} req/s" for n in names], [r["scenarios"][n]["sidecar"]["req_per_s"] for n in names],
               [r["scenarios"][n]["direct"]["req_per_s"] for n in names], unit="requests/s",
               title=f"2. pass-through, {r['connections']} connections", base_label="direct to ES")
