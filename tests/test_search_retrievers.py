"""The ``rrf`` and ``text_similarity_reranker`` retrievers, run by the sidecar on a node that
has neither: fused order and scores against a hand computation, pagination, totals,
aggregations, hybrid semantic + lexical search, and reranking with a rerank endpoint."""

from __future__ import annotations

import math

import http_util as http
import numpy as np
import pytest
import semantic_docs as sd

pytestmark = pytest.mark.es

LETTERS = "ABCDE"


@pytest.fixture(scope="module")
def env(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "rrf-minilm")
    reranker = sd.create_endpoint(sidecar_url, "rerank", sd.TINY_RERANK, "rrf-rerank")
    plain = sd.create_index(sidecar_url, sd.uid("rrf-plain"), {"number_val": {"type": "keyword"},
                                                               "char_val": {"type": "keyword"}})
    sd.index_docs(sidecar_url, plain, {str(i): {"number_val": str(i), "char_val": LETTERS[i - 1]}
                                       for i in range(1, 6)})
    semantic = sd.create_index(sidecar_url, sd.uid("rrf-sem"), {
        "content": {"type": "semantic_text", "inference_id": dense}, "title": {"type": "text"},
        "kind": {"type": "keyword"}})
    sd.index_docs(sidecar_url, semantic, {
        "cat": {"title": "cat care", "kind": "pets", "content": "The feline rested on the rug and purred."},
        "dog": {"title": "dog walking", "kind": "pets", "content": "The puppy fetched the ball in the park."},
        "bank": {"title": "rates", "kind": "money", "content": "The central bank raised interest rates."},
        "space": {"title": "launch", "kind": "science", "content": "Astronauts docked with the station."},
    })
    yield {"dense": dense, "reranker": reranker, "plain": plain, "semantic": semantic}
    for name in (plain, semantic):
        sd.delete_index(sidecar_url, name)
    for endpoint in (dense, reranker):
        sd.delete_endpoint(sidecar_url, endpoint)


def ranked(field, values):
    """A standard retriever ranking the documents in the order of ``values``."""
    should = [{"term": {field: {"value": v, "boost": 10.0 - i}}} for i, v in enumerate(values)]
    return {"standard": {"query": {"bool": {"should": should}}}}


def rrf_scores(rankings, constant):
    out = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            out[doc] = np.float32(out.get(doc, np.float32(0)) + np.float32(1) / np.float32(constant + rank))
    return {k: float(v) for k, v in out.items()}


def test_rrf_order_and_scores_match_hand_computation(sidecar_url, env):
    body = {"track_total_hits": True, "retriever": {"rrf": {
        "retrievers": [ranked("number_val", ["1", "2", "3", "4"]), ranked("char_val", ["D", "C", "A", "B"])],
        "rank_window_size": 10, "rank_constant": 10}}}
    status, resp = sd.search(sidecar_url, env["plain"], body)
    assert status == 200, resp
    want = rrf_scores([["1", "2", "3", "4"], ["4", "3", "1", "2"]], 10)
    assert sd.ids(resp) == ["1", "4", "3", "2"]
    for hit in resp["hits"]["hits"]:
        assert hit["_score"] == pytest.approx(want[hit["_id"]], rel=1e-7)
        assert "_rank" not in hit
    assert resp["hits"]["total"] == {"value": 4, "relation": "eq"}
    assert resp["hits"]["max_score"] == pytest.approx(want["1"], rel=1e-7)
    # Pagination inside the window.
    _, page = sd.search(sidecar_url, env["plain"], {**body, "from": 1, "size": 2})
    assert sd.ids(page) == ["4", "3"]
    # Beyond it: nothing, but the total still counts every match.
    _, none = sd.search(sidecar_url, env["plain"], {**body, "from": 10, "size": 2})
    assert sd.ids(none) == [] and none["hits"]["total"]["value"] == 4


