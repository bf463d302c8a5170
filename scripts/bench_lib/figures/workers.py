"""Figure 10, worker processes: the same pass-through searches and inference calls against
``--workers 1``, ``2`` and (where the machine has the cores) ``4`` and ``8``, each a fresh
sidecar in front of the same Elasticsearch: requests/s, texts/s, the scaling ratio against one
worker, and the resident memory per worker once it holds the model (every worker loads its
own copy). Elasticsearch and the load generator share the machine's cores with the workers,
so on a small machine the ratio shows how much room is left, not the workers' own ceiling."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from .. import client
from ..context import Context
from ..loadgen import Scenario, run_round
from ..stack import Sidecar, cpu_seconds, log
from ..stats import ratio, rnd

NAME = "workers"
CONNECTIONS = 64


def _counts(cores: int) -> list[int]:
    return [n for n in (1, 2, 4, 8) if n <= max(2, cores)]


def _family(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _infer(url: str, inference_id: str, texts: list[str], seconds: float) -> int:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as session:
        async def worker(k: int) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                batch = texts[(k * 8) % len(texts):][:8] or texts[:8]
                async with session.post(f"{url}/_inference/text_embedding/{inference_id}",
                                        json={"input": batch}) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += len(batch)
        await asyncio.gather(*(worker(k) for k in range(16)))
    return done


def run(ctx: Context) -> dict[str, Any]:
    index = ctx.index("workers-search")
    client.create_plain_index(ctx.es_conn, index)
    titles = [{"title": " ".join(ctx.words[i:i + 12])} for i in range(0, 12 * 500, 12)]
    client.check_bulk(ctx.es_conn.json("POST", "/_bulk", ndjson=client.bulk_body(index, titles)))
    ctx.es_conn.json("POST", f"/{index}/_refresh")
    searches = [json.dumps({"query": {"match": {"title": w}}, "size": 10}) for w in ctx.words[:50]]
    scenario = Scenario("search", "POST", f"/{index}/_search", searches)
    inference_id = ctx.endpoint("workers", threads=1)
    texts = [" ".join(ctx.words[i:i + 40]) for i in range(0, 40 * 256, 40)]
    seconds = float(ctx.options.get("duration") or (3 if ctx.quick else 10))
    out: dict[str, Any] = {"cores": os.cpu_count(), "connections": CONNECTIONS, "round_seconds": seconds, "runs": {}}
    for n in _counts(os.cpu_count() or 1):
        from sidecar.testing.process import free_port

        port = free_port()
        sidecar = Sidecar(ctx.es.url, port, ctx.out_dir / f"{ctx.stamp}-workers-{n}.log",
                          extra_env={"SIDECAR_WORKERS": str(n)})
        sidecar.start()
        try:
            time.sleep(3 + n)  # every worker listening
            run_round(sidecar.url, scenario, connections=CONNECTIONS, duration_s=1)
            pids = _family(sidecar.pid)
            cpu0 = sum(cpu_seconds(p) for p in pids)
            result = run_round(sidecar.url, scenario, connections=CONNECTIONS, duration_s=seconds)
            cpu = sum(cpu_seconds(p) for p in pids) - cpu0
            # Every worker loads the model on its first call; calls spread over them.
            asyncio.run(_infer(sidecar.url, inference_id, texts, 2 + n))
            embedded = asyncio.run(_infer(sidecar.url, inference_id, texts, seconds))
            workers = [p for p in _family(sidecar.pid) if p != sidecar.pid] or [sidecar.pid]
            out["runs"][str(n)] = {
                "search_req_per_s": result["req_per_s"], "search_p99_ms": result["p99_ms"],
                "cpu_us_per_search": rnd(cpu / max(1, result["requests"]) * 1e6, 1),
                "texts_per_s": rnd(embedded / seconds, 1),
                "rss_mb_per_worker": rnd(sum(_rss_mb(p) for p in workers) / len(workers), 1),
            }
            log(f"workers: {n}: {out['runs'][str(n)]}")
        finally:
            sidecar.stop()
    one = out["runs"]["1"]
    for run_ in out["runs"].values():
        run_["search_scaling"] = ratio(run_["search_req_per_s"], one["search_req_per_s"])
        run_["texts_scaling"] = ratio(run_["texts_per_s"], one["texts_per_s"])
    return out


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    one = r["runs"]["1"]
    out = []
    for n, v in r["runs"].items():
        out += [
            {"measure": f"{n} worker(s): pass-through searches/s at {r['connections']} connections",
             "sidecar": v["search_req_per_s"], "baseline": one["search_req_per_s"],
             "result": f"{v['search_scaling']:.2f}×"},
            {"measure": f"{n} worker(s): embedded texts/s (8 per call, 16 callers)", "sidecar": v["texts_per_s"],
             "baseline": one["texts_per_s"], "result": f"{v['texts_scaling']:.2f}×"},
            {"measure": f"{n} worker(s): resident memory per worker with the model, MB",
             "sidecar": v["rss_mb_per_worker"], "baseline": one["rss_mb_per_worker"], "result": ""},
        ]
    return out


def chart(ax, r: dict[str, Any]) -> None:
    from ..report import ratio_bars

    names = list(r["runs"])
    ratio_bars(ax, [f"{n} workers" for n in names], [r["runs"][n]["search_req_per_s"] for n in names],
               [r["runs"]["1"]["search_req_per_s"] for _ in names], unit="searches/s",
               title=f"10. worker processes, {r['cores']} cores", base_label="1 worker")
