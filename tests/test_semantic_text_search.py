"""semantic_text searches answered as Elasticsearch's own REST tests of the inference plugin
expect them: ``exists``, a semantic query whose endpoint is gone, ``_inference_fields``, the
pre-8.18 query paths, ``_field_caps`` and the ``text_similarity_reranker`` details — against
the real node, with the packaged MiniLM model and the tiny local sparse and rerank models."""

from __future__ import annotations

import re

import http_util as http
import numpy as np
import pytest
import semantic_docs as sd

pytestmark = pytest.mark.es


@pytest.fixture(scope="module")
def env(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "st-dense")
    sparse = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "st-sparse")
    dense_index = sd.create_index(sidecar_url, sd.uid("st-dense"), {
        "inference_field": {"type": "semantic_text", "inference_id": dense}, "text_field": {"type": "text"}})
    sparse_index = sd.create_index(sidecar_url, sd.uid("st-sparse"), {
        "inference_field": {"type": "semantic_text", "inference_id": sparse}, "text_field": {"type": "text"}})
    for index in (dense_index, sparse_index):
        sd.index_docs(sidecar_url, index, {"doc1": {"text_field": "foo"},
                                           "doc2": {"inference_field": "inference test"},
                                           "doc3": {"inference_field": None}})
    yield {"dense": dense, "sparse": sparse, "dense_index": dense_index, "sparse_index": sparse_index}
    for name in (dense_index, sparse_index):
        sd.delete_index(sidecar_url, name)
    for endpoint in (dense, sparse):
        sd.delete_endpoint(sidecar_url, endpoint)


# -- exists (70_semantic_text_exists_query.yml) --------------------------------------------------


@pytest.mark.parametrize("which", ["dense_index", "sparse_index"])
def test_exists_finds_the_documents_with_a_value(sidecar_url, env, which):
    status, body = sd.search(sidecar_url, env[which], {"query": {"exists": {"field": "inference_field"}}})
    assert status == 200, body
    assert body["hits"]["total"]["value"] == 1 and sd.ids(body) == ["doc2"]
    assert body["hits"]["hits"][0]["_score"] == 1.0
    status, body = http.json_request("POST", f"{sidecar_url}/{env[which]}/_count",
                                     {"query": {"exists": {"field": "inference_field"}}})
    assert status == 200 and body["count"] == 1, body


def test_exists_before_any_document_matches_nothing(sidecar_url, env):
    index = sd.create_index(sidecar_url, sd.uid("st-empty"), {
        "inference_field": {"type": "semantic_text", "inference_id": env["sparse"]}})
    try:
        status, body = sd.search(sidecar_url, index, {"query": {"exists": {"field": "inference_field"}}})
        assert status == 200 and body["hits"]["total"]["value"] == 0, body
    finally:
        sd.delete_index(sidecar_url, index)


# -- a semantic query whose endpoint no longer exists ----------------------------------------------


def test_semantic_query_on_a_missing_endpoint_is_not_found(sidecar_url, env):
    missing = sd.uid("st-gone")
    index = sd.create_index(sidecar_url, sd.uid("st-gone"), {
        "inference_field": {"type": "semantic_text", "inference_id": missing}})
    try:
        status, body = sd.search(sidecar_url, index, {"query": {"semantic": {"field": "inference_field",
                                                                              "query": "inference test"}}})
        assert status == 404, body
        assert body["error"]["type"] == "resource_not_found_exception"
        assert body["error"]["reason"] == f"Inference endpoint not found [{missing}]"
    finally:
        sd.delete_index(sidecar_url, index)


def test_semantic_query_after_the_endpoint_is_deleted_is_not_found(sidecar_url, env):
    endpoint = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "st-deleted")
    index = sd.create_index(sidecar_url, sd.uid("st-deleted"), {
        "inference_field": {"type": "semantic_text", "inference_id": endpoint}})
    try:
        sd.index_docs(sidecar_url, index, {"1": {"inference_field": "inference test"}})
        sd.delete_endpoint(sidecar_url, endpoint)
        status, body = sd.search(sidecar_url, index, {"query": {"semantic": {"field": "inference_field",
                                                                              "query": "inference test"}}})
        assert status == 404, body
        assert body["error"]["type"] == "resource_not_found_exception"
        assert body["error"]["reason"] == f"Inference endpoint not found [{endpoint}]"
    finally:
        sd.delete_index(sidecar_url, index)