def test_rrf_window_defaults_filter_and_ties(sidecar_url, env):
    # Default rank_constant 60 and rank_window_size 10; docs ranked first by one retriever each
    # tie and keep Elasticsearch's shard/doc order.
    body = {"retriever": {"rrf": {"retrievers": [ranked("number_val", ["5"]), ranked("char_val", ["A"])]}}}
    status, resp = sd.search(sidecar_url, env["plain"], body)
    assert status == 200, resp
    assert sd.ids(resp) == ["1", "5"]
    assert [h["_score"] for h in resp["hits"]["hits"]] == [pytest.approx(1 / 61)] * 2
    filtered = {"retriever": {"rrf": {"retrievers": [ranked("number_val", ["5", "1"]), ranked("char_val", ["A"])],
                                      "filter": {"term": {"number_val": "5"}}}}}
    _, resp = sd.search(sidecar_url, env["plain"], filtered)
    assert sd.ids(resp) == ["5"]
    _, resp = sd.search(sidecar_url, env["plain"], {"size": 0, "aggs": {"n": {"terms": {"field": "number_val"}}},
                                                    **body})
    assert resp["hits"]["total"]["value"] == 2
    assert sorted(b["key"] for b in resp["aggregations"]["n"]["buckets"]) == ["1", "5"]


def test_hybrid_rrf_with_semantic_and_knn_retrievers(sidecar_url, env):
    index = env["semantic"]
    lexical = {"standard": {"query": {"match": {"title": "dog walking"}}}}
    semantic = {"standard": {"query": {"semantic": {"field": "content", "query": "a kitten sleeping"}}}}
    knn = {"knn": {"field": "content", "k": 4, "num_candidates": 10,
                   "query_vector_builder": {"text_embedding": {"model_text": "money and finance"}}}}
    rankings = []
    for retriever in (lexical, semantic, knn):
        _, resp = sd.search(sidecar_url, index, {"retriever": retriever, "size": 10, "_source": False})
        rankings.append(sd.ids(resp))
    want = rrf_scores(rankings, 60)
    status, resp = sd.search(sidecar_url, index, {"retriever": {"rrf": {"retrievers": [lexical, semantic, knn]}},
                                                  "_source": ["title"], "fields": ["content"],
                                                  "highlight": {"fields": {"content": {}}}})
    assert status == 200, resp
    expected_order = sorted(want, key=lambda k: -want[k])
    assert sd.ids(resp)[0] == expected_order[0]
    for hit in resp["hits"]["hits"]:
        assert hit["_score"] == pytest.approx(want[hit["_id"]], rel=1e-7)
        assert set(hit["_source"]) == {"title"}
        assert hit["fields"]["content"]
    # The semantic highlighter scores chunks against the semantic retrievers' embeddings.
    assert any("highlight" in hit for hit in resp["hits"]["hits"])


def test_text_similarity_reranker(sidecar_url, env):
    index = env["semantic"]
    child = {"standard": {"query": {"match_all": {}}}}
    _, base = sd.search(sidecar_url, index, {"retriever": child, "size": 10, "_source": ["title"]})
    titles = {h["_id"]: h["_source"]["title"] for h in base["hits"]["hits"]}
    window = sd.ids(base)[:3]
    status, ranked_docs = http.json_request("POST", f"{sidecar_url}/_inference/rerank/{env['reranker']}",
                                            {"query": "pets", "input": [titles[i] for i in window]})
    assert status == 200, ranked_docs
    raw = {window[r["index"]]: r["relevance_score"] for r in ranked_docs["rerank"]}
    want = {k: float(np.float32(max(s, 0) + min(math.exp(s), 1))) for k, s in raw.items()}
    body = {"retriever": {"text_similarity_reranker": {
        "retriever": child, "field": "title", "inference_id": env["reranker"], "inference_text": "pets",
        "rank_window_size": 3}}, "size": 3}
    status, resp = sd.search(sidecar_url, index, body)
    assert status == 200, resp
    assert sd.ids(resp) == sorted(want, key=lambda k: -want[k])
    for hit in resp["hits"]["hits"]:
        assert hit["_score"] == pytest.approx(want[hit["_id"]], rel=1e-6)
    # min_score applies to the model's scores.
    cut = sorted(raw.values())[1]
    body["retriever"]["text_similarity_reranker"]["min_score"] = cut
    _, resp = sd.search(sidecar_url, index, body)
    assert set(sd.ids(resp)) == {k for k, s in raw.items() if s >= cut}
    # Reranking inside rrf.
    fused = {"retriever": {"rrf": {"retrievers": [
        {"text_similarity_reranker": {"retriever": child, "field": "content", "inference_id": env["reranker"],
                                      "inference_text": "pets", "rank_window_size": 10}},
        {"standard": {"query": {"term": {"kind": "money"}}}}]}}}
    status, resp = sd.search(sidecar_url, index, fused)
    assert status == 200 and "bank" in sd.ids(resp)


