"""Semantic search through the sidecar against a real Elasticsearch and the real MiniLM model:
the ``semantic`` query and the queries Elasticsearch rewrites to it, compound queries,
several indices on different endpoints, highlighting, ``_source`` hiding, ``_msearch``, the
official client, errors and the query-embedding cache."""

from __future__ import annotations

import json

import http_util as http
import pytest
import semantic_docs as sd
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

pytestmark = pytest.mark.es

DOCS = {
    "cat": {"title": "pets", "content": "The feline rested on the rug and purred contentedly all afternoon."},
    "bank": {"title": "economy", "content": "The central bank raised interest rates to curb inflation."},
    "space": {"title": "science", "content": "Astronauts docked their spacecraft with the orbiting station."},
    "cook": {"title": "kitchen", "content": "The chef seasoned the soup with fresh herbs and garlic."},
    "goal": {"title": "sport", "content": "The striker scored twice as the team won the championship final."},
}
LONG = ("The chef seasoned the soup with fresh herbs, roasted garlic and a little lemon before serving it. "
        "Astronauts docked their spacecraft with the orbiting station after a long and careful approach. "
        "The striker scored twice in the second half as the team won the championship final at home.")


@pytest.fixture(scope="module")
def env(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "search-minilm")
    sparse = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "search-sparse")
    dense_index = sd.create_index(sidecar_url, sd.uid("sem-dense"), {
        "content": {"type": "semantic_text", "inference_id": dense}, "title": {"type": "text"}})
    sparse_index = sd.create_index(sidecar_url, sd.uid("sem-sparse"), {
        "content": {"type": "semantic_text", "inference_id": sparse}, "title": {"type": "text"}})
    long_index = sd.create_index(sidecar_url, sd.uid("sem-long"), {
        "content": {"type": "semantic_text", "inference_id": dense,
                    "chunking_settings": {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0}}})
    plain_index = sd.create_index(sidecar_url, sd.uid("plain"), {"content": {"type": "text"},
                                                                 "title": {"type": "text"}})
    sd.index_docs(sidecar_url, dense_index, DOCS)
    sd.index_docs(sidecar_url, sparse_index, {k: v for k, v in DOCS.items() if k in ("cat", "bank")})
    sd.index_docs(sidecar_url, long_index, {"long": {"content": LONG}})
    sd.index_docs(sidecar_url, plain_index, {"p1": {"content": "a plain text document", "title": "plain"}})
    yield {"dense": dense, "sparse": sparse, "index": dense_index, "sparse_index": sparse_index,
           "long_index": long_index, "plain": plain_index}
    for name in (dense_index, sparse_index, long_index, plain_index):
        sd.delete_index(sidecar_url, name)
    for endpoint in (dense, sparse):
        sd.delete_endpoint(sidecar_url, endpoint)


def semantic(query, **extra):
    return {"semantic": {"field": "content", "query": query, **extra}}


def scores(body):
    return {hit["_id"]: hit["_score"] for hit in body["hits"]["hits"]}


# -- relevance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query,expected", [
    ("kitty napping atop carpet", "cat"),
    ("monetary policy tightening by policymakers", "bank"),
    ("cosmonaut rendezvous in orbit", "space"),
])
def test_paraphrase_ranks_the_right_document_first(sidecar_url, env, query, expected):
    status, body = sd.search(sidecar_url, env["index"], {"query": semantic(query)})
    assert status == 200, body
    assert sd.ids(body)[0] == expected
    assert body["hits"]["total"]["value"] == len(DOCS)
    # The source comes back as indexed, without the embedding internals.
    hit = body["hits"]["hits"][0]
    assert hit["_source"] == DOCS[expected]


