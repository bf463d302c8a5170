"""Retrievers nesting others, with semantic children at any depth: the node runs those it has
(``rescorer`` on both lines, ``diversify`` on 9.x) with the children rewritten, and the sidecar
computes the same retriever itself when a child must run here. Equivalence: the same tree
answered by the node and by the sidecar's computation (the child wrapped in a one-child
``linear``, which leaves its scores as they are) gives the same hits, order and scores."""

from __future__ import annotations

import json
import math
import urllib.request

import http_util as http
import numpy as np
import pytest
import semantic_docs as sd

from sidecar.chunking import chunk_text

pytestmark = pytest.mark.es

DOCS = {
    "cat": {"title": "cat care", "kind": "pets", "vec": [1.0, 0.0, 0.0],
            "content": "The feline rested on the rug and purred."},
    "kitten": {"title": "kitten care", "kind": "pets", "vec": [0.98, 0.2, 0.0],
               "content": "A small kitten slept on the warm rug."},
    "dog": {"title": "dog walking", "kind": "pets", "vec": [0.6, 0.8, 0.0],
            "content": "The puppy fetched the ball in the park."},
    "bank": {"title": "rates care", "kind": "money", "vec": [0.0, 0.0, 1.0],
             "content": "The central bank raised interest rates."},
    "space": {"title": "launch", "kind": "science", "vec": [0.0, 0.6, 0.8],
              "content": "Astronauts docked with the station."},
}


@pytest.fixture(scope="module")
def env(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "tree-minilm")
    reranker = sd.create_endpoint(sidecar_url, "rerank", sd.TINY_RERANK, "tree-rerank")
    index = sd.create_index(sidecar_url, sd.uid("tree"), {
        "content": {"type": "semantic_text", "inference_id": dense}, "title": {"type": "text"},
        "kind": {"type": "keyword"},
        "vec": {"type": "dense_vector", "dims": 3, "index": True, "similarity": "cosine"}})
    sd.index_docs(sidecar_url, index, DOCS)
    with urllib.request.urlopen(sidecar_url.rstrip("/") + "/") as resp:
        number = json.load(resp)["version"]["number"]
    version = tuple(int(p) for p in number.split("-")[0].split(".")[:2])
    yield {"index": index, "dense": dense, "reranker": reranker, "version": version}
    sd.delete_index(sidecar_url, index)
    for endpoint in (dense, reranker):
        sd.delete_endpoint(sidecar_url, endpoint)


SEMANTIC = {"standard": {"query": {"semantic": {"field": "content", "query": "a sleeping cat"}}}}
LEXICAL = {"standard": {"query": {"match": {"title": "care"}}}}


def here(retriever, window=10):
    """The same child, made to run here: a one-child ``linear`` keeps its scores."""
    return {"linear": {"retrievers": [{"retriever": retriever, "weight": 1.0}], "rank_window_size": window}}


def scored(resp):
    return [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]


def test_rescorer_native_and_computed_agree(sidecar_url, env):
    rescore = {"window_size": 3, "query": {"rescore_query": {"match": {"title": "kitten"}},
                                           "query_weight": 0.5, "rescore_query_weight": 2.0}}
    native = {"retriever": {"rescorer": {"retriever": SEMANTIC, "rescore": rescore}}, "size": 3}
    status, a = sd.search(sidecar_url, env["index"], native)
    assert status == 200, a
    computed = {"retriever": {"rescorer": {"retriever": here(SEMANTIC), "rescore": rescore}}, "size": 3}
    status, b = sd.search(sidecar_url, env["index"], computed)
    assert status == 200, b
    assert [i for i, _ in scored(a)] == [i for i, _ in scored(b)]
    for (_, x), (_, y) in zip(scored(a), scored(b), strict=True):
        assert np.float32(x) == np.float32(y)
    assert a["hits"]["total"] == b["hits"]["total"]
    status, err = sd.search(sidecar_url, env["index"], {**computed, "size": 5})
    assert status == 400
    assert "[rescorer] requires [window_size: 3] be greater than or equal to [size: 5]" in err["error"]["reason"]


