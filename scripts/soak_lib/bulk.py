"""A large ``_bulk`` streamed through the sidecar: the sidecar's peak RSS stays bounded whatever
the body size, and every document sent is either indexed (with its embeddings, for a
semantic_text index) or reported as a failed item."""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson

from sidecar.semantic.layout import chunks_path, embeddings_path

from .context import Context
from .stack import memory_kb

MB = 1024 * 1024


def _payload_source(size: int) -> bytes:
    rng = random.Random(42)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(4000)]
    text = " ".join(rng.choice(words) for _ in range(2 * size // 5))
    return text.encode()[: 2 * size]


class BulkBody:
    """An NDJSON body of ``count`` documents of about ``doc_bytes`` each, generated while it is
    sent: ``{"n": i, "title": <short, distinct>, "body": <filler>}``."""

    def __init__(self, index: str, total_bytes: int, doc_bytes: int) -> None:
        self.index = index
        self.doc_bytes = doc_bytes
        self.filler = _payload_source(doc_bytes)
        sample = self._line(0)
        self.count = max(1, total_bytes // len(sample))
        self.sent_bytes = 0

    def _line(self, i: int) -> bytes:
        offset = (i * 7919) % self.doc_bytes
        filler = self.filler[offset: offset + self.doc_bytes - 120]
        action = b'{"index":{"_id":"%d"}}\n' % i
        return action + b'{"n":%d,"title":"Document %d is about topic %d and subject %d.","body":"%s"}\n' % (
            i, i, i % 97, i % 13, filler)

    async def chunks(self) -> AsyncIterator[bytes]:
        batch: list[bytes] = []
        size = 0
        for i in range(self.count):
            line = self._line(i)
            batch.append(line)
            size += len(line)
            if size >= MB:
                self.sent_bytes += size
                yield b"".join(batch)
                batch, size = [], 0
                await asyncio.sleep(0)
        if batch:
            self.sent_bytes += size
            yield b"".join(batch)


async def _sample_rss(pid: int, body: BulkBody, samples: list[tuple[int, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            samples.append((body.sent_bytes, memory_kb(pid)["VmRSS"]))
        except (OSError, KeyError):
            return
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


def _progress(samples: list[tuple[int, int]], total: int) -> dict[str, float]:
    """The largest RSS seen (MB) while each quarter of the body was being sent."""
    out: dict[str, float] = {}
    for q in (1, 2, 3, 4):
        seen = [rss for sent, rss in samples if (q - 1) * total / 4 <= sent <= q * total / 4]
        out[f"{25 * q}%"] = round(max(seen, default=0) / 1024, 1)
    return out


async def run(ctx: Context, kind: str) -> None:
    """``kind``: ``plain`` or ``semantic``."""
    args, report = ctx.args, ctx.report
    phase = f"bulk-{kind}"
    sidecar = await ctx.start_sidecar(phase)
    try:
        inference_id = f"{ctx.prefix}-bulk"
        # The semantic index exists in both cases: once a cluster has one, the sidecar reads
        # every bulk (its action lines) to find the items it must fill: the path to prove.
        sem_index = f"{ctx.prefix}-bulk-semantic"
        if sem_index not in ctx.created_indices:
            await ctx.put_openai_endpoint(sidecar, inference_id)
            await ctx.create_index(sidecar, sem_index, {
                "n": {"type": "integer"}, "title": {"type": "semantic_text", "inference_id": inference_id}},
                refresh_interval="-1", **{"index.translog.durability": "async"})
        index = sem_index
        if kind == "plain":
            index = f"{ctx.prefix}-bulk-plain"
            await ctx.create_index(sidecar, index, {"n": {"type": "integer"}}, refresh_interval="-1",
                                   **{"index.translog.durability": "async"})
        body = BulkBody(index, int(args.bulk_mb * MB), int(args.doc_kb * 1024))
        texts_before = ctx.embeddings.texts
        before = memory_kb(sidecar.pid)
        samples: list[tuple[int, int]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(sidecar.pid, body, samples, stop))
        started = time.monotonic()
        url = (f"{sidecar.url}/{index}/_bulk?filter_path=errors,items.*._id,items.*.status,items.*.error.type"
               f"&timeout=5m")
        try:
            async with ctx.session.post(url, data=body.chunks(), headers={"Content-Type": "application/x-ndjson"},
                                        timeout=aiohttp.ClientTimeout(total=args.bulk_timeout_s)) as resp:
                status = resp.status
                raw = await resp.read()
        finally:
            stop.set()
            await sampler
        elapsed = time.monotonic() - started
        after = memory_kb(sidecar.pid)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = raw[:500].decode(errors="replace")
        report.measure(phase, documents_sent=body.count, body_mb=round(body.sent_bytes / MB, 1),
                       seconds=round(elapsed, 1), mb_per_s=round(body.sent_bytes / MB / max(elapsed, 1e-6), 1),
                       http_status=status, vmhwm_before_mb=round(before["VmHWM"] / 1024, 1),
                       vmhwm_after_mb=round(after["VmHWM"] / 1024, 1),
                       peak_growth_mb=round((after["VmHWM"] - before["VmHWM"]) / 1024, 1),
                       rss_mb_by_progress=_progress(samples, body.sent_bytes))
        if not report.check(phase, "bulk answered", status == 200 and isinstance(answer, dict),
                            f"HTTP {status}" + ("" if status == 200 else f": {str(answer)[:300]}")):
            return
        items = answer.get("items") or []
        ids: list[str] = []
        indexed = reported = 0
        error_types: dict[str, int] = {}
        for item in items:
            result = next(iter(item.values()))
            ids.append(str(result.get("_id")))
            if result.get("error") is not None:
                reported += 1
                kind_ = (result["error"] or {}).get("type", "?")
                error_types[kind_] = error_types.get(kind_, 0) + 1
            elif 200 <= int(result.get("status", 0)) < 300:
                indexed += 1
        in_es = await ctx.es_count(index)
        report.measure(phase, items=len(items), indexed=indexed, reported_failed=reported, in_elasticsearch=in_es,
                       **({"failure_types": error_types} if error_types else {}))
        expected_ids = {str(i) for i in range(body.count)}
        report.check(phase, "every document accounted for",
                     len(items) == body.count and set(ids) == expected_ids and indexed + reported == body.count,
                     f"sent {body.count}, items {len(items)}, indexed {indexed} + reported {reported} "
                     f"= {indexed + reported}")
        report.check(phase, "indexed documents are in Elasticsearch", in_es == indexed,
                     f"Elasticsearch holds {in_es}, the bulk reported {indexed} indexed")
        if kind == "semantic":
            without = await ctx.es_count(index, {"bool": {"must_not": {"nested": {
                "path": chunks_path("title"), "query": {"exists": {"field": embeddings_path("title")}}}}}})
            embedded = ctx.embeddings.texts - texts_before
            report.measure(phase, texts_embedded=embedded, indexed_without_embeddings=without)
            report.check(phase, "no document indexed without its embeddings", without == 0,
                         f"{without} indexed document(s) lack embeddings")
        peak_mb = after["VmHWM"] / 1024
        growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
        report.check(phase, "peak RSS bounded", peak_mb <= args.max_rss_mb,
                     f"VmHWM {peak_mb:.0f} MB (bound {args.max_rss_mb} MB) for a {body.sent_bytes / MB:.0f} MB body")
        report.check(phase, "peak RSS growth bounded", growth_mb <= args.max_growth_mb,
                     f"VmHWM grew {growth_mb:.0f} MB (bound {args.max_growth_mb} MB) for a "
                     f"{body.sent_bytes / MB:.0f} MB body")
        state = "running" if sidecar.alive() else f"GONE:\n{sidecar.log_tail()}"
        report.check(phase, "the sidecar is still running", sidecar.alive(), f"pid {sidecar.pid} {state}")
    finally:
        ctx.stop_sidecar(sidecar)
