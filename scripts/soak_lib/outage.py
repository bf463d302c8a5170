"""Elasticsearch goes away and comes back while clients keep writing and searching through
the sidecar: Elasticsearch-shaped 503s while it is gone, every request answered within a
bound, recovery without restarting the sidecar, and its sockets and memory bounded.

Two ways for Elasticsearch to go away:

* ``relay``: the sidecar talks to the node through a TCP relay run here, which is cut (new
  connections refused, open ones reset: what the sidecar sees when the node dies) and
  restored; the node and its data stay as they were.
* ``es``: ``scripts/es stop`` and ``scripts/es start`` on the node this script started. Every
  ``scripts/es start`` gives a node a fresh data directory, so the node comes back empty: the
  soak then re-creates its endpoint and indices through the same sidecar (as an operator
  would on a replaced cluster) and expects everything to work again, stale caches included.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import orjson

from .context import Context
from .stack import Relay, SetupError, Sidecar, call, es_shaped, log, memory_kb, sockets

KINDS = ("bulk-plain", "bulk-semantic", "search-plain", "search-semantic", "inference")
ALLOWED_ERRORS = (429, 503, 504)


@dataclass
class Outcome:
    kind: str
    start: float
    latency: float
    status: int          # 0: no HTTP answer
    shaped: bool         # an Elasticsearch error body (errors only)
    detail: str
    item_errors: int = 0  # bulk items answered with an error (in a 200 bulk response)

    @property
    def end(self) -> float:
        return self.start + self.latency

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Traffic:
    def __init__(self, ctx: Context, sidecar: Sidecar, names: dict[str, str]) -> None:
        self.ctx = ctx
        self.sidecar = sidecar
        self.names = names
        self.outcomes: list[Outcome] = []
        self.stopping = asyncio.Event()
        # Cleared while the soak restores what a fresh node lacks: clients wait.
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.t0 = time.monotonic()
        self._n = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _request(self, kind: str) -> tuple[str, str, bytes]:
        self._n += 1
        n = self._n
        base = self.sidecar.url
        if kind == "bulk-plain":
            lines = b"".join(b'{"index":{}}\n{"n":%d,"title":"plain %d"}\n' % (n * 100 + i, n) for i in range(20))
            return "POST", f"{base}/{self.names['plain']}/_bulk?timeout=5s", lines
        if kind == "bulk-semantic":
            lines = b"".join(b'{"index":{}}\n{"n":%d,"title":"semantic document %d part %d"}\n' % (n, n, i)
                             for i in range(10))
            return "POST", f"{base}/{self.names['semantic']}/_bulk?timeout=5s", lines
        if kind == "search-plain":
            return "POST", f"{base}/{self.names['plain']}/_search", orjson.dumps(
                {"size": 3, "query": {"match_all": {}}})
        if kind == "search-semantic":
            return "POST", f"{base}/{self.names['semantic']}/_search", orjson.dumps(
                {"size": 3, "query": {"semantic": {"field": "title", "query": f"document {n % 50}"}}})
        return "POST", f"{base}/_inference/text_embedding/{self.names['inference']}", orjson.dumps(
            {"input": [f"query {n % 50}"]})

    async def client(self, kind: str, session: aiohttp.ClientSession) -> None:
        bound = self.ctx.args.request_bound_s
        while not self.stopping.is_set():
            await self.gate.wait()
            method, url, body = self._request(kind)
            ctype = "application/x-ndjson" if kind.startswith("bulk") else "application/json"
            start = self.now()
            status, shaped, detail, item_errors = 0, False, "", 0
            self.in_flight += 1
            try:
                async with session.request(method, url, data=body, headers={"Content-Type": ctype},
                                           timeout=aiohttp.ClientTimeout(total=bound * 2)) as resp:
                    status = resp.status
                    raw = await resp.read()
                try:
                    parsed = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    parsed = None
                if status >= 300:
                    shaped = es_shaped(status, parsed)
                    detail = (parsed.get("error") or {}).get("type", "") if shaped else raw[:200].decode(errors="replace")
                elif kind.startswith("bulk") and isinstance(parsed, dict) and parsed.get("errors"):
                    failed = [next(iter(i.values())).get("error") for i in parsed.get("items", [])]
                    failed = [e for e in failed if e is not None]
                    item_errors = len(failed)
                    detail = "bulk items failed: " + ", ".join(sorted({str((e or {}).get("type")) for e in failed}))
            except TimeoutError:
                detail = f"no answer within {bound * 2:.0f}s"
            except aiohttp.ClientError as exc:
                detail = f"{type(exc).__name__}: {exc}"
            finally:
                self.in_flight -= 1
            outcome = Outcome(kind, start, self.now() - start, status, shaped, detail, item_errors)
            self.outcomes.append(outcome)
            # Errors come back at once while Elasticsearch is gone: do not spin on them.
            await asyncio.sleep(0.02 if outcome.ok else 0.1)


async def _sample(sidecar: Sidecar, es_port: int, traffic: Traffic, samples: list, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            s = sockets(sidecar.pid, sidecar.port, es_port)
            m = memory_kb(sidecar.pid)
        except OSError:
            return
        samples.append((traffic.now(), s, m))
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except TimeoutError:
            pass


def _fmt_examples(outcomes: list[Outcome], n: int = 3) -> str:
    return "; ".join(f"{o.kind} t={o.start:.1f}s HTTP {o.status or '-'} {o.detail[:120]}" for o in outcomes[:n])


def modes(ctx: Context) -> list[str]:
    mode = ctx.args.outage
    if mode == "auto":
        return ["relay", "es"] if ctx.es.can_restart and not ctx.args.quick else ["relay"]
    if mode == "es" and not ctx.es.can_restart:
        raise SetupError("--outage es needs the node this script starts (not --es-url)")
    return [mode]


async def _prepare(ctx: Context, sidecar: Sidecar, names: dict[str, str], fresh_node: bool) -> None:
    """The endpoint and indices the traffic uses (again, on a node that came back empty)."""
    if fresh_node:
        # Writes made while the node came back may have auto-created plain indices.
        for key in ("plain", "semantic"):
            await call(ctx.session, "DELETE", f"{ctx.es_url}/{names[key]}?ignore_unavailable=true")
        ctx.created_indices[:] = [i for i in ctx.created_indices if i not in (names["plain"], names["semantic"])]
    await ctx.put_openai_endpoint(sidecar, names["inference"])
    await ctx.create_index(sidecar, names["plain"], {"n": {"type": "integer"}, "title": {"type": "text"}})
    await ctx.create_index(sidecar, names["semantic"], {
        "n": {"type": "integer"}, "title": {"type": "semantic_text", "inference_id": names["inference"]}})


async def run(ctx: Context, mode: str) -> None:
    args, report = ctx.args, ctx.report
    phase = f"outage-{mode}"
    es_parts = urlsplit(ctx.es_url)
    relay = None
    sidecar_es_url = ctx.es_url
    if mode == "relay":
        relay = Relay(es_parts.hostname or "127.0.0.1", es_parts.port or 9200)
        await relay.start()
        sidecar_es_url = relay.url
    upstream_port = relay.port if relay else (es_parts.port or 9200)
    sidecar = await ctx.start_sidecar(phase, sidecar_es_url)
    report.measure(phase, how="scripts/es stop, scripts/es start (the node comes back empty)" if mode == "es"
                   else "TCP relay cut, then restored (the node keeps running)")
    try:
        names = {"plain": f"{ctx.prefix}-{mode}-plain", "semantic": f"{ctx.prefix}-{mode}-semantic",
                 "inference": f"{ctx.prefix}-{mode}"}
        await _prepare(ctx, sidecar, names, fresh_node=False)
        traffic = Traffic(ctx, sidecar, names)
        samples: list = []
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(_sample(sidecar, upstream_port, traffic, samples, stop_sampling))
        mem_before = memory_kb(sidecar.pid)
        loop = asyncio.get_running_loop()
        marks: dict[str, float] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            clients = [asyncio.create_task(traffic.client(kind, session))
                       for kind in KINDS for _ in range(args.clients)]
            try:
                await asyncio.sleep(args.warm_s)
                marks["down_start"] = traffic.now()
                log("taking Elasticsearch away")
                if relay is not None:
                    await relay.cut()
                else:
                    await loop.run_in_executor(None, ctx.es.stop_node)
                marks["down"] = traffic.now()
                await asyncio.sleep(args.down_s)
                marks["up_start"] = traffic.now()
                log("bringing Elasticsearch back")
                if relay is not None:
                    await relay.restore()
                else:
                    await loop.run_in_executor(None, ctx.es.start_node)
                marks["up"] = traffic.now()
                if relay is None:
                    log("re-creating the endpoint and indices on the fresh node")
                    traffic.gate.clear()
                    while traffic.in_flight:
                        await asyncio.sleep(0.05)
                    await _prepare(ctx, sidecar, names, fresh_node=True)
                    traffic.gate.set()
                marks["restored"] = traffic.now()
                # Until every kind of request succeeded again (or the bound passed), then a while longer.
                deadline = marks["restored"] + args.recovery_bound_s
                while traffic.now() < deadline:
                    if {o.kind for o in traffic.outcomes if o.ok and o.start >= marks["restored"]} >= set(KINDS):
                        break
                    await asyncio.sleep(0.25)
                await asyncio.sleep(args.tail_s)
            finally:
                traffic.stopping.set()
                traffic.gate.set()
                await asyncio.gather(*clients)
        # Client connections are closed now; give the sidecar a moment to close its side.
        await asyncio.sleep(args.settle_s)
        stop_sampling.set()
        await sampler
        mem_after = memory_kb(sidecar.pid)
        settled = sockets(sidecar.pid, sidecar.port, upstream_port)
        _judge(ctx, phase, sidecar, traffic.outcomes, samples, settled, mem_before, mem_after, marks)
        await _check_semantic_docs(ctx, phase, names["semantic"])
        await call(ctx.session, "DELETE", f"{sidecar.url}/_inference/{names['inference']}?force=true")
    finally:
        ctx.stop_sidecar(sidecar)
        if relay is not None:
            await relay.close()


async def _check_semantic_docs(ctx: Context, phase: str, index: str) -> None:
    from sidecar.semantic.layout import chunks_path, embeddings_path

    total = await ctx.es_count(index)
    without = await ctx.es_count(index, {"bool": {"must_not": {"nested": {
        "path": chunks_path("title"), "query": {"exists": {"field": embeddings_path("title")}}}}}})
    ctx.report.measure(phase, semantic_docs_indexed=total, semantic_docs_without_embeddings=without)
    ctx.report.check(phase, "no document indexed without its embeddings", without == 0,
                     f"{without} of {total} documents lack embeddings")


def _judge(ctx, phase, sidecar, outcomes, samples, settled, mem_before, mem_after, marks) -> None:
    args, report = ctx.args, ctx.report
    t_down_start, t_down, t_up_start, t_up = marks["down_start"], marks["down"], marks["up_start"], marks["up"]
    t_back = marks["restored"]
    bound = args.request_bound_s
    total = len(outcomes)
    down = [o for o in outcomes if o.start >= t_down and o.end <= t_up_start]
    down_503 = [o for o in down if o.status == 503 and o.shaped]
    unanswered = [o for o in outcomes if o.status == 0]
    slow = [o for o in outcomes if o.latency > bound]

    def allowed(o: Outcome) -> bool:
        if o.ok or (o.shaped and o.status in ALLOWED_ERRORS):
            return True
        # A node that came back empty answers 4xx about what it lacks until it is restored.
        fresh = phase == "outage-es" and t_up_start <= o.end and o.start <= t_back
        return fresh and o.shaped and 400 <= o.status < 500

    bad = [o for o in outcomes if o.status and not allowed(o)]
    latencies = sorted(o.latency for o in outcomes) or [0.0]
    by_status: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status or "none")
        by_status[key] = by_status.get(key, 0) + 1
    down_by_kind: dict[str, dict[str, int]] = {}
    for o in down:
        per = down_by_kind.setdefault(o.kind, {})
        per[str(o.status or "none")] = per.get(str(o.status or "none"), 0) + 1
    report.measure(phase, requests=total, by_status=by_status, requests_while_down=len(down),
                   while_down_by_kind=down_by_kind,
                   es_shaped_503_while_down=len(down_503),
                   latency_p50_s=round(latencies[len(latencies) // 2], 3),
                   latency_max_s=round(latencies[-1], 3),
                   es_away_after_s=round(t_down, 1), es_back_after_s=round(t_up, 1),
                   es_down_for_s=round(t_up - t_down_start, 1),
                   **({"state_restored_after_s": round(t_back, 1)} if t_back > t_up + 0.05 else {}))
    report.check(phase, "ES-shaped 503s while Elasticsearch is down",
                 bool(down) and bool(down_503) and all(o.ok or (o.shaped and o.status == 503) for o in down),
                 f"{len(down_503)} of {len(down)} requests made while it was down got an ES-shaped 503"
                 + ("" if all(o.ok or (o.shaped and o.status == 503) for o in down) else
                    "; others: " + _fmt_examples([o for o in down if not o.ok and not (o.shaped and o.status == 503)])))
    report.check(phase, "every request answered within the bound", not unanswered and not slow,
                 f"max {latencies[-1]:.2f}s (bound {bound:.0f}s), {len(unanswered)} without an answer"
                 + (f": {_fmt_examples(unanswered or slow)}" if unanswered or slow else ""))
    report.check(phase, "only 2xx or ES-shaped 429/503/504" + (" (4xx too while the node was empty)"
                                                              if phase == "outage-es" else ""), not bad,
                 f"{len(bad)} other answers" + (f": {_fmt_examples(bad)}" if bad else ""))
    recovery: dict[str, float | None] = {}
    for kind in KINDS:
        first = next((o for o in outcomes if o.kind == kind and o.ok and o.start >= t_back), None)
        recovery[kind] = round(first.end - t_back, 2) if first else None
    report.measure(phase, recovery_s=recovery, bulk_items_reported_failed=sum(o.item_errors for o in outcomes))
    report.check(phase, "recovered without a sidecar restart",
                 all(v is not None and v <= args.recovery_bound_s for v in recovery.values()) and sidecar.alive(),
                 f"first success after Elasticsearch was back, per kind: {recovery} "
                 f"(bound {args.recovery_bound_s:.0f}s); sidecar pid {sidecar.pid} "
                 f"{'still running' if sidecar.alive() else 'GONE'}")
    tail_from = max((v for v in recovery.values() if v is not None), default=0.0) + t_back + 1.0
    tail = [o for o in outcomes if o.start >= tail_from]
    tail_bad = [o for o in tail if not o.ok or o.item_errors]
    report.check(phase, "all requests succeed after recovery", bool(tail) and not tail_bad,
                 f"{len(tail) - len(tail_bad)} of {len(tail)} requests after recovery succeeded"
                 + (f": {_fmt_examples(tail_bad)}" if tail_bad else ""))
    warm = [s for t, s, _ in samples if t < t_down_start] or [s for _, s, _ in samples[:1]]
    base_total = max((s.total for s in warm), default=0)
    peak = max(samples, key=lambda x: x[1].total)[1] if samples else None
    peak_upstream = max((s.upstream for _, s, _ in samples), default=0)
    base_upstream = max((s.upstream for s in warm), default=0)
    concurrency = len(KINDS) * args.clients
    report.measure(phase, sockets_before_outage=base_total, sockets_peak=peak.total if peak else 0,
                   upstream_connections_before=base_upstream, upstream_connections_peak=peak_upstream,
                   sockets_after=settled.as_dict(), concurrent_clients=concurrency)
    limit = base_total + 2 * concurrency + 16
    report.check(phase, "sockets do not pile up",
                 peak is not None and peak.total <= limit and settled.total <= base_total + 8
                 and settled.close_wait <= 2,
                 f"peak {peak.total if peak else '?'} (bound {limit}), after the clients left {settled.total} "
                 f"(bound {base_total + 8}), {settled.close_wait} in CLOSE_WAIT (bound 2)")
    growth = (mem_after["VmHWM"] - mem_before["VmHWM"]) / 1024
    report.measure(phase, vmhwm_before_mb=round(mem_before["VmHWM"] / 1024, 1),
                   vmhwm_after_mb=round(mem_after["VmHWM"] / 1024, 1))
    report.check(phase, "memory bounded", growth <= args.max_outage_growth_mb,
                 f"VmHWM grew {growth:.0f} MB over {total} requests (bound {args.max_outage_growth_mb} MB)")
