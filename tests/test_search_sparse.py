"""Sparse queries through the sidecar: ``sparse_vector``, ``text_expansion`` and
``weighted_tokens`` score Σ weight·value as in Elasticsearch, prune where Elasticsearch prunes,
and ``semantic`` on a sparse semantic_text field."""

from __future__ import annotations

import http_util as http
import numpy as np
import pytest
import semantic_docs as sd

pytestmark = pytest.mark.es

DOCS = {
    "1": {"content": "the cat sat on the mat", "tokens": {"cat": 1.5, "mat": 0.5, "the": 0.25}},
    "2": {"content": "a dog runs in the park", "tokens": {"dog": 2.0, "park": 1.0, "the": 0.25}},
    "3": {"content": "cats and dogs", "tokens": {"cat": 3.0, "dog": 1.0}},
}


@pytest.fixture(scope="module")
def env(sidecar_url):
    sparse = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "sparse-q")
    index = sd.create_index(sidecar_url, sd.uid("sparse"), {
        "content": {"type": "semantic_text", "inference_id": sparse}, "tokens": {"type": "sparse_vector"}})
    sd.index_docs(sidecar_url, index, DOCS)
    yield {"sparse": sparse, "index": index}
    sd.delete_index(sidecar_url, index)
    sd.delete_endpoint(sidecar_url, sparse)


def scores(body):
    return {hit["_id"]: hit["_score"] for hit in body["hits"]["hits"]}


def stored(value: float) -> float:
    """A feature value as Lucene's FeatureField keeps it (9 significant bits)."""
    bits = np.float32(value).view(np.uint32) >> np.uint32(15) << np.uint32(15)
    return float(bits.view(np.float32))


def expected(query: dict[str, float], docs=DOCS) -> dict[str, float]:
    out = {}
    for doc_id, doc in docs.items():
        matched = [w * stored(doc["tokens"][t]) for t, w in query.items() if t in doc["tokens"]]
        if matched:
            out[doc_id] = sum(matched)
    return out


def query_tokens(url, inference_id, text):
    status, body = http.json_request("POST", f"{url}/_inference/sparse_embedding/{inference_id}", {"input": text})
    assert status == 200, body
    return body["sparse_embedding"][0]["embedding"]


def test_sparse_vector_query_vector_scores_weighted_sum(sidecar_url, env):
    query = {"cat": 2.0, "mat": 1.0, "dog": 0.5}
    status, body = sd.search(sidecar_url, env["index"], {"query": {"sparse_vector": {
        "field": "tokens", "query_vector": query, "prune": False}}})
    assert status == 200, body
    assert scores(body) == {"1": 3.5, "2": 1.0, "3": 6.5}
    status, body = sd.search(sidecar_url, env["index"], {"query": {"sparse_vector": {
        "field": "tokens", "query_vector": query, "prune": False, "boost": 2, "_name": "sv"}}})
    assert scores(body) == {"1": 7.0, "2": 2.0, "3": 13.0}
    assert body["hits"]["hits"][0]["matched_queries"] == ["sv"]


def test_inference_backed_sparse_queries(sidecar_url, env):
    tokens = query_tokens(sidecar_url, env["sparse"], "cat dog mat park the")
    want = expected(tokens)
    assert want, "the tiny model should share tokens with the documents"
    queries = [
        {"sparse_vector": {"field": "tokens", "inference_id": env["sparse"], "query": "cat dog mat park the",
                           "prune": False}},
        {"text_expansion": {"tokens": {"model_id": env["sparse"], "model_text": "cat dog mat park the"}}},
        {"weighted_tokens": {"tokens": {"tokens": tokens}}},
    ]
    for query in queries:
        status, body = sd.search(sidecar_url, env["index"], {"query": query})
        assert status == 200, body
        assert scores(body) == pytest.approx(want, rel=1e-5), query


def test_default_pruning_matches_elasticsearch(sidecar_url, es_url):
    """Indices created on 8.19+ prune frequent low-weight query tokens by default."""
    docs = {str(i): {"tokens": {"common": 1.0, f"u{i}": 1.0}} for i in range(10)}
    index = sd.create_index(sidecar_url, sd.uid("prune"), {"tokens": {"type": "sparse_vector"}})
    try:
        sd.index_docs(sidecar_url, index, docs)
        query_vector = {"u1": 1.0, "common": 0.1}
        native = {"query": {"sparse_vector": {"field": "tokens", "query_vector": query_vector}}}
        _, direct = sd.search(es_url, index, native)
        _, via = sd.search(sidecar_url, index, native)
        assert scores(via) == scores(direct) == {"1": 1.0}
        _, unpruned = sd.search(sidecar_url, index, {"query": {"sparse_vector": {
            "field": "tokens", "query_vector": query_vector, "prune": False}}, "size": 20})
        assert scores(unpruned)["1"] == pytest.approx(1.1) and len(scores(unpruned)) == 10
        _, explicit = sd.search(sidecar_url, index, {"query": {"weighted_tokens": {"tokens": {
            "tokens": query_vector, "pruning_config": {"tokens_freq_ratio_threshold": 5}}}}})
        assert scores(explicit) == {"1": 1.0}
    finally:
        sd.delete_index(sidecar_url, index)


def test_semantic_on_a_sparse_field(sidecar_url, env):
    status, body = sd.search(sidecar_url, env["index"], {"query": {"semantic": {"field": "content",
                                                                                "query": "cat on a mat"}}})
    assert status == 200, body
    tokens = query_tokens(sidecar_url, env["sparse"], "cat on a mat")
    _, direct = sd.search(sidecar_url, env["index"], {"query": {"sparse_vector": {
        "field": "content", "query_vector": tokens}}})
    assert scores(body) == pytest.approx(scores(direct))
    assert body["hits"]["total"]["value"] >= 1
