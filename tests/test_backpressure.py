"""Backpressure: with a tiny batching queue (``SIDECAR_MAX_QUEUE=8``) an overloaded local model
answers ``429`` with ``Retry-After`` in Elasticsearch's shape, never a 5xx; bulk items whose
inference is refused come back as 429 items and are neither lost nor indexed without their
embeddings; the process stays healthy."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import http_util as http
import pytest
from semantic_docs import MINILM
from sidecar_fixtures import SidecarProcess

pytestmark = pytest.mark.es

ROOT = "_sidecar_inference"
QUEUE = 8


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _sidecar_with_endpoint(es_url, env: dict[str, str], log_dir, prefix: str):
    """A sidecar started with ``env`` and a MiniLM endpoint on it; removed afterwards."""
    proc = SidecarProcess(es_url, env, log_dir / "sidecar.log").start()
    inference_id = uid(prefix)
    status, body = http.json_request("PUT", f"{proc.url}/_inference/text_embedding/{inference_id}", MINILM,
                                     timeout=300)
    assert status == 200, body
    yield proc, inference_id
    http.request("DELETE", f"{proc.url}/_inference/{inference_id}?force=true")
    proc.stop()


@pytest.fixture(scope="module")
def small_queue(es_url, sidecar_env, tmp_path_factory):
    env = {**sidecar_env, "SIDECAR_MAX_QUEUE": str(QUEUE), "SIDECAR_MAX_BATCH_SIZE": "4"}
    yield from _sidecar_with_endpoint(es_url, env, tmp_path_factory.mktemp("backpressure"), "bp")


def _perform(url: str, inference_id: str, n: int) -> tuple[int, dict[str, str], object]:
    texts = [f"backpressure {uuid.uuid4().hex} sentence {i}" for i in range(n)]
    status, headers, raw = http.request("POST", f"{url}/_inference/text_embedding/{inference_id}",
                                        {"input": texts}, timeout=120)
    return status, {k.lower(): v for k, v in headers.items()}, json.loads(raw) if raw else None


def _assert_rejection_shape(status: int, headers: dict[str, str], body) -> None:
    assert status == 429
    retry_after = headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, headers
    assert body["status"] == 429
    assert body["error"]["type"] == "es_rejected_execution_exception"
    assert body["error"]["root_cause"][0]["type"] == "es_rejected_execution_exception"
    assert "queue" in body["error"]["reason"]


def _pending(url: str, inference_id: str) -> int:
    status, body = http.json_request("GET", f"{url}/_ml/trained_models/_stats")
    assert status == 200, body
    for stats in body["trained_model_stats"]:
        deployment = stats.get("deployment_stats") or {}
        if deployment.get("deployment_id") == inference_id:
            return deployment["nodes"][0]["number_of_pending_requests"]
    raise AssertionError(f"no deployment [{inference_id}] in {body}")


def _assert_healthy(proc: SidecarProcess, inference_id: str) -> None:
    assert proc.proc.poll() is None
    assert http.json_request("GET", f"{proc.url}/_sidecar/health")[0] == 200
    deadline = time.monotonic() + 30
    while _pending(proc.url, inference_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pending(proc.url, inference_id) == 0
    status, _, body = _perform(proc.url, inference_id, 2)
    assert status == 200 and len(body["text_embedding"]) == 2, body
    assert "Traceback" not in proc.log_tail(400)


def test_concurrent_perform_gets_es_shaped_429s(small_queue):
    proc, inference_id = small_queue
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda _: _perform(proc.url, inference_id, 6), range(96)))
    statuses = [status for status, _, _ in results]
    print(f"perform statuses: 200={statuses.count(200)} 429={statuses.count(429)} "
          f"other={[s for s in statuses if s not in (200, 429)]}")
    assert all(s in (200, 429) for s in statuses), statuses
    assert statuses.count(429) > 0 and statuses.count(200) > 0
    for status, headers, body in results:
        if status == 429:
            _assert_rejection_shape(status, headers, body)
        else:
            assert len(body["text_embedding"]) == 6
            assert len(body["text_embedding"][0]["embedding"]) == 384
    # A request larger than the whole queue is refused in the same shape.
    # A request larger than the whole queue can never be queued: a 429 that says so and must
    # be split, without a Retry-After.
    status, headers, body = _perform(proc.url, inference_id, QUEUE + 1)
    assert status == 429 and "retry-after" not in headers, headers
    assert body["error"]["type"] == "es_rejected_execution_exception"
    assert f"exceeds the inference queue capacity [{QUEUE}]" in body["error"]["reason"]
    _, metrics, raw = http.request("GET", f"{proc.url}/_sidecar/metrics")
    rejected = [line for line in raw.decode().splitlines()
                if line.startswith("sidecar_deployment_rejected") and inference_id in line]
    assert rejected and float(rejected[0].rsplit(" ", 1)[1]) > 0, rejected
    _assert_healthy(proc, inference_id)


def _index(proc: SidecarProcess, inference_id: str) -> str:
    name = uid("bp-idx")
    status, body = http.json_request("PUT", f"{proc.url}/{name}", {
        "settings": {"number_of_replicas": 0},
        "mappings": {"properties": {"content": {"type": "semantic_text", "inference_id": inference_id}}}})
    assert status == 200, body
    return name


def _bulk(url: str, index: str, ids: list[str]) -> tuple[int, object]:
    lines = []
    for doc_id in ids:
        lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
        lines.append(json.dumps({"content": f"document {doc_id} about {uuid.uuid4().hex}"}))
    return http.json_request("POST", f"{url}/_bulk", "\n".join(lines) + "\n",
                             headers={"Content-Type": "application/x-ndjson"}, timeout=120)


def _check_items(es_url: str, index: str, results: list[tuple[int, object]]) -> tuple[set[str], set[str]]:
    """Every item either indexed (with embeddings) or a 429 item that Elasticsearch does not hold."""
    indexed, rejected = set(), set()
    for status, body in results:
        assert status == 200, body
        for item in body["items"]:
            result = item["index"]
            if result.get("error"):
                assert result["status"] == 429, result
                assert result["error"]["type"] == "es_rejected_execution_exception", result
                rejected.add(result["_id"])
            else:
                assert result["status"] in (200, 201), result
                indexed.add(result["_id"])
    assert not indexed & rejected
    http.request("POST", f"{es_url}/{index}/_refresh")
    _, found = http.json_request("POST", f"{es_url}/{index}/_search", {
        "size": 10_000, "_source": False, "query": {"match_all": {}}})
    stored = {hit["_id"] for hit in found["hits"]["hits"]}
    assert stored == indexed, (sorted(stored - indexed)[:5], sorted(indexed - stored)[:5])
    _, missing = http.json_request("POST", f"{es_url}/{index}/_count", {"query": {"bool": {"must_not": {
        "nested": {"path": f"{ROOT}.content.chunks",
                   "query": {"exists": {"field": f"{ROOT}.content.chunks.embeddings"}}}}}}})
    assert missing["count"] == 0
    return indexed, rejected


def test_bulk_larger_than_the_queue_reports_429_items(small_queue, es_url):
    proc, inference_id = small_queue
    index = _index(proc, inference_id)
    ids = [str(i) for i in range(QUEUE * 3)]
    status, body = _bulk(proc.url, index, ids)
    indexed, rejected = _check_items(es_url, index, [(status, body)])
    assert body["errors"] is True
    assert rejected == set(ids) and not indexed
    _assert_healthy(proc, inference_id)
    http.request("DELETE", f"{proc.url}/{index}")


def test_bulk_under_a_full_queue_reports_429_items(small_queue, es_url):
    proc, inference_id = small_queue
    index = _index(proc, inference_id)
    stop = threading.Event()
    flood_statuses: list[int] = []

    def flood():
        while not stop.is_set():
            flood_statuses.append(_perform(proc.url, inference_id, QUEUE - 2)[0])

    results: list[tuple[int, object]] = []
    rejected: set[str] = set()
    with ThreadPoolExecutor(max_workers=12) as pool:
        floods = [pool.submit(flood) for _ in range(8)]
        try:
            deadline = time.monotonic() + 90
            n = 0
            while time.monotonic() < deadline:
                batch = [pool.submit(_bulk, proc.url, index, [f"{n}-{j}-{i}" for i in range(3)]) for j in range(4)]
                n += 1
                results.extend(f.result() for f in batch)
                if any(item["index"].get("status") == 429 for _, body in results[-4:] for item in body["items"]):
                    if n >= 3:
                        break
        finally:
            stop.set()
            for f in floods:
                f.result()
    indexed, rejected = _check_items(es_url, index, results)
    print(f"bulk items: indexed={len(indexed)} rejected(429)={len(rejected)}; flood: "
          f"200={flood_statuses.count(200)} 429={flood_statuses.count(429)}")
    assert rejected, "the queue never filled up"
    assert all(s in (200, 429) for s in flood_statuses), set(flood_statuses)
    # Re-sending only the refused documents, once the load is gone, indexes them all.
    refused = sorted(rejected)
    for i in range(0, len(refused), QUEUE // 2):
        status, body = _bulk(proc.url, index, refused[i:i + QUEUE // 2])
        assert status == 200 and body["errors"] is False, body
    http.request("POST", f"{es_url}/{index}/_refresh")
    _, count = http.json_request("POST", f"{es_url}/{index}/_count", {"query": {"match_all": {}}})
    assert count["count"] == len(indexed) + len(rejected)
    _assert_healthy(proc, inference_id)
    http.request("DELETE", f"{proc.url}/{index}")


@pytest.fixture(scope="module")
def roomy_queue(es_url, sidecar_env, tmp_path_factory):
    env = {**sidecar_env, "SIDECAR_MAX_QUEUE": "1100"}
    yield from _sidecar_with_endpoint(es_url, env, tmp_path_factory.mktemp("paced"), "paced")


def test_bulk_with_more_chunks_than_the_queue_holds_is_paced_not_refused(roomy_queue, es_url):
    proc, inference_id = roomy_queue
    index = uid("bp-paced")
    status, body = http.json_request("PUT", f"{proc.url}/{index}", {
        "settings": {"number_of_replicas": 0},
        "mappings": {"properties": {"content": {
            "type": "semantic_text", "inference_id": inference_id,
            "chunking_settings": {"strategy": "word", "max_chunk_size": 10, "overlap": 1}}}}})
    assert status == 200, body
    # 140 documents of 100 distinct words: 11 chunks each, more than the queue's 1,100 in all.
    lines = []
    for d in range(140):
        words = " ".join(f"w{d}x{i}" for i in range(100))
        lines += [json.dumps({"index": {"_index": index, "_id": str(d)}}), json.dumps({"content": words})]
    status, body = http.json_request("POST", f"{proc.url}/_bulk?refresh=true", "\n".join(lines) + "\n",
                                     headers={"Content-Type": "application/x-ndjson"}, timeout=600)
    assert status == 200, body
    failed = [item["index"] for item in body["items"] if item["index"].get("error")]
    assert not failed, failed[:3]
    indexed, rejected = _check_items(es_url, index, [(status, body)])
    assert len(indexed) == 140 and not rejected
    _, chunks = http.json_request("POST", f"{es_url}/{index}/_search", {
        "size": 0, "aggs": {"c": {"nested": {"path": f"{ROOT}.content.chunks"}}}})
    assert chunks["aggregations"]["c"]["doc_count"] > 1100
    http.request("DELETE", f"{proc.url}/{index}")