# -- _inference_fields (30_semantic_text_inference.yml) ---------------------------------------------


def _inference_fields_of(hit):
    return hit["_source"]["_inference_fields"]["inference_field"]["inference"]


@pytest.mark.parametrize("request_body", [
    {"fields": ["_inference_fields"]},
    {"_source": {"includes": ["inference_field", "_inference_fields"]}},
])
def test_inference_fields_come_back_in_source(sidecar_url, env, request_body):
    body = {**request_body, "query": {"ids": {"values": ["doc2"]}}}
    status, answer = sd.search(sidecar_url, env["sparse_index"], body)
    assert status == 200, answer
    [hit] = answer["hits"]["hits"]
    assert "_inference_fields" not in hit.get("fields", {})
    assert hit["_source"]["inference_field"] == "inference test"
    inference = _inference_fields_of(hit)
    assert inference["inference_id"] == env["sparse"]
    [chunk] = inference["chunks"]["inference_field"]
    assert (chunk["start_offset"], chunk["end_offset"]) == (0, 14)
    assert isinstance(chunk["embeddings"], dict) and chunk["embeddings"]


def test_inference_fields_by_url_source_includes(sidecar_url, env):
    status, answer = sd.search(sidecar_url, env["dense_index"], {"query": {"ids": {"values": ["doc2"]}}},
                               "?_source_includes=_inference_fields")
    assert status == 200, answer
    [hit] = answer["hits"]["hits"]
    assert "inference_field" not in hit["_source"]
    [chunk] = _inference_fields_of(hit)["chunks"]["inference_field"]
    assert len(chunk["embeddings"]) == 384


# -- _field_caps (10_semantic_text_field_mapping.yml, 100_semantic_text_field_caps.yml) -----------------


def _field_caps(sidecar_url, index, params="fields=*", body=None):
    method = "POST" if body is not None else "GET"
    status, answer = http.json_request(method, f"{sidecar_url}/{index}/_field_caps?{params}", body)
    assert status == 200, answer
    assert not any(name.startswith("_sidecar_inference") for name in answer["fields"]), answer["fields"].keys()
    return answer["fields"]


def test_field_caps_shows_semantic_text_as_searchable_text(sidecar_url, env):
    fields = _field_caps(sidecar_url, env["sparse_index"])
    assert fields["inference_field"] == {"text": {"type": "text", "metadata_field": False, "searchable": True,
                                                  "aggregatable": False}}
    assert fields["text_field"]["text"]["searchable"] is True
    # Its chunks under the names Elasticsearch gives them.
    assert fields["inference_field.inference.chunks.embeddings"]["sparse_vector"]["searchable"] is True
    assert fields["inference_field.inference.chunks"]["nested"]["type"] == "nested"
    fields = _field_caps(sidecar_url, env["dense_index"], "fields=inference_field*")
    assert fields["inference_field.inference.chunks.embeddings"]["dense_vector"]["searchable"] is True
    fields = _field_caps(sidecar_url, env["sparse_index"], "fields=inference_field&include_empty_fields=false")
    assert fields["inference_field"]["text"]["searchable"] is True


def test_field_caps_leaves_out_empty_semantic_fields_when_asked(sidecar_url, env):
    index = sd.create_index(sidecar_url, sd.uid("st-caps"), {
        "sparse_field": {"type": "semantic_text", "inference_id": env["sparse"]},
        "dense_field": {"type": "semantic_text", "inference_id": env["dense"]}})
    try:
        assert {"sparse_field", "dense_field"} <= _field_caps(sidecar_url, index).keys()
        fields = _field_caps(sidecar_url, index, "fields=*&include_empty_fields=false")
        assert "sparse_field" not in fields and "dense_field" not in fields
        sd.index_docs(sidecar_url, index, {"1": {"sparse_field": "these are not the droids you're looking for"}})
        fields = _field_caps(sidecar_url, index, "fields=*&include_empty_fields=false")
        assert fields["sparse_field"]["text"]["searchable"] is True and "dense_field" not in fields
    finally:
        sd.delete_index(sidecar_url, index)


