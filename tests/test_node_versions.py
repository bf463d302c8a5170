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
