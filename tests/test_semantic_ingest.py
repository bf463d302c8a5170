"""semantic_text on a plain node: mappings, filling on every write path, reuse of
embeddings, and per-item failures — checked in the documents Elasticsearch holds."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_util as http
import numpy as np
import pytest
from elasticsearch import Elasticsearch, helpers

from sidecar.chunking import chunk_offsets16

pytestmark = pytest.mark.es
ROOT = "_sidecar_inference"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def minilm(sidecar_url):
    inference_id = uid("sem-minilm")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}", {
        "service": "elasticsearch",
        "service_settings": {"model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1,
                             "num_threads": 1}})
    assert status == 200, body
    yield inference_id
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


@pytest.fixture(scope="module")
def elser(sidecar_url):
    inference_id = uid("sem-elser")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/sparse_embedding/{inference_id}", {
        "service": "elasticsearch",
        "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1}})
    assert status == 200, body
    yield inference_id
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


def make_index(sidecar_url, properties, name=None):
    name = name or uid("sem")
    status, body = http.json_request("PUT", f"{sidecar_url}/{name}", {
        "settings": {"number_of_replicas": 0}, "mappings": {"properties": properties}})
    assert status == 200, body
    return name


def stored(es_url, index, doc_id):
    return http.stored_source(es_url, index, doc_id)


def inference_count(sidecar_url, inference_id):
    _, stats = http.json_request("GET", f"{sidecar_url}/_ml/trained_models/{inference_id}/_stats")
    return sum(node["inference_count"] for node in stats["trained_model_stats"][0]["deployment_stats"]["nodes"])


def test_mapping_shows_semantic_text(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {"title": {"type": "text"},
                                     "content": {"type": "semantic_text", "inference_id": minilm}})
    status, body = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
    assert status == 200
    # As in Elasticsearch, model_settings are written when the first document arrives.
    assert body[index]["mappings"]["properties"]["content"] == {"type": "semantic_text", "inference_id": minilm}
    assert http.json_request("PUT", f"{sidecar_url}/{index}/_doc/1?refresh=true", {"content": "a first"})[0] == 201
    status, body = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
    props = body[index]["mappings"]["properties"]
    assert props["content"] == {"type": "semantic_text", "inference_id": minilm, "model_settings": {
        "task_type": "text_embedding", "dimensions": 384, "similarity": props["content"]["model_settings"]["similarity"],
        "element_type": "float"}}
    assert ROOT not in props and "_meta" not in body[index]["mappings"]
    # Elasticsearch itself holds a real mapping: nested chunks with a 384-dim dense_vector.
    _, real = http.json_request("GET", f"{es_url}/{index}/_mapping")
    chunks = real[index]["mappings"]["properties"][ROOT]["properties"]["content"]["properties"]["chunks"]
    assert chunks["type"] == "nested"
    assert chunks["properties"]["embeddings"]["dims"] == 384
    status, body = http.json_request("GET", f"{sidecar_url}/{index}")
    assert body[index]["mappings"]["properties"]["content"]["type"] == "semantic_text"


def test_bad_semantic_mapping_is_rejected(sidecar_url):
    name = uid("sem-bad")
    status, body = http.json_request("PUT", f"{sidecar_url}/{name}", {"mappings": {"properties": {
        "content": {"type": "semantic_text", "inference_id": "x", "colour": "red"}}}})
    assert status == 400 and body["error"]["type"] == "mapper_parsing_exception"
    assert "unknown parameter [colour]" in body["error"]["reason"]
    assert http.json_request("GET", f"{sidecar_url}/{name}")[0] == 404


def test_bulk_fills_chunks_and_embeddings(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": minilm}})
    long_text = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(80))
    client = Elasticsearch(sidecar_url)
    docs = [{"_index": index, "_id": "short", "content": "A cat sat on the mat."},
            {"_index": index, "_id": "long", "content": long_text},
            {"_index": index, "_id": "multi", "content": ["first value", "second value"]},
            {"_index": index, "_id": "none", "other": 1}]
    ok, errors = helpers.bulk(client, docs, refresh=True)
    assert ok == 4 and not errors

    short = stored(es_url, index, "short")
    assert short["content"] == "A cat sat on the mat."
    [chunk] = short[ROOT]["content"]["chunks"]
    assert (chunk["start_offset"], chunk["end_offset"]) == (0, len("A cat sat on the mat."))
    assert len(chunk["embeddings"]) == 384

    long_doc = stored(es_url, index, "long")
    chunks = long_doc[ROOT]["content"]["chunks"]
    expected = chunk_offsets16(long_text, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1})
    assert [(c["start_offset"], c["end_offset"]) for c in chunks] == expected and len(expected) > 1

    # The embedding of a chunk is the model's embedding of that chunk's text.
    status, direct = http.json_request("POST", f"{sidecar_url}/_inference/{minilm}",
                                       {"input": long_text[chunks[1]["start_offset"]:chunks[1]["end_offset"]]})
    assert np.allclose(direct["text_embedding"][0]["embedding"], chunks[1]["embeddings"], atol=1e-4)

    multi = stored(es_url, index, "multi")
    assert multi["content"] == ["first value", "second value"]
    # Each value is chunked on its own; offsets index into the values joined with NUL.
    assert [(c["start_offset"], c["end_offset"]) for c in multi[ROOT]["content"]["chunks"]] == [(0, 11), (12, 24)]
    assert ROOT not in stored(es_url, index, "none")


def test_single_document_apis(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": minilm}})
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/1?refresh=true", {"content": "hello"})
    assert status == 201 and body["result"] == "created" and body["_id"] == "1"
    assert "status" not in body
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_create/1", {"content": "again"})
    assert status == 409 and body["error"]["type"] == "version_conflict_engine_exception"
    assert body["status"] == 409 and body["error"]["root_cause"][0]["type"] == "version_conflict_engine_exception"
    status, body = http.json_request("POST", f"{sidecar_url}/{index}/_doc?refresh=true", {"content": "auto id"})
    assert status == 201
    assert len(stored(es_url, index, body["_id"])[ROOT]["content"]["chunks"]) == 1
    client = Elasticsearch(sidecar_url)
    client.index(index=index, id="c", document={"content": "via client"}, refresh=True)
    assert stored(es_url, index, "c")[ROOT]["content"]["chunks"]


def test_failed_items_are_reported_and_not_indexed(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": minilm},
                                     "lost": {"type": "semantic_text", "inference_id": "no-such-endpoint"}})
    body = "".join([
        json.dumps({"index": {"_index": index, "_id": "good"}}) + "\n" + json.dumps({"content": "fine"}) + "\n",
        json.dumps({"index": {"_index": index, "_id": "bad"}}) + "\n" + json.dumps({"content": {"x": 1}}) + "\n",
        json.dumps({"index": {"_index": index, "_id": "orphan"}}) + "\n" + json.dumps({"lost": "text"}) + "\n",
        json.dumps({"delete": {"_index": index, "_id": "nothing"}}) + "\n",
    ])
    status, result = http.json_request("POST", f"{sidecar_url}/_bulk?refresh=true", body.encode(),
                                       headers={"Content-Type": "application/x-ndjson"})
    assert status == 200 and result["errors"] is True
    items = result["items"]
    assert [next(iter(i)) for i in items] == ["index", "index", "index", "delete"]
    assert items[0]["index"]["status"] == 201
    assert items[1]["index"]["status"] == 400 and items[1]["index"]["error"]["type"] == "status_exception"
    assert items[2]["index"]["status"] == 404
    assert items[2]["index"]["error"]["reason"] == "Inference id [no-such-endpoint] not found for field [lost]"
    assert items[3]["delete"]["status"] == 404
    assert http.json_request("GET", f"{es_url}/{index}/_doc/bad")[0] == 404
    assert http.json_request("GET", f"{es_url}/{index}/_doc/orphan")[0] == 404


def test_copy_to_into_semantic_field(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {
        "title": {"type": "text", "copy_to": "combined"},
        "body": {"type": "text", "copy_to": ["combined"]},
        "combined": {"type": "semantic_text", "inference_id": minilm}})
    _, mapping = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
    assert mapping[index]["mappings"]["properties"]["title"]["copy_to"] == "combined"
    http.json_request("PUT", f"{sidecar_url}/{index}/_doc/1?refresh=true", {"title": "Dogs", "body": "They bark."})
    chunks = stored(es_url, index, "1")[ROOT]["combined"]["chunks"]
    assert sorted(c["source"] for c in chunks) == ["body", "title"]


def test_sparse_semantic_field(sidecar_url, es_url, elser):
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": elser}})
    http.json_request("PUT", f"{sidecar_url}/{index}/_doc/1?refresh=true", {"content": "the sky is blue"})
    [chunk] = stored(es_url, index, "1")[ROOT]["content"]["chunks"]
    assert isinstance(chunk["embeddings"], dict) and all(v > 0 for v in chunk["embeddings"].values())
    _, real = http.json_request("GET", f"{es_url}/{index}/_mapping")
    emb = real[index]["mappings"]["properties"][ROOT]["properties"]["content"]["properties"]["chunks"]["properties"]
    assert emb["embeddings"]["type"] == "sparse_vector"


def test_never_pay_twice(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {"title": {"type": "text"},
                                     "content": {"type": "semantic_text", "inference_id": minilm}})
    client = Elasticsearch(sidecar_url)
    docs = [{"_index": index, "_id": str(i), "content": f"Unique document text number {i}. It has two sentences."}
            for i in range(40)]
    helpers.bulk(client, docs, refresh=True)
    before = inference_count(sidecar_url, minilm)
    # Re-sending the same documents with the same ids costs no inference.
    helpers.bulk(client, docs, refresh=True)
    assert inference_count(sidecar_url, minilm) == before
    # A partial update of another field costs nothing and keeps the embeddings.
    first = stored(es_url, index, "1")[ROOT]
    status, body = http.json_request("POST", f"{sidecar_url}/{index}/_update/1?refresh=true", {"doc": {"title": "new"}})
    assert status == 200 and body["result"] == "updated", body
    assert inference_count(sidecar_url, minilm) == before
    assert stored(es_url, index, "1")[ROOT] == first
    # Changing the text re-embeds it.
    status, body = http.json_request("POST", f"{sidecar_url}/{index}/_update/1?refresh=true",
                                     {"doc": {"content": "Completely different words now."}})
    assert status == 200, body
    assert inference_count(sidecar_url, minilm) > before
    updated = stored(es_url, index, "1")
    assert updated["content"] == "Completely different words now." and updated["title"] == "new"
    assert updated[ROOT]["content"]["chunks"][0]["end_offset"] == len("Completely different words now.")
    # Scripts cannot update documents with semantic fields (as in Elasticsearch).
    status, body = http.json_request("POST", f"{sidecar_url}/{index}/_update/1",
                                     {"script": {"source": "ctx._source.title = 'x'"}})
    assert status == 400 and "Cannot apply update with a script" in body["error"]["reason"]


def test_delete_endpoint_in_use_by_index(sidecar_url):
    inference_id = uid("used")
    assert http.json_request("PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}", {
        "service": "elasticsearch", "service_settings": {
            "model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1, "num_threads": 1}})[0] == 200
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": inference_id}})
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}")
    assert status == 409 and index in body["error"]["reason"]
    assert "is being used in the mapping for indexes" in body["error"]["reason"]
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}?dry_run=true")
    assert body["indexes"] == [index] and body["acknowledged"] is False
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")
    assert status == 200 and body["indexes"] == [index]


# -- a 5,000-document bulk where 1% of the inputs fail inference ------------------------------------------


class _FakeEmbeddings(BaseHTTPRequestHandler):
    """OpenAI's embeddings API; refuses (400) any request holding an input with 'POISON'."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if any("POISON" in text for text in inputs):
            payload, code = {"error": {"message": "This input is not allowed.", "type": "invalid_request_error"}}, 400
        else:
            data = []
            for i, text in enumerate(inputs):
                seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
                vec = np.random.default_rng(seed).normal(size=16)
                data.append({"object": "embedding", "index": i, "embedding": (vec / np.linalg.norm(vec)).tolist()})
            payload, code = {"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": 1, "total_tokens": 1}}, 200
        raw = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_openai():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/embeddings"
    server.shutdown()