def test_diversify(sidecar_url, env):
    spec = {"type": "mmr", "field": "vec", "lambda": 0.3, "query_vector": [1.0, 0.1, 0.0], "size": 3,
            "rank_window_size": 5}
    native = {"retriever": {"diversify": {**spec, "retriever": {"standard": {"query": {"match_all": {}}}}}},
              "size": 3}
    status, a = sd.search(sidecar_url, env["index"], native)
    if env["version"] < (9, 0):
        assert status == 400 and a["error"]["reason"] == "unknown retriever [diversify]", a
        return
    assert status == 200, a
    computed = {"retriever": {"diversify": {**spec, "retriever": here({"standard": {"query": {"match_all": {}}}},
                                                                     5)}}, "size": 3}
    status, b = sd.search(sidecar_url, env["index"], computed)
    assert status == 200, b
    assert scored(a) == scored(b)
    assert len(scored(a)) == 3
    # No query vector: the best-scoring document first, then diversity alone; size by default
    # min(10, rank_window_size).
    bare = {k: v for k, v in spec.items() if k not in ("query_vector", "size")}
    child = {"standard": {"query": {"match": {"title": "care"}}}}
    status, a = sd.search(sidecar_url, env["index"], {"retriever": {"diversify": {**bare, "retriever": child}},
                                                       "size": 5})
    assert status == 200, a
    status, b = sd.search(sidecar_url, env["index"], {"retriever": {"diversify": {**bare, "retriever": here(child, 5)}},
                                                       "size": 5})
    assert status == 200, b
    assert scored(a) == scored(b) and scored(a)
    # Over semantic_text: each document's chunk embeddings; the near-duplicate cat texts do not
    # both make the top two.
    status, c = sd.search(sidecar_url, env["index"], {"retriever": {"diversify": {
        "type": "mmr", "field": "content", "lambda": 0.1, "size": 2, "rank_window_size": 5,
        "retriever": SEMANTIC}}, "size": 2})
    assert status == 200, c
    assert len(sd.ids(c)) == 2 and not {"cat", "kitten"} <= set(sd.ids(c))
    # The query vector built from text by the field's endpoint: the most similar chunk wins first.
    status, d = sd.search(sidecar_url, env["index"], {"retriever": {"diversify": {
        "type": "mmr", "field": "content", "lambda": 1.0, "size": 1, "rank_window_size": 5,
        "query_vector_builder": {"text_embedding": {"model_text": "interest rates of the central bank"}},
        "retriever": {"standard": {"query": {"match_all": {}}}}}}, "size": 1})
    assert status == 200, d
    assert sd.ids(d) == ["bank"]
    status, err = sd.search(sidecar_url, env["index"], {"retriever": {"diversify": {**spec, "lambda": 2.0,
                                                                                     "retriever": SEMANTIC}}})
    assert status == 400 and "must have a [lambda] between 0.0 and 1.0" in err["error"]["reason"]


def test_pinned(sidecar_url, env):
    body = {"retriever": {"pinned": {"ids": ["space", "nope", "bank"], "retriever": SEMANTIC}}, "size": 5}
    status, resp = sd.search(sidecar_url, env["index"], body)
    assert status == 200, resp
    got = sd.ids(resp)
    assert got[:2] == ["space", "bank"]
    _, organic = sd.search(sidecar_url, env["index"], {"retriever": SEMANTIC, "size": 5})
    assert got[2:] == [i for i in sd.ids(organic) if i not in ("space", "bank")][:3]
    # PinnedQueryBuilder: the n pins score n, n-1, ... 1 ulps above the smallest float over the
    # organic cap 2^127 (ids "space", "nope", "bank": 4 ulps over the cap for the first, 2 for the third).
    top = [int(np.array([h["_score"]], dtype=np.float32).view(np.int32)[0]) for h in resp["hits"]["hits"][:2]]
    assert top == [(0xFE << 23) + 4, (0xFE << 23) + 2]
    filtered = {"retriever": {"pinned": {"docs": [{"_index": env["index"], "_id": "bank"}], "retriever": {
        "standard": {"query": {"semantic": {"field": "content", "query": "cat"}}, "filter": {"term": {"kind": "pets"}}}}}}}
    status, resp = sd.search(sidecar_url, env["index"], filtered)
    # The pinned query wraps the child's (filtered) query: a pinned document shows regardless of it,
    # the organic ones only when they pass it.
    assert status == 200 and sd.ids(resp)[0] == "bank"
    assert {DOCS[i]["kind"] for i in sd.ids(resp)[1:]} == {"pets"}


def test_rrf_explain(sidecar_url, env):
    body = {"retriever": {"rrf": {"retrievers": [
        {"standard": {"query": {"match": {"title": "care"}}, "_name": "lexical"}}, SEMANTIC],
        "rank_constant": 10}}, "explain": True, "size": 3}
    status, resp = sd.search(sidecar_url, env["index"], body)
    assert status == 200, resp
    top = resp["hits"]["hits"][0]["_explanation"]
    assert top["description"].startswith("rrf score: [") and "with rankConstant: [10]" in top["description"]
    assert len(top["details"]) == 2
    assert "in query at index [0] [lexical]" in top["details"][0]["description"]
    assert top["details"][0]["details"], "the child's own explanation"