def test_retriever_validation(sidecar_url, env):
    rrf = {"rrf": {"retrievers": [ranked("number_val", ["1"]), ranked("char_val", ["A"])], "rank_window_size": 2}}
    status, body = sd.search(sidecar_url, env["plain"], {"retriever": rrf, "size": 5})
    assert status == 400
    assert body["error"]["type"] == "action_request_validation_exception"
    assert "[rrf] requires [rank_window_size: 2] be greater than or equal to [size: 5]" in body["error"]["reason"]
    status, body = sd.search(sidecar_url, env["plain"], {"retriever": rrf, "size": 1, "query": {"match_all": {}}})
    assert status == 400 and body["error"]["reason"] == "cannot specify [retriever] and [query]"
    status, body = sd.search(sidecar_url, env["plain"], {"retriever": {"text_similarity_reranker": {
        "retriever": ranked("number_val", ["1"]), "field": "number_val", "inference_id": env["dense"],
        "inference_text": "x"}}})
    assert status == 400 and "does not match the inference endpoint's task type" in body["error"]["reason"]


def test_async_search_with_a_compound_retriever_completes_at_once(sidecar_url, env):
    body = {"retriever": {"rrf": {"retrievers": [ranked("number_val", ["2", "1"]), ranked("char_val", ["B"])]}}}
    status, resp = http.json_request("POST", f"{sidecar_url}/{env['plain']}/_async_search", body)
    assert status == 200, resp
    assert resp["is_running"] is False and resp["is_partial"] is False and "id" not in resp
    assert sd.ids(resp["response"]) == ["2", "1"]


def test_reranker_failures_allowed(sidecar_url, env):
    """``allow_rerank_failures: true``: when the reranking endpoint fails, the first-stage hits
    come back in their own order with their own scores; without it, the search fails."""
    broken = sd.create_endpoint(sidecar_url, "rerank", {
        "service": "hugging_face", "service_settings": {"api_key": "k", "url": "http://127.0.0.1:9/rerank"}},
        "rerank-broken")
    first_stage = ranked("number_val", ["3", "1", "2"])
    try:
        retriever = {"text_similarity_reranker": {"retriever": first_stage, "field": "char_val",
                                                  "inference_id": broken, "inference_text": "x",
                                                  "rank_window_size": 10}}
        status, body = sd.search(sidecar_url, env["plain"], {"retriever": retriever, "size": 3})
        assert status >= 500, body
        status, direct = sd.search(sidecar_url, env["plain"], {"retriever": first_stage, "size": 3})
        assert status == 200
        retriever["text_similarity_reranker"]["allow_rerank_failures"] = True
        status, body = sd.search(sidecar_url, env["plain"], {"retriever": retriever, "size": 3})
        assert status == 200, body
        assert sd.ids(body) == sd.ids(direct) == ["3", "1", "2"]
        assert [h["_score"] for h in body["hits"]["hits"]] == pytest.approx(
            [h["_score"] for h in direct["hits"]["hits"]])
    finally:
        sd.delete_endpoint(sidecar_url, broken)