def test_field_caps_with_a_semantic_index_filter(sidecar_url, env):
    fields = _field_caps(sidecar_url, env["sparse_index"], "fields=*", {
        "index_filter": {"semantic": {"field": "inference_field", "query": "test"}}})
    assert fields["inference_field"]["text"]["searchable"] is True
    assert fields["text_field"]["text"]["searchable"] is True


# -- queries naming the pre-8.18 layout (30_semantic_text_inference.yml) ----------------------------


def test_nested_sparse_vector_on_the_legacy_chunks_path(sidecar_url, env):
    status, body = sd.search(sidecar_url, env["sparse_index"], {"query": {"nested": {
        "path": "inference_field.inference.chunks",
        "query": {"sparse_vector": {"field": "inference_field.inference.chunks.embeddings",
                                    "inference_id": env["sparse"], "query": "inference test"}}}}})
    assert status == 200, body
    assert body["hits"]["total"]["value"] == 1 and sd.ids(body) == ["doc2"]
    # The same score as the semantic query Elasticsearch resolves both to.
    _, semantic = sd.search(sidecar_url, env["sparse_index"], {"query": {"semantic": {
        "field": "inference_field", "query": "inference test"}}})
    assert body["hits"]["hits"][0]["_score"] == pytest.approx(semantic["hits"]["hits"][0]["_score"], rel=1e-6)


def test_nested_knn_on_the_legacy_embeddings_path(sidecar_url, env):
    status, body = sd.search(sidecar_url, env["dense_index"], {"query": {"nested": {
        "path": "inference_field.inference.chunks",
        "query": {"knn": {"field": "inference_field.inference.chunks.embeddings",
                          "query_vector_builder": {"text_embedding": {"model_id": env["dense"],
                                                                      "model_text": "inference test"}}}}}}})
    assert status == 200, body
    assert body["hits"]["total"]["value"] == 1 and sd.ids(body) == ["doc2"]
    assert body["hits"]["hits"][0]["_score"] == pytest.approx(1.0, abs=1e-3)


# -- text_similarity_reranker (70_text_similarity_rank_retriever.yml) --------------------------------

RERANK_DOCS = {
    "doc_1": {"text": "As seen from Earth, a solar eclipse happens when the Moon is directly between the Earth and "
                      "the Sun.", "topic": "science", "subtopic": "technology"},
    "doc_2": {"text": "The phases of the Moon come from the position of the Moon relative to the Earth and Sun.",
              "topic": "science", "subtopic": "astronomy"},
    "doc_3": {"text": "Sun Moon Lake is a lake in Nantou County, Taiwan. It is the largest lake in Taiwan.",
              "topic": "geography"},
}
QUESTION = "How often does the moon hide the sun?"


@pytest.fixture(scope="module")
def rerank_env(sidecar_url):
    reranker = sd.create_endpoint(sidecar_url, "rerank", sd.TINY_RERANK, "st-rerank")
    index = sd.create_index(sidecar_url, sd.uid("st-rerank"), {
        "text": {"type": "text"}, "topic": {"type": "keyword"}, "subtopic": {"type": "keyword"}})
    sd.index_docs(sidecar_url, index, RERANK_DOCS)
    status, body = http.json_request("POST", f"{sidecar_url}/_inference/rerank/{reranker}", {
        "query": QUESTION, "input": [RERANK_DOCS[d]["text"] for d in ("doc_1", "doc_2")]})
    assert status == 200, body
    raw = {("doc_1", "doc_2")[r["index"]]: r["relevance_score"] for r in body["rerank"]}
    yield {"reranker": reranker, "index": index, "raw": raw}
    sd.delete_index(sidecar_url, index)
    sd.delete_endpoint(sidecar_url, reranker)