def test_multi_field_shorthand(sidecar_url, env):
    body = {"retriever": {"linear": {"query": "cat care", "fields": ["title", "content^2"],
                                     "normalizer": "minmax"}}}
    status, resp = sd.search(sidecar_url, env["index"], body)
    assert status == 200, resp
    assert sd.ids(resp)[0] == "cat"
    assert resp["hits"]["hits"][0]["_score"] == pytest.approx(3.0)  # 1.0 lexical + 2 * 1.0 semantic
    status, err = sd.search(sidecar_url, env["index"], {"retriever": {"linear": {"query": "cat"}}})
    assert status == 400 and "[linear] [normalizer] must be provided when [query] is specified" in str(err)
    status, resp = sd.search(sidecar_url, env["index"], {"retriever": {"rrf": {"query": "cat care",
                                                                                 "fields": ["title", "content"]}}})
    assert status == 200 and sd.ids(resp)[0] in ("cat", "kitten")


def test_rule_answers_as_the_node(sidecar_url, env):
    status, err = sd.search(sidecar_url, env["index"], {"retriever": {"rule": {
        "ruleset_ids": ["r"], "match_criteria": {"q": "x"}, "retriever": SEMANTIC}}})
    assert status == 400 and err["error"]["reason"] == "unknown retriever [rule]"


def test_chunk_rescorer(sidecar_url, env):
    long_text = ("Interest rates rose again this quarter. " * 3 + "Meanwhile the cat slept on the rug all day. "
                 + "Markets reacted to the central bank. " * 3)
    sd.index_docs(sidecar_url, env["index"], {"long": {"title": long_text, "kind": "long"}})
    child = {"standard": {"query": {"term": {"kind": "long"}}}}
    body = {"retriever": {"text_similarity_reranker": {
        "retriever": child, "field": "title", "inference_id": env["reranker"], "inference_text": "cat rug",
        "chunk_rescorer": {"size": 1, "chunking_settings": {"strategy": "sentence", "max_chunk_size": 20,
                                                             "sentence_overlap": 0}}}}}
    status, resp = sd.search(sidecar_url, env["index"], body)
    if env["version"] < (9, 2):
        assert status == 400 and "unknown field [chunk_rescorer]" in str(resp), resp
        return
    assert status == 200, resp
    chunks = [c.text for c in chunk_text(long_text, {"strategy": "sentence", "max_chunk_size": 20,
                                                     "sentence_overlap": 0})]
    best = next(c for c in chunks if "cat" in c)
    status, ranked_docs = http.json_request("POST", f"{sidecar_url}/_inference/rerank/{env['reranker']}",
                                            {"query": "cat rug", "input": [best]})
    assert status == 200
    raw = {r["index"]: r["relevance_score"] for r in ranked_docs["rerank"]}

    def norm(s):
        s = np.float32(s)
        return np.float32(max(s, np.float32(0)) + min(np.float32(math.exp(s)), np.float32(1)))

    got = np.float32(resp["hits"]["hits"][0]["_score"])
    # The best chunk's score, normalized per chunk list and again when ordered (as Elasticsearch does).
    assert got == norm(norm(raw[0]))


@pytest.mark.parametrize("mode", ["multiply", "avg", "max", "min"])
def test_rescorer_score_modes_and_two_sections_agree(sidecar_url, env, mode):
    rescore = [{"window_size": 4, "query": {"rescore_query": {"match": {"title": "kitten care"}},
                                            "score_mode": mode, "rescore_query_weight": 1.5}},
               {"window_size": 2, "query": {"rescore_query": {"match": {"content": "rug"}}, "query_weight": 0.7}}]
    child = {"standard": {"query": {"match": {"title": "care"}}}}
    status, a = sd.search(sidecar_url, env["index"], {"retriever": {"rescorer": {"retriever": child,
                                                                                  "rescore": rescore}}, "size": 2})
    assert status == 200, a
    status, b = sd.search(sidecar_url, env["index"], {"retriever": {"rescorer": {"retriever": here(child),
                                                                                  "rescore": rescore}}, "size": 2})
    assert status == 200, b
    assert [i for i, _ in scored(a)] == [i for i, _ in scored(b)]
    assert [np.float32(s) for _, s in scored(a)] == [np.float32(s) for _, s in scored(b)]