def test_5000_doc_bulk_with_one_percent_failing(sidecar_url, es_url, fake_openai):
    inference_id = uid("oai")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}", {
        "service": "openai", "service_settings": {
            "api_key": "sk-test", "model_id": "text-embedding-3-small", "url": fake_openai,
            "rate_limit": {"requests_per_minute": 1_000_000}}})
    assert status == 200, body
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": inference_id}})
    poisoned = {i for i in range(5000) if i % 100 == 37}
    lines = []
    for i in range(5000):
        text = f"Document {i} is about subject {i % 13}." + (" POISON" if i in poisoned else "")
        lines.append(json.dumps({"index": {"_index": index, "_id": str(i)}}))
        lines.append(json.dumps({"content": text}))
    status, result = http.json_request("POST", f"{sidecar_url}/_bulk?refresh=true",
                                       ("\n".join(lines) + "\n").encode(),
                                       headers={"Content-Type": "application/x-ndjson"}, timeout=600)
    assert status == 200 and result["errors"] is True
    failed = {int(item["index"]["_id"]) for item in result["items"] if item["index"].get("error")}
    assert failed == poisoned
    assert all(result["items"][i]["index"]["status"] == 400 for i in poisoned)
    _, count = http.json_request("GET", f"{es_url}/{index}/_count")
    assert count["count"] == 5000 - len(poisoned)
    # Every indexed document has its embedding.
    _, missing = http.json_request("POST", f"{es_url}/{index}/_count", {"query": {"bool": {"must_not": {
        "nested": {"path": f"{ROOT}.content.chunks", "query": {"exists": {"field": f"{ROOT}.content.chunks.embeddings"}}}}}}})
    assert missing["count"] == 0
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