def test_official_client(sidecar_url, env):
    client = Elasticsearch(sidecar_url, request_timeout=120)
    resp = client.search(index=env["index"], query=semantic("kitty napping atop carpet"), size=2,
                         highlight={"fields": {"content": {}}})
    assert resp["hits"]["hits"][0]["_id"] == "cat"
    assert resp["hits"]["hits"][0]["highlight"]["content"] == [DOCS["cat"]["content"]]
    assert "_sidecar_inference" not in resp["hits"]["hits"][0]["_source"]
    multi = client.msearch(searches=[{"index": env["index"]}, {"query": semantic("soup recipe")},
                                     {"index": env["plain"]}, {"query": {"match": {"content": "plain"}}}])
    assert [r["hits"]["hits"][0]["_id"] for r in multi["responses"]] == ["cook", "p1"]
    client.close()


# -- compound queries, boost and _name ----------------------------------------------------------


def test_boost_name_and_compound_queries(sidecar_url, env):
    index = env["index"]
    _, base = sd.search(sidecar_url, index, {"query": semantic("soup recipe")})
    base_scores = scores(base)
    _, boosted = sd.search(sidecar_url, index, {"query": semantic("soup recipe", boost=2.0, _name="sem")})
    for doc_id, score in scores(boosted).items():
        assert score == pytest.approx(2 * base_scores[doc_id], rel=1e-6)
    assert all(hit["matched_queries"] == ["sem"] for hit in boosted["hits"]["hits"])

    hybrid = {"bool": {"should": [semantic("soup recipe"), {"match": {"title": "sport"}}]}}
    _, body = sd.search(sidecar_url, index, {"query": hybrid})
    got = scores(body)
    assert got["cook"] == pytest.approx(base_scores["cook"], rel=1e-6)
    assert got["goal"] > base_scores["goal"]  # the lexical clause adds to the semantic score

    _, body = sd.search(sidecar_url, index, {"query": {"dis_max": {"queries": [
        semantic("soup recipe"), {"constant_score": {"filter": semantic("football"), "boost": 5}}]}}})
    got = scores(body)
    assert got["goal"] == pytest.approx(5.0)
    assert got["cook"] == pytest.approx(5.0)  # every document matches the knn filter: all get 5

    _, body = sd.search(sidecar_url, index, {"query": {"function_score": {
        "query": semantic("soup recipe"), "boost_mode": "multiply",
        "functions": [{"filter": {"match": {"title": "kitchen"}}, "weight": 3}]}}})
    assert scores(body)["cook"] == pytest.approx(3 * base_scores["cook"], rel=1e-6)

    _, body = sd.search(sidecar_url, index, {"query": {"boosting": {
        "positive": semantic("soup recipe"), "negative": {"match": {"title": "kitchen"}}, "negative_boost": 0.5}}})
    assert scores(body)["cook"] == pytest.approx(0.5 * base_scores["cook"], rel=1e-6)


def test_match_knn_and_sparse_vector_on_a_semantic_field(sidecar_url, env):
    index = env["index"]
    _, base = sd.search(sidecar_url, index, {"query": semantic("orbit")})
    _, match = sd.search(sidecar_url, index, {"query": {"match": {"content": "orbit"}}})
    assert scores(match) == pytest.approx(scores(base))
    knn = {"knn": {"field": "content", "k": 5, "num_candidates": 10,
                   "query_vector_builder": {"text_embedding": {"model_text": "orbit"}}}}
    _, body = sd.search(sidecar_url, index, {"query": knn})
    assert sd.ids(body)[0] == sd.ids(base)[0] == "space"
    status, body = sd.search(sidecar_url, index, {"knn": knn["knn"]})
    assert status == 200, body
    assert sd.ids(body)[0] == "space" and "_sidecar_inference" not in body["hits"]["hits"][0]["_source"]
    _, body = sd.search(sidecar_url, env["sparse_index"], {"query": {"sparse_vector": {
        "field": "content", "query": "interest rates"}}})
    _, sem = sd.search(sidecar_url, env["sparse_index"], {"query": semantic("interest rates")})
    assert scores(body) == pytest.approx(scores(sem))


