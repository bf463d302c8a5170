"""Reindexing into semantic_text indices goes through the sidecar, as a task, with the
embeddings filled and — when the source already carries them — reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import http_util as http
import pytest
from elasticsearch import Elasticsearch, helpers

pytestmark = pytest.mark.es
ROOT_FIELD = "_sidecar_inference"
REPO = Path(__file__).resolve().parent.parent


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def endpoint(sidecar_url):
    inference_id = uid("rx")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}", {
        "service": "elasticsearch", "service_settings": {
            "model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1, "num_threads": 1}})
    assert status == 200, body
    yield inference_id
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


@pytest.fixture(scope="module")
def source_index(es_url):
    name = uid("rx-src")
    client = Elasticsearch(es_url)
    client.indices.create(index=name, settings={"number_of_replicas": 0},
                          mappings={"properties": {"content": {"type": "text"}, "n": {"type": "integer"}}})
    helpers.bulk(client, ({"_index": name, "_id": str(i), "content": f"Plain document {i} about item {i % 9}.",
                           "n": i} for i in range(300)), refresh=True)
    return name


def semantic_index(sidecar_url, endpoint):
    name = uid("rx-dest")
    status, body = http.json_request("PUT", f"{sidecar_url}/{name}", {
        "settings": {"number_of_replicas": 0},
        "mappings": {"properties": {"content": {"type": "semantic_text", "inference_id": endpoint},
                                    "n": {"type": "integer"}}}})
    assert status == 200, body
    return name


def count(es_url, index):
    http.request("POST", f"{es_url}/{index}/_refresh")
    return http.json_request("GET", f"{es_url}/{index}/_count")[1]["count"]


def inference_count(sidecar_url, inference_id):
    _, stats = http.json_request("GET", f"{sidecar_url}/_ml/trained_models/{inference_id}/_stats")
    return sum(node["inference_count"] for node in stats["trained_model_stats"][0]["deployment_stats"]["nodes"])


def test_reindex_fills_embeddings_then_reuses_them(sidecar_url, es_url, endpoint, source_index):
    dest = semantic_index(sidecar_url, endpoint)
    status, body = http.json_request("POST", f"{sidecar_url}/_reindex?refresh=true", {
        "source": {"index": source_index, "size": 120}, "dest": {"index": dest}})
    assert status == 200, body
    assert body["total"] == 300 and body["created"] == 300 and body["failures"] == []
    assert body["batches"] == 3
    assert count(es_url, dest) == 300
    doc = http.stored_source(es_url, dest, "7")
    assert doc["content"] == "Plain document 7 about item 7." and doc["n"] == 7
    assert len(doc[ROOT_FIELD]["content"]["chunks"][0]["embeddings"]) == 384

    # Reindexing documents that already carry their embeddings costs no inference.
    dest2 = semantic_index(sidecar_url, endpoint)
    before = inference_count(sidecar_url, endpoint)
    status, body = http.json_request("POST", f"{sidecar_url}/_reindex?refresh=true", {
        "source": {"index": dest}, "dest": {"index": dest2}})
    assert status == 200 and body["created"] == 300, body
    assert inference_count(sidecar_url, endpoint) == before
    assert http.stored_source(es_url, dest2, "7")[ROOT_FIELD] == doc[ROOT_FIELD]


def test_reindex_as_a_task(sidecar_url, es_url, endpoint, source_index):
    dest = semantic_index(sidecar_url, endpoint)
    client = Elasticsearch(sidecar_url)
    task_id = client.reindex(source={"index": source_index, "query": {"range": {"n": {"lt": 100}}}},
                             dest={"index": dest}, wait_for_completion=False)["task"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = client.tasks.get(task_id=task_id).body
        assert info["task"]["action"] == "indices:data/write/reindex"
        assert set(info["task"]["status"]) >= {"total", "created", "updated", "batches", "version_conflicts"}
        if info["completed"]:
            break
        time.sleep(0.3)
    assert info["completed"] is True
    assert info["response"]["created"] == 100 and info["response"]["failures"] == []
    assert count(es_url, dest) == 100


def test_cli_progress_and_resume(sidecar_url, es_url, endpoint, source_index, tmp_path, monkeypatch):
    dest = semantic_index(sidecar_url, endpoint)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    env = {**os.environ}
    # A previous run that was lost half-way: half of the documents are already there.
    client = Elasticsearch(sidecar_url)
    client.reindex(source={"index": source_index, "query": {"range": {"n": {"lt": 150}}}}, dest={"index": dest},
                   refresh=True)
    from sidecar.cli_reindex import _state_path

    state = _state_path(sidecar_url, source_index, dest)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"task": "sidecar-gone:1", "source": source_index, "dest": dest}))
    before = inference_count(sidecar_url, endpoint)
    out = subprocess.run([sys.executable, "-m", "sidecar", "reindex", source_index, dest, "--url", sidecar_url],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resuming" in out.stderr
    assert "300/300" in out.stderr  # the progress bar reached the end
    response = json.loads(out.stdout)
    assert response["created"] == 150 and response["version_conflicts"] == 150
    assert count(es_url, dest) == 300
    # Only the 150 missing documents were embedded.
    assert inference_count(sidecar_url, endpoint) - before <= 150
    assert not state.exists()


def test_other_reindexes_pass_through(sidecar_url, es_url, source_index):
    # The server-only node has no reindex module: its own answer comes back unchanged.
    direct = http.json_request("POST", f"{es_url}/_reindex", {"source": {"index": source_index},
                                                              "dest": {"index": "plain-copy"}})
    via = http.json_request("POST", f"{sidecar_url}/_reindex", {"source": {"index": source_index},
                                                                "dest": {"index": "plain-copy"}})
    assert via == direct
