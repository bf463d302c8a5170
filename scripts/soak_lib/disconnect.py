"""A client that drops its connection stops the inference it asked for: a large perform-inference
request and a large bulk into a semantic_text index, both on a local model, are abandoned
once the model is busy with them (the bulk once its first window has been embedded and sent);
the model's ``inference_count`` (``GET _ml/trained_models/_stats``) must stop growing soon
after, well before the request's work would have been done, with nothing left queued, and
no document may be indexed without its embeddings."""

from __future__ import annotations

import asyncio
import select
import socket
import time

import orjson

from sidecar.semantic.layout import chunks_path, embeddings_path

from .context import Context
from .stack import SetupError, Sidecar, call, log

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


async def _counts(ctx: Context, sidecar: Sidecar, deployment_id: str) -> tuple[int, int]:
    """(inference_count, pending) of one deployment."""
    status, body = await call(ctx.session, "GET", f"{sidecar.url}/_ml/trained_models/_stats", timeout=30)
    if status != 200 or not isinstance(body, dict):
        raise SetupError(f"GET _ml/trained_models/_stats answered {status}: {body}")
    for stats in body.get("trained_model_stats", []):
        deployment = stats.get("deployment_stats") or {}
        if deployment.get("deployment_id") == deployment_id:
            nodes = deployment.get("nodes") or [{}]
            return int(nodes[0].get("inference_count", 0)), int(nodes[0].get("number_of_pending_requests", 0))
    return 0, 0


def _open(sidecar: Sidecar, method: str, path: str, body: bytes, content_type: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", sidecar.port), timeout=30)
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    return sock


async def _abandon(ctx: Context, sidecar: Sidecar, deployment_id: str, what: str, total: int, after_items: int,
                   method: str, path: str, body: bytes, content_type: str) -> None:
    args, report = ctx.args, ctx.report
    phase = "disconnect"
    loop = asyncio.get_running_loop()
    base, _ = await _counts(ctx, sidecar, deployment_id)
    sock = await loop.run_in_executor(None, _open, sidecar, method, path, body, content_type)
    # Wait until the model is working on this request, then go away.
    deadline = time.monotonic() + args.disconnect_start_s
    started = base
    while time.monotonic() < deadline:
        started, _ = await _counts(ctx, sidecar, deployment_id)
        if started - base >= after_items:
            break
        if select.select([sock], [], [], 0)[0]:
            answer = sock.recv(300).decode(errors="replace")
            sock.close()
            raise SetupError(f"{what}: the sidecar answered before the model got to work on the request, "
                             f"so there was nothing to abandon: {answer!r}")
        await asyncio.sleep(0.1)
    if started - base < after_items:
        sock.close()
        raise SetupError(f"{what}: the model did not start on the request within {args.disconnect_start_s:.0f}s "
                         f"(inference_count grew by {started - base})")
    at_drop, _ = await _counts(ctx, sidecar, deployment_id)
    dropped = time.monotonic()
    sock.close()
    # Watch the count until it has not moved for a while with nothing queued.
    last, last_change, pending = at_drop, dropped, 0
    while time.monotonic() - dropped < args.disconnect_bound_s + 5:
        count, pending = await _counts(ctx, sidecar, deployment_id)
        if count != last:
            last, last_change = count, time.monotonic()
        elif pending == 0 and time.monotonic() - last_change >= 1.5:
            break
        await asyncio.sleep(0.1)
    stopped_after = last_change - dropped
    done = last - base
    report.measure(phase, **{f"{what}_items_requested": total, f"{what}_inferred_before_drop": at_drop - base,
                             f"{what}_inferred_after_drop": last - at_drop, f"{what}_inferred_total": done,
                             f"{what}_stopped_after_s": round(stopped_after, 2),
                             f"{what}_queued_after": pending})
    report.check(phase, f"{what}: inference stops after the client leaves",
                 stopped_after <= args.disconnect_bound_s and pending == 0 and done < total,
                 f"last inference {stopped_after:.1f}s after the drop (bound {args.disconnect_bound_s:.0f}s), "
                 f"{done} of {total} items run, {pending} still queued")


async def run(ctx: Context) -> None:
    args, report = ctx.args, ctx.report
    phase = "disconnect"
    sidecar = await ctx.start_sidecar(phase, env={"HF_HUB_OFFLINE": "1"})
    try:
        inference_id = f"{ctx.prefix}-minilm"
        log(f"loading {MODEL_ID} in the sidecar")
        status, body = await call(ctx.session, "PUT", f"{sidecar.url}/_inference/text_embedding/{inference_id}", {
            "service": "elasticsearch", "service_settings": {
                "model_id": MODEL_ID, "num_allocations": 1, "num_threads": 1}}, timeout=600)
        if status != 200:
            raise SetupError(f"could not create the local endpoint: {status} {body}")
        n = args.disconnect_inputs
        texts = [f"Sentence number {i} talks about topic {i % 31} in a few more words than needed." for i in range(n)]
        await _abandon(ctx, sidecar, inference_id, "perform", n, args.disconnect_after_items, "POST",
                       f"/_inference/text_embedding/{inference_id}", orjson.dumps({"input": texts}),
                       "application/json")

        index = f"{ctx.prefix}-disconnect"
        await ctx.create_index(sidecar, index, {"content": {"type": "semantic_text", "inference_id": inference_id}})
        lines = b"".join(b'{"index":{"_id":"%d"}}\n%s\n' % (i, orjson.dumps({"content": f"Bulk document {i}: {t}"}))
                         for i, t in enumerate(texts))
        # Dropped once the first window has gone to Elasticsearch: some documents are indexed.
        await _abandon(ctx, sidecar, inference_id, "bulk", n, args.disconnect_bulk_after_items, "POST",
                       f"/{index}/_bulk", lines, "application/x-ndjson")
        in_es = await ctx.es_count(index)
        without = await ctx.es_count(index, {"bool": {"must_not": {"nested": {
            "path": chunks_path("content"), "query": {"exists": {"field": embeddings_path("content")}}}}}})
        report.measure(phase, bulk_documents_indexed=in_es, bulk_documents_without_embeddings=without)
        report.check(phase, "bulk: nothing indexed without embeddings after the drop", without == 0,
                     f"{in_es} documents indexed before the drop, {without} of them without embeddings")
        status, body = await call(ctx.session, "POST", f"{sidecar.url}/_inference/text_embedding/{inference_id}",
                                  {"input": ["still serving?"]}, timeout=120)
        report.check(phase, "the sidecar still serves", status == 200 and sidecar.alive(),
                     f"a perform-inference after the drops answered {status}")
        await call(ctx.session, "DELETE", f"{sidecar.url}/_inference/{inference_id}?force=true", timeout=60)
    finally:
        ctx.stop_sidecar(sidecar)