def _normalized(score):
    """``max(s, 0) + min(exp(s), 1)`` in float32, as Elasticsearch makes reranked scores positive."""
    s = np.float32(score)
    return float(np.float32(max(s, np.float32(0))) + np.float32(min(np.float32(np.exp(s)), np.float32(1))))


def _reranker(rerank_env, **extra):
    child = {"standard": {"query": {"bool": {"should": [
        {"constant_score": {"filter": {"term": {"subtopic": "technology"}}, "boost": 10}},
        {"constant_score": {"filter": {"term": {"subtopic": "astronomy"}}, "boost": 1}}]}}}}
    return {"text_similarity_reranker": {"retriever": child, "rank_window_size": 10,
                                         "inference_id": rerank_env["reranker"], "inference_text": QUESTION,
                                         "field": "text", **extra}}


def test_reranked_scores_are_the_models_scores_made_positive(sidecar_url, rerank_env):
    status, body = sd.search(sidecar_url, rerank_env["index"], {"track_total_hits": True,
                                                                 "retriever": _reranker(rerank_env)})
    assert status == 200, body
    assert body["hits"]["total"]["value"] == 2
    expected = {doc: _normalized(raw) for doc, raw in rerank_env["raw"].items()}
    assert {h["_id"]: h["_score"] for h in body["hits"]["hits"]} == pytest.approx(expected, rel=1e-6)
    assert sd.ids(body) == sorted(expected, key=lambda d: -expected[d])


def test_reranker_min_score_drops_hits_from_the_total(sidecar_url, rerank_env):
    raw = rerank_env["raw"]
    best = max(raw, key=raw.get)
    threshold = (raw["doc_1"] + raw["doc_2"]) / 2
    status, body = sd.search(sidecar_url, rerank_env["index"], {
        "track_total_hits": True, "retriever": _reranker(rerank_env, min_score=threshold)})
    assert status == 200, body
    assert body["hits"]["total"]["value"] == 1 and sd.ids(body) == [best]
    status, body = sd.search(sidecar_url, rerank_env["index"], {
        "track_total_hits": True, "retriever": _reranker(rerank_env, min_score=max(raw.values()) + 1)})
    assert status == 200 and body["hits"]["total"]["value"] == 0 and body["hits"]["hits"] == [], body


def test_reranker_explain(sidecar_url, rerank_env):
    status, body = sd.search(sidecar_url, rerank_env["index"], {"explain": True,
                                                                 "retriever": _reranker(rerank_env)})
    assert status == 200, body
    hits = {h["_id"]: h for h in body["hits"]["hits"]}
    explanation = hits["doc_2"]["_explanation"]
    assert explanation["description"] == "sum of:"
    assert explanation["value"] == pytest.approx(hits["doc_2"]["_score"])
    rank_doc = explanation["details"][0]
    assert rank_doc["description"].startswith(
        f"text_similarity_reranker match using inference endpoint: [{rerank_env['reranker']}] on document "
        "field: [text]")
    assert re.search(r"subtopic.*astronomy", rank_doc["details"][0]["details"][0]["description"])
    assert explanation["details"][1]["description"].startswith("match on required clause, product of:")


def test_field_caps_across_indices_where_the_field_differs(sidecar_url, env):
    plain = sd.create_index(sidecar_url, sd.uid("st-plain"), {"inference_field": {"type": "keyword"}})
    multi = sd.create_index(sidecar_url, sd.uid("st-multi"), {"inference_field": {
        "type": "semantic_text", "inference_id": env["sparse"], "fields": {"raw": {"type": "keyword"}}}})
    try:
        fields = _field_caps(sidecar_url, f"{env['sparse_index']},{plain},{multi}", "fields=inference_field")
        entry = fields["inference_field"]
        assert set(entry) == {"text", "keyword"}, entry
        assert sorted(entry["text"]["indices"]) == sorted([env["sparse_index"], multi])
        keyword = entry["keyword"]
        assert (keyword["searchable"], keyword["aggregatable"], keyword["indices"]) == (True, True, [plain])
        assert "non_searchable_indices" not in keyword and "non_aggregatable_indices" not in keyword
    finally:
        sd.delete_index(sidecar_url, plain)
        sd.delete_index(sidecar_url, multi)
