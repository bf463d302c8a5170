"""Nothing is lost under faults: a flaky provider, a sidecar killed mid-bulk, a clean
shutdown under load. Each test checks the documents Elasticsearch ends up holding."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_util as http
import numpy as np
import pytest
from sidecar_fixtures import SidecarProcess

pytestmark = pytest.mark.es
ROOT = "_sidecar_inference"


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class _FlakyEmbeddings(BaseHTTPRequestHandler):
    """OpenAI's embeddings API failing 30% of calls: 429 with Retry-After, 500, connection
    resets, slow answers and malformed bodies."""

    rng = random.Random(1234)
    lock = threading.Lock()
    calls = {"ok": 0, "failed": 0}
    protocol_version = "HTTP/1.1"

    def _send(self, code, payload, headers=None):
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            roll = self.rng.random()
        if roll < 0.30:
            with self.lock:
                self.calls["failed"] += 1
            kind = int(roll * 100) % 5
            if kind == 0:
                return self._send(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"})
            if kind == 1:
                return self._send(500, {"error": {"message": "The server had an error"}})
            if kind == 2:
                self.close_connection = True
                self.connection.shutdown(2)  # reset mid-request
                return None
            if kind == 3:
                time.sleep(0.5)
                return self._send(503, {"error": {"message": "overloaded"}})
            return self._send(200, b'{"object": "list", "data": [{"embedding": [0.1,')  # malformed
        with self.lock:
            self.calls["ok"] += 1
        data = []
        for i, text in enumerate(body["input"]):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            vec = np.random.default_rng(seed).normal(size=8)
            data.append({"object": "embedding", "index": i, "embedding": (vec / np.linalg.norm(vec)).tolist()})
        self._send(200, {"object": "list", "data": data, "model": body["model"],
                         "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyEmbeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/embeddings"
    server.shutdown()


def _ndjson(index, n, text=lambda i: f"Document {i} about subject {i % 17}. Another sentence here."):
    lines = []
    for i in range(n):
        lines.append(json.dumps({"index": {"_index": index, "_id": str(i)}}))
        lines.append(json.dumps({"content": text(i)}))
    return ("\n".join(lines) + "\n").encode()


def _count(es_url, index, query=None):
    http.request("POST", f"{es_url}/{index}/_refresh")
    return http.json_request("POST", f"{es_url}/{index}/_count", {"query": query or {"match_all": {}}})[1]["count"]


def _without_embeddings(index_field):
    return {"bool": {"must_not": {"nested": {"path": f"{ROOT}.{index_field}.chunks", "query": {
        "exists": {"field": f"{ROOT}.{index_field}.chunks.embeddings"}}}}}}


def test_flaky_provider_loses_nothing(es_url, sidecar_env, tmp_path, flaky_provider):
    env = {**sidecar_env, "SIDECAR_HTTP_RETRY_INITIAL_DELAY": "0.05", "SIDECAR_HTTP_RETRY_MAX_DELAY": "0.2",
           "SIDECAR_HTTP_RETRY_TIMEOUT": "5", "SIDECAR_HTTP_READ_TIMEOUT": "5"}
    proc = SidecarProcess(es_url, env, tmp_path / "sidecar.log").start()
    try:
        inference_id = uid("flaky")
        status, body = http.json_request("PUT", f"{proc.url}/_inference/text_embedding/{inference_id}", {
            "service": "openai", "service_settings": {
                "api_key": "sk-flaky", "model_id": "text-embedding-3-small", "url": flaky_provider,
                "dimensions": 8, "rate_limit": {"requests_per_minute": 1_000_000}}})
        for _ in range(20):  # the probe itself may meet a fault; creating again is what a user does
            if status == 200:
                break
            status, body = http.json_request("PUT", f"{proc.url}/_inference/text_embedding/{inference_id}", {
                "service": "openai", "service_settings": {
                    "api_key": "sk-flaky", "model_id": "text-embedding-3-small", "url": flaky_provider,
                    "dimensions": 8, "rate_limit": {"requests_per_minute": 1_000_000}}})
        assert status == 200, body
        index = uid("flaky")
        assert http.json_request("PUT", f"{proc.url}/{index}", {
            "settings": {"number_of_replicas": 0},
            "mappings": {"properties": {"content": {"type": "semantic_text", "inference_id": inference_id}}}})[0] == 200
        status, result = http.json_request("POST", f"{proc.url}/_bulk?refresh=true", _ndjson(index, 10_000),
                                           headers={"Content-Type": "application/x-ndjson"}, timeout=900)
        assert status == 200, result
        assert len(result["items"]) == 10_000
        reported = {item["index"]["_id"] for item in result["items"] if item["index"].get("error")}
        indexed = {item["index"]["_id"] for item in result["items"] if item["index"].get("status") in (200, 201)}
        assert reported | indexed == {str(i) for i in range(10_000)} and not reported & indexed
        # Every document is either in Elasticsearch with its embeddings or reported failed.
        assert _count(es_url, index) == len(indexed)
        assert _count(es_url, index, _without_embeddings("content")) == 0
        assert _FlakyEmbeddings.calls["failed"] > 0 and len(indexed) > 5_000
    finally:
        proc.stop()


def test_kill_9_mid_bulk_then_resend(es_url, sidecar_env, tmp_path):
    proc = SidecarProcess(es_url, sidecar_env, tmp_path / "a.log").start()
    inference_id = uid("crash")
    index = uid("crash")
    assert http.json_request("PUT", f"{proc.url}/_inference/text_embedding/{inference_id}", {
        "service": "elasticsearch", "service_settings": {
            "model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1, "num_threads": 1}})[0] == 200
    assert http.json_request("PUT", f"{proc.url}/{index}", {
        "settings": {"number_of_replicas": 0},
        "mappings": {"properties": {"content": {"type": "semantic_text", "inference_id": inference_id}}}})[0] == 200
    body = _ndjson(index, 3000)

    def send():
        try:
            http.request("POST", f"{proc.url}/_bulk", body, headers={"Content-Type": "application/x-ndjson"},
                         timeout=600)
        except OSError:
            pass  # the sidecar is killed under this request

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 120
    while _count(es_url, index) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait()
    sender.join(60)
    partial = _count(es_url, index)
    assert 0 < partial < 3000
    assert _count(es_url, index, _without_embeddings("content")) == 0

    restarted = SidecarProcess(es_url, sidecar_env, tmp_path / "b.log").start()
    try:
        assert http.json_request("GET", f"{restarted.url}/_inference/{inference_id}")[0] == 200
        status, result = http.json_request("POST", f"{restarted.url}/_bulk?refresh=true", body,
                                           headers={"Content-Type": "application/x-ndjson"}, timeout=600)
        assert status == 200 and result["errors"] is False
        assert _count(es_url, index) == 3000
        assert _count(es_url, index, _without_embeddings("content")) == 0
        http.request("DELETE", f"{restarted.url}/_inference/{inference_id}?force=true")
    finally:
        restarted.stop()


def test_sigterm_finishes_in_flight_requests(es_url, sidecar_env, tmp_path):
    proc = SidecarProcess(es_url, sidecar_env, tmp_path / "s.log").start()
    inference_id = uid("term")
    index = uid("term")
    assert http.json_request("PUT", f"{proc.url}/_inference/text_embedding/{inference_id}", {
        "service": "elasticsearch", "service_settings": {
            "model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1, "num_threads": 1}})[0] == 200
    assert http.json_request("PUT", f"{proc.url}/{index}", {
        "settings": {"number_of_replicas": 0},
        "mappings": {"properties": {"content": {"type": "semantic_text", "inference_id": inference_id}}}})[0] == 200
    outcome = {}

    def send():
        outcome["response"] = http.json_request("POST", f"{proc.url}/_bulk?refresh=true", _ndjson(index, 400),
                                                headers={"Content-Type": "application/x-ndjson"}, timeout=120)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.0)
    proc.proc.send_signal(signal.SIGTERM)
    sender.join(120)
    status, result = outcome["response"]
    assert status == 200 and result["errors"] is False and len(result["items"]) == 400
    assert proc.proc.wait(60) == 0
    assert _count(es_url, index) == 400
    with pytest.raises(OSError):
        http.request("GET", f"{proc.url}/_sidecar/health", timeout=5)
    http.request("DELETE", f"{es_url}/.sidecar-inference/_doc/{inference_id}")
