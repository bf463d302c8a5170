"""semantic_text behaviour that differs between Elasticsearch 8.19 and 9.x: each test asserts
what the node behind the sidecar (ES_VERSION) does in Elasticsearch itself."""

from __future__ import annotations

import http_util as http
import pytest
import semantic_docs as sd

pytestmark = pytest.mark.es

DOCS = {"cat": {"content": "A cat sat on the mat.", "tag": "pet"},
        "list": {"content": ["first value here", "second value there"], "tag": "multi"}}


@pytest.fixture(scope="module")
def version(es_url) -> tuple[int, ...]:
    return http.node_version(es_url)


@pytest.fixture(scope="module")
def env(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "versions-dense")
    index = sd.create_index(sidecar_url, sd.uid("versions"), {
        "content": {"type": "semantic_text", "inference_id": dense}, "tag": {"type": "keyword"}})
    sd.index_docs(sidecar_url, index, DOCS)
    yield {"dense": dense, "index": index}
    sd.delete_index(sidecar_url, index)
    sd.delete_endpoint(sidecar_url, dense)


def test_exclude_vectors_false_returns_chunks_in_source(sidecar_url, env, version):
    """9.2+: ``_source.exclude_vectors: false`` puts each semantic_text field's chunks and
    embeddings under ``_source._inference_fields``; before 9.2 the option changes nothing."""
    status, body = sd.search(sidecar_url, env["index"], {"_source": {"exclude_vectors": False},
                                                          "query": {"ids": {"values": ["cat"]}}})
    assert status == 200, body
    source = body["hits"]["hits"][0]["_source"]
    assert source["content"] == DOCS["cat"]["content"] and "_sidecar_inference" not in source
    if version < (9, 2):
        assert "_inference_fields" not in source
        return
    inference = source["_inference_fields"]["content"]["inference"]
    assert inference["inference_id"] == env["dense"]
    [chunk] = inference["chunks"]["content"]
    assert (chunk["start_offset"], chunk["end_offset"]) == (0, 21) and len(chunk["embeddings"]) == 384

    # Without the option (the default), no vectors anywhere.
    status, body = sd.search(sidecar_url, env["index"], {"query": {"ids": {"values": ["list"]}}})
    assert "_inference_fields" not in body["hits"]["hits"][0]["_source"]
    # The URL form says the same.
    status, body = sd.search(sidecar_url, env["index"], {"query": {"ids": {"values": ["cat"]}}},
                             "?_source_exclude_vectors=false")
    assert status == 200, body
    assert body["hits"]["hits"][0]["_source"]["_inference_fields"]["content"]["inference"] == inference


def test_fields_format_chunks(sidecar_url, env, version):
    """9.2+: ``fields: [{"field": f, "format": "chunks"}]`` returns the text of each chunk;
    before 9.2 a semantic_text field supports no format."""
    long_text = " ".join(f"Sentence {i} is about topic {i % 5}." for i in range(60))
    sd.index_docs(sidecar_url, env["index"], {"long": {"content": long_text, "tag": "long"}})
    status, body = sd.search(sidecar_url, env["index"], {
        "query": {"ids": {"values": ["long", "cat"]}}, "sort": [{"tag": "asc"}],
        "fields": [{"field": "content", "format": "chunks"}, "tag"]})
    if version < (9, 2):
        assert status == 400, body
        assert body["error"]["type"] == "illegal_argument_exception"
        assert body["error"]["reason"] == "Field [content] of type [semantic_text] doesn't support formats."
        return
    assert status == 200, body
    long_hit, cat_hit = body["hits"]["hits"]
    assert cat_hit["fields"] == {"content": ["A cat sat on the mat."], "tag": ["pet"]}
    chunks = long_hit["fields"]["content"]
    assert len(chunks) > 1 and all(c in long_text for c in chunks)
    assert chunks[0].startswith("Sentence 0 ") and chunks[-1].endswith("topic 4.")