def test_several_indices_with_different_endpoints(sidecar_url, env):
    both = f"{env['index']},{env['sparse_index']}"
    status, body = sd.search(sidecar_url, both, {"query": semantic("interest rates"), "size": 20})
    assert status == 200, body
    by_index = {}
    for hit in body["hits"]["hits"]:
        by_index.setdefault(hit["_index"], {})[hit["_id"]] = hit["_score"]
    _, dense = sd.search(sidecar_url, env["index"], {"query": semantic("interest rates"), "size": 20})
    _, sparse = sd.search(sidecar_url, env["sparse_index"], {"query": semantic("interest rates"), "size": 20})
    assert by_index[env["index"]] == pytest.approx(scores(dense))
    assert by_index[env["sparse_index"]] == pytest.approx(scores(sparse))
    # An index where the field has another type fails its shards; the others answer.
    status, body = sd.search(sidecar_url, f"{env['index']},{env['plain']}", {"query": semantic("orbit")})
    assert status == 200, body
    assert body["_shards"]["failed"] == 1 and body["_shards"]["successful"] == 1
    failure = body["_shards"]["failures"][0]
    assert failure["index"] == env["plain"]
    assert failure["reason"]["reason"] == "Field [content] of type [text] does not support semantic queries"
    assert {h["_index"] for h in body["hits"]["hits"]} == {env["index"]}
    status, body = sd.search(sidecar_url, f"{env['index']},{env['plain']}",
                             {"query": {"semantic": {"field": "content", "query": "orbit", "lenient": True}}})
    assert status == 200 and {h["_index"] for h in body["hits"]["hits"]} == {env["index"]}


def test_knn_query_vector_builder_on_a_dense_vector_field(sidecar_url, env):
    index = sd.create_index(sidecar_url, sd.uid("vectors"), {
        "vec": {"type": "dense_vector", "dims": 384, "similarity": "cosine", "index_options": {"type": "hnsw"}}})
    try:
        docs = {}
        for key in ("cat", "bank", "space"):
            _, out = http.json_request("POST", f"{sidecar_url}/_inference/text_embedding/{env['dense']}",
                                       {"input": DOCS[key]["content"]})
            docs[key] = {"vec": out["text_embedding"][0]["embedding"]}
        sd.index_docs(sidecar_url, index, docs)
        _, out = http.json_request("POST", f"{sidecar_url}/_inference/text_embedding/{env['dense']}",
                                   {"input": "kitty napping atop carpet"})
        vector = out["text_embedding"][0]["embedding"]
        explicit = {"field": "vec", "k": 3, "num_candidates": 10, "query_vector": vector}
        built = {"field": "vec", "k": 3, "num_candidates": 10, "query_vector_builder": {
            "text_embedding": {"model_id": env["dense"], "model_text": "kitty napping atop carpet"}}}
        _, a = sd.search(sidecar_url, index, {"knn": explicit})
        _, b = sd.search(sidecar_url, index, {"knn": built})
        assert sd.ids(b)[0] == "cat"
        assert scores(a) == pytest.approx(scores(b), rel=1e-5)
        _, c = sd.search(sidecar_url, index, {"query": {"knn": built}})
        assert scores(c) == pytest.approx(scores(b), rel=1e-5)
    finally:
        sd.delete_index(sidecar_url, index)


# -- highlighting ----------------------------------------------------------------------------------


def test_semantic_highlight_returns_best_chunks(sidecar_url, env):
    body = {"query": semantic("rocket launch crew in space"), "_source": False,
            "highlight": {"fields": {"content": {"number_of_fragments": 2, "order": "score"}}}}
    status, resp = sd.search(sidecar_url, env["long_index"], body)
    assert status == 200, resp
    frags = resp["hits"]["hits"][0]["highlight"]["content"]
    assert len(frags) == 2
    assert frags[0].startswith("Astronauts docked")
    assert all(f in LONG for f in frags)
    # Document order without order=score; one fragment by default count 1.
    body["highlight"] = {"fields": {"content": {"number_of_fragments": 3}}}
    _, resp = sd.search(sidecar_url, env["long_index"], body)
    frags = resp["hits"]["hits"][0]["highlight"]["content"]
    assert "".join(frags) == LONG
    # A query that is not semantic on the field highlights nothing on it.
    _, resp = sd.search(sidecar_url, env["index"], {"query": {"match": {"title": "kitchen"}},
                                                    "highlight": {"fields": {"content": {}, "title": {}}}})
    hit = resp["hits"]["hits"][0]
    assert "content" not in hit["highlight"] and hit["highlight"]["title"] == ["<em>kitchen</em>"]