# -- bring your own embeddings ------------------------------------------------------------------------


def test_precomputed_embeddings_are_stored_as_given(sidecar_url, es_url, minilm):
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": minilm}})
    vector = [1 / 384 ** 0.5] * 384  # unit length, as dot_product fields require
    before = inference_count(sidecar_url, minilm)
    # Elasticsearch 9.x metadata shape.
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/meta?refresh=true", {
        "content": "Hello precomputed world",
        "_inference_fields": {"content": {"inference": {"inference_id": minilm, "chunks": {"content": [
            {"start_offset": 0, "end_offset": 5, "embeddings": vector},
            {"start_offset": 6, "end_offset": 23, "embeddings": vector}]}}}}})
    assert status == 201, body
    # Legacy (8.15-8.17) value shape.
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/legacy?refresh=true", {
        "content": {"text": "First part. Second part.", "inference": {"inference_id": minilm, "chunks": [
            {"text": "First part.", "embeddings": vector}, {"text": "Second part.", "embeddings": vector}]}}})
    assert status == 201, body
    assert inference_count(sidecar_url, minilm) == before  # nothing was embedded

    meta = stored(es_url, index, "meta")
    assert "_inference_fields" not in meta and meta["content"] == "Hello precomputed world"
    assert [(c["start_offset"], c["end_offset"]) for c in meta[ROOT]["content"]["chunks"]] == [(0, 5), (6, 23)]
    legacy = stored(es_url, index, "legacy")
    assert legacy["content"] == "First part. Second part."
    assert [(c["start_offset"], c["end_offset"]) for c in legacy[ROOT]["content"]["chunks"]] == [(0, 11), (12, 24)]
    assert legacy[ROOT]["content"]["chunks"][0]["embeddings"] == pytest.approx(vector)


@pytest.mark.parametrize("bad,fragment", [
    ({"inference_id": "other-endpoint", "dims": 384}, "doesn't match the inference_id [other-endpoint]"),
    ({"dims": 12}, "the provided embeddings have [12] dimensions"),
    ({"dims": 384, "end": 999}, "invalid chunk offsets"),
])
def test_precomputed_embeddings_mismatch_is_a_clear_item_error(sidecar_url, es_url, minilm, bad, fragment):
    index = make_index(sidecar_url, {"content": {"type": "semantic_text", "inference_id": minilm}})
    doc = {"content": "Some text", "_inference_fields": {"content": {"inference": {
        "inference_id": bad.get("inference_id", minilm),
        "chunks": {"content": [{"start_offset": 0, "end_offset": bad.get("end", 4),
                                "embeddings": [0.1] * bad["dims"]}]}}}}}
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/x", doc)
    assert status == 400 and fragment in body["error"]["reason"], body
    assert http.json_request("GET", f"{es_url}/{index}/_doc/x")[0] == 404