def test_max_chunk_size_cap(sidecar_url, version):
    """Before 9.2 ``max_chunk_size`` is capped at 300 words, for endpoints and for fields."""
    chunking = {"strategy": "word", "max_chunk_size": 500, "overlap": 100}
    inference_id = sd.uid("versions-cap")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}",
                                     {**sd.MINILM, "chunking_settings": chunking})
    index = sd.uid("versions-cap")
    status2, body2 = http.json_request("PUT", f"{sidecar_url}/{index}", {"mappings": {"properties": {
        "content": {"type": "semantic_text", "inference_id": inference_id, "chunking_settings": chunking}}}})
    try:
        if version < (9, 2):
            reason = "Invalid value [500.0]. [max_chunk_size] must be a less than or equal to [300.0]"
            assert status == 400 and reason in body["error"]["reason"], body
            assert status2 == 400 and reason in body2["error"]["reason"], body2
            return
        assert status == 200 and body["chunking_settings"] == chunking, body
        assert status2 == 200, body2
        _, mapping = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
        assert mapping[index]["mappings"]["properties"]["content"]["chunking_settings"] == chunking
    finally:
        sd.delete_index(sidecar_url, index)
        sd.delete_endpoint(sidecar_url, inference_id)


def test_inference_id_update(sidecar_url, env, version):
    """9.3+: a field with embeddings may move to a compatible endpoint (same dense settings);
    before, the inference_id of a field with embeddings cannot change."""
    same_model = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "versions-same")
    sparse = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "versions-sparse")
    index = sd.create_index(sidecar_url, sd.uid("versions-move"), {
        "content": {"type": "semantic_text", "inference_id": env["dense"]}})
    sd.index_docs(sidecar_url, index, {"a": {"content": "A cat sat on the mat."}})

    def move(to: str) -> tuple[int, dict]:
        return http.json_request("PUT", f"{sidecar_url}/{index}/_mapping", {"properties": {
            "content": {"type": "semantic_text", "inference_id": to}}})

    try:
        if version < (9, 3):
            status, body = move(same_model)
            assert status == 400, body
            assert body["error"]["reason"] == (
                f"Cannot update parameter [inference_id] from [{env['dense']}] to [{same_model}]")
            return
        status, body = move(sparse)
        assert status == 400 and body["error"]["type"] == "illegal_argument_exception", body
        assert body["error"]["reason"].startswith(
            f"Cannot update [semantic_text] field [content] because inference endpoint [{env['dense']}] with "
            "model settings [MinimalServiceSettings[")
        assert f"is not compatible with new inference endpoint [{sparse}]" in body["error"]["reason"]
        status, body = move("no-such-endpoint")
        assert status == 400 and body["error"]["reason"] == (
            "Cannot update [semantic_text] field [content] because inference endpoint [no-such-endpoint] "
            "does not exist.")

        assert move(same_model) == (200, {"acknowledged": True})
        _, mapping = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
        assert mapping[index]["mappings"]["properties"]["content"]["inference_id"] == same_model
        before = sd.inference_count(sidecar_url, same_model)
        sd.index_docs(sidecar_url, index, {"b": {"content": "Dogs bark at night."}})
        assert sd.inference_count(sidecar_url, same_model) > before
        status, body = sd.search(sidecar_url, index, {"query": {"semantic": {"field": "content",
                                                                             "query": "a dog barking"}}})
        assert status == 200 and sd.ids(body)[0] == "b", body
    finally:
        sd.delete_index(sidecar_url, index)
        sd.delete_endpoint(sidecar_url, same_model)
        sd.delete_endpoint(sidecar_url, sparse)