# -- _source and internals ---------------------------------------------------------------------------


def test_internals_are_hidden_unless_asked_for(sidecar_url, env):
    index = env["index"]
    _, body = sd.search(sidecar_url, index, {"query": {"match_all": {}}, "fields": ["*"]})
    hit = body["hits"]["hits"][0]
    assert "_sidecar_inference" not in hit["_source"]
    assert not any(k.startswith("_sidecar_inference") for k in hit["fields"])
    assert hit["fields"]["content"] == [DOCS[hit["_id"]]["content"]]

    _, body = sd.search(sidecar_url, index, {"_source": ["_sidecar_inference.content.inference_id", "title"]})
    assert body["hits"]["hits"][0]["_source"]["_sidecar_inference"]["content"]["inference_id"] == env["dense"]

    _, body = sd.search(sidecar_url, index, {"query": {"ids": {"values": ["cat"]}},
                                             "fields": ["_inference_fields"], "_source": False})
    inference = body["hits"]["hits"][0]["_source"]["_inference_fields"]["content"]["inference"]
    assert inference["inference_id"] == env["dense"]
    assert len(inference["chunks"]["content"][0]["embeddings"]) == 384

    status, doc = http.json_request("GET", f"{sidecar_url}/{index}/_doc/cat")
    assert status == 200 and doc["_source"] == DOCS["cat"]
    status, src = http.json_request("GET", f"{sidecar_url}/{index}/_source/cat")
    assert status == 200 and src == DOCS["cat"]
    status, doc = http.json_request("GET", f"{sidecar_url}/{index}/_doc/cat?_source_includes=_sidecar_inference")
    assert "_sidecar_inference" in doc["_source"]
    status, docs = http.json_request("POST", f"{sidecar_url}/_mget", {"docs": [
        {"_index": index, "_id": "cat"}, {"_index": index, "_id": "bank", "_source": ["title"]},
        {"_index": env["plain"], "_id": "p1"}]})
    assert status == 200
    assert [d["_source"] for d in docs["docs"]] == [DOCS["cat"], {"title": "economy"},
                                                    {"content": "a plain text document", "title": "plain"}]
    status, docs = http.json_request("POST", f"{sidecar_url}/{index}/_mget", {"ids": ["cat"]})
    assert docs["docs"][0]["_source"] == DOCS["cat"]


def test_requests_without_inference_pass_through_unchanged(sidecar_url, es_url, env):
    body = json.dumps({"query": {"match": {"content": "plain"}}, "size": 1}).encode()
    via, _, raw_via = http.request("POST", f"{sidecar_url}/{env['plain']}/_search", body)
    direct, _, raw_direct = http.request("POST", f"{es_url}/{env['plain']}/_search", body)
    strip = lambda raw: {k: v for k, v in json.loads(raw).items() if k != "took"}  # noqa: E731
    assert via == direct == 200 and strip(raw_via) == strip(raw_direct)
    status, _, raw = http.request("POST", f"{sidecar_url}/{env['plain']}/_search", b"{not json")
    assert status == 400 and b"parse" in raw


# -- msearch -------------------------------------------------------------------------------------------


def test_msearch_mixes_semantic_plain_and_failing_searches(sidecar_url, env):
    lines = [
        {"index": env["index"]}, {"query": semantic("soup recipe"), "size": 1},
        {"index": env["plain"]}, {"query": {"match": {"content": "plain"}}},
        {"index": env["plain"]}, {"query": semantic("anything")},
        {"index": env["index"]}, {"retriever": {"rrf": {"retrievers": [
            {"standard": {"query": semantic("soup recipe")}},
            {"standard": {"query": {"match": {"title": "sport"}}}}]}}, "size": 2},
    ]
    raw = "".join(json.dumps(line) + "\n" for line in lines)
    status, body = http.json_request("POST", f"{sidecar_url}/_msearch", raw,
                                     headers={"Content-Type": "application/x-ndjson"})
    assert status == 200, body
    first, plain, failed, fused = body["responses"]
    assert sd.ids(first) == ["cook"] and first["status"] == 200
    assert sd.ids(plain) == ["p1"]
    assert failed["status"] == 400 and "does not support semantic queries" in json.dumps(failed)
    assert fused["status"] == 200 and set(sd.ids(fused)) == {"cook", "goal"}


# -- errors --------------------------------------------------------------------------------------------


def test_errors(sidecar_url, env):
    status, body = sd.search(sidecar_url, env["plain"], {"query": {"semantic": {"field": "title", "query": "x"}}})
    assert status == 400
    assert body["error"]["root_cause"][0] == {
        "type": "illegal_argument_exception", "reason": "Field [title] of type [text] does not support semantic queries"}
    status, body = sd.search(sidecar_url, env["index"], {"knn": {
        "field": "vec", "k": 1, "num_candidates": 1,
        "query_vector_builder": {"text_embedding": {"model_id": "no-such-endpoint", "model_text": "x"}}}})
    assert status == 404 and body["error"]["reason"] == "Inference endpoint not found [no-such-endpoint]"
    mismatch = sd.create_index(sidecar_url, sd.uid("mismatch"), {"content": {
        "type": "semantic_text", "inference_id": env["dense"], "search_inference_id": env["sparse"]}})
    try:
        sd.index_docs(sidecar_url, mismatch, {"1": {"content": "hello"}})
        status, body = sd.search(sidecar_url, mismatch, {"query": semantic("hello")})
        assert status == 400
        reason = body["error"]["root_cause"][0]["reason"]
        assert reason.startswith("Field [content] expected query inference results to be of type "
                                 "[text_embedding_result], got [text_expansion_result].")
    finally:
        sd.delete_index(sidecar_url, mismatch)
    client = Elasticsearch(sidecar_url)
    with pytest.raises(BadRequestError):
        client.search(index=env["index"], query={"semantic": {"field": "content"}})
    with pytest.raises(NotFoundError):
        client.search(index=env["sparse_index"], query={"sparse_vector": {"field": "content", "inference_id": "missing",
                                                                   "query": "x"}})
    client.close()


def test_empty_index_matches_nothing(sidecar_url, env):
    empty = sd.create_index(sidecar_url, sd.uid("empty"), {"content": {"type": "semantic_text",
                                                                       "inference_id": env["dense"]}})
    try:
        status, body = sd.search(sidecar_url, empty, {"query": semantic("anything")})
        assert status == 200 and body["hits"]["total"]["value"] == 0
    finally:
        sd.delete_index(sidecar_url, empty)


# -- the query-embedding cache -------------------------------------------------------------------------


def test_repeated_queries_cost_no_inference(sidecar_url, env):
    query = {"query": semantic("a query text only this test uses")}
    sd.search(sidecar_url, env["index"], query)
    before = sd.inference_count(sidecar_url, env["dense"])
    for _ in range(3):
        status, _ = sd.search(sidecar_url, env["index"], query)
        assert status == 200
    assert sd.inference_count(sidecar_url, env["dense"]) == before
    sd.search(sidecar_url, env["index"], {"query": semantic("another text, another inference")})
    assert sd.inference_count(sidecar_url, env["dense"]) == before + 1


def test_count_and_aggregations_only(sidecar_url, env):
    status, body = http.json_request("POST", f"{sidecar_url}/{env['index']}/_count",
                                     {"query": semantic("anything at all")})
    assert status == 200 and body["count"] == len(DOCS)
    status, body = sd.search(sidecar_url, env["index"], {"size": 0, "query": {"match": {"content": "orbit"}},
                                                         "aggs": {"titles": {"terms": {"field": "_index"}}}})
    assert status == 200, body
    assert body["aggregations"]["titles"]["buckets"][0]["doc_count"] == len(DOCS)