@pytest.fixture
def slow_provider():
    """A loopback provider that answers after 3 s (a Hugging Face embeddings endpoint)."""
    import http.server
    import json
    import threading
    import time

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(3)
            body = json.dumps([[0.1, 0.2, 0.3]]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.handle_error = lambda *args: None  # the sidecar hangs up on timeout; that is expected
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/embed"
    server.shutdown()


def test_inference_timeout_status(sidecar_url, version, slow_provider):
    """An inference call that runs out of time: 408 before 9.4, 504 from 9.4 (the inference API
    acts as a gateway), with Elasticsearch's timeout reason either way."""
    inference_id = sd.uid("versions-slow")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}", {
        "service": "hugging_face",
        "service_settings": {"api_key": "k", "url": slow_provider, "dimensions": 3, "similarity": "cosine"}})
    assert status == 200, body
    try:
        status, body = http.json_request("POST", f"{sidecar_url}/_inference/text_embedding/{inference_id}?timeout=1s",
                                         {"input": ["hello"]})
        assert status == (504 if version >= (9, 4) else 408), body
        assert body["status"] == status and body["error"]["type"] == "timeout_exception"
        assert body["error"]["reason"] == "Request timed out waiting to be sent after [1s]"
    finally:
        sd.delete_endpoint(sidecar_url, inference_id)


def test_single_shot_precomputed_embeddings(sidecar_url, env, version):
    """9.5+: a semantic_text value ``{"text", "chunks"}`` is indexed with the given embeddings
    (no inference); its chunks must cover the whole text. Before 9.5 such a value is refused."""
    index = env["index"]
    vector = [384 ** -0.5] * 384  # unit length, as the field's dot_product similarity needs
    doc = {"content": {"text": "hello world", "chunks": [
        {"start_offset": 0, "end_offset": 5, "embeddings": vector},
        {"start_offset": 5, "end_offset": 11, "embeddings": vector}]}}
    before = sd.inference_count(sidecar_url, env["dense"])
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/byo?refresh=true", doc)
    if version < (9, 5):
        assert status == 400, body
        return
    assert status == 201, body
    assert sd.inference_count(sidecar_url, env["dense"]) == before
    status, body = sd.search(sidecar_url, index, {"_source": {"exclude_vectors": False},
                                                  "query": {"ids": {"values": ["byo"]}}})
    source = body["hits"]["hits"][0]["_source"]
    assert source["content"] == "hello world"
    chunks = source["_inference_fields"]["content"]["inference"]["chunks"]["content"]
    assert [(c["start_offset"], c["end_offset"]) for c in chunks] == [(0, 5), (5, 11)]
    assert chunks[0]["embeddings"] == pytest.approx(vector)

    incomplete = {"content": {"text": "hello world", "chunks": [
        {"start_offset": 0, "end_offset": 5, "embeddings": vector}]}}
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/byo-incomplete", incomplete)
    assert status == 400 and body["error"]["type"] == "status_exception", body
    assert http.json_request("GET", f"{sidecar_url}/{index}/_doc/byo-incomplete")[0] == 404


def test_chunk_vectors_are_stored_once(es_url, sidecar_url, env, version):
    """9.1+ keeps vectors out of ``_source``: the chunk embeddings live in the index only (not
    twice), and come back when a read asks for them, as the sidecar's own reads do."""
    sd.index_docs(sidecar_url, env["index"], {"stored": {"content": "A cat sat on the mat.", "tag": "x"}})
    status, plain = http.json_request("GET", f"{es_url}/{env['index']}/_doc/stored")
    assert status == 200, plain
    [chunk] = plain["_source"]["_sidecar_inference"]["content"]["chunks"]
    assert (chunk["start_offset"], chunk["end_offset"]) == (0, 21)
    if version >= (9, 1):
        assert "embeddings" not in chunk
    else:
        assert len(chunk["embeddings"]) == 384
    [chunk] = http.stored_source(es_url, env["index"], "stored")["_sidecar_inference"]["content"]["chunks"]
    assert len(chunk["embeddings"]) == 384
    # A partial update through the sidecar keeps them (reused, not recomputed).
    before = sd.inference_count(sidecar_url, env["dense"])
    status, body = http.json_request("POST", f"{sidecar_url}/{env['index']}/_update/stored?refresh=true",
                                     {"doc": {"tag": "animal"}})
    assert status == 200, body
    assert sd.inference_count(sidecar_url, env["dense"]) == before
    [after] = http.stored_source(es_url, env["index"], "stored")["_sidecar_inference"]["content"]["chunks"]
    assert after["embeddings"] == pytest.approx(chunk["embeddings"])
