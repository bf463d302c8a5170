"""Retriever trees the sidecar computes (``linear``, weighted ``rrf``, ``pinned``, ``rescorer``,
``diversify``, ``chunk_rescorer``) built at random, parts of them replaced by random JSON: never a
5xx, and every answer is either Elasticsearch-shaped 4xx or hits in score order, no more than
asked for."""

from __future__ import annotations

import os

import pytest
import semantic_docs as sd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.es

SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize=True)

junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(-2, 2, allow_nan=False),
                 st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2))


def maybe(strategy):
    return st.one_of(*[strategy] * 9, junk)


leaf = st.sampled_from([
    {"standard": {"query": {"match": {"title": "care"}}}},
    {"standard": {"query": {"semantic": {"field": "content", "query": "a sleeping cat"}}}},
    {"standard": {"query": {"match_all": {}}}},
    {"knn": {"field": "content", "k": 3, "num_candidates": 5,
             "query_vector_builder": {"text_embedding": {"model_text": "money"}}}},
])
windows = st.one_of(st.integers(5, 12), st.integers(5, 12), st.integers(5, 12), junk)


def trees(children):
    weighted = st.fixed_dictionaries({"retriever": children},
                                     optional={"weight": maybe(st.floats(0, 3)),
                                               "normalizer": maybe(st.sampled_from(["none", "minmax", "l2_norm"]))})
    return st.one_of(
        st.builds(lambda r, w, n, m: {"linear": {"retrievers": r, "rank_window_size": w,
                                                 **({"normalizer": n} if n else {}),
                                                 **({"min_score": m} if m is not None else {})}},
                  st.lists(weighted, min_size=1, max_size=3), windows,
                  st.one_of(st.none(), maybe(st.sampled_from(["minmax", "l2_norm"]))),
                  st.one_of(st.none(), maybe(st.floats(0, 2)))),
        st.builds(lambda r, w: {"rrf": {"retrievers": r, "rank_window_size": w}},
                  st.lists(st.one_of(children, st.builds(lambda c, x: {"retriever": c, "weight": x}, children,
                                                         maybe(st.floats(0, 2)))), min_size=1, max_size=3), windows),
        st.builds(lambda c, ids, w: {"pinned": {"ids": ids, "retriever": c, "rank_window_size": w}},
                  children, maybe(st.lists(st.sampled_from(["cat", "bank", "none"]), min_size=1, max_size=3)),
                  windows),
        st.builds(lambda c, n, s: {"rescorer": {"retriever": c, "rescore": {"window_size": n, "query": {
            "rescore_query": {"match": {"title": "kitten"}}, "score_mode": s}}}},
                  children, maybe(st.integers(5, 12)), maybe(st.sampled_from(["total", "multiply", "avg", "max", "min"]))),
        st.builds(lambda c, f, lam, n: {"diversify": {"type": "mmr", "field": f, "lambda": lam, "size": n,
                                                      "rank_window_size": 12, "retriever": c}},
                  children, maybe(st.sampled_from(["content", "vec", "title"])), maybe(st.floats(0, 1)),
                  maybe(st.integers(1, 5))),
        st.builds(lambda c, n: {"text_similarity_reranker": {"retriever": c, "field": "title",
                                                             "inference_text": "cat", "rank_window_size": 10,
                                                             "chunk_rescorer": {"size": n}}},
                  children, maybe(st.integers(1, 3))),
    )


retrievers = st.recursive(leaf, trees, max_leaves=4)


@pytest.fixture(scope="module")
def corpus(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "rfz-minilm")
    index = sd.create_index(sidecar_url, sd.uid("rfz"), {
        "content": {"type": "semantic_text", "inference_id": dense}, "title": {"type": "text"},
        "vec": {"type": "dense_vector", "dims": 2, "similarity": "cosine"}})
    sd.index_docs(sidecar_url, index, {
        "cat": {"title": "cat care", "content": "The feline rested on the rug.", "vec": [1, 0]},
        "kitten": {"title": "kitten care", "content": "A small kitten slept.", "vec": [0.9, 0.1]},
        "bank": {"title": "rates", "content": "The central bank raised interest rates.", "vec": [0, 1]}})
    yield index
    sd.delete_index(sidecar_url, index)
    sd.delete_endpoint(sidecar_url, dense)


@SETTINGS
@given(retriever=retrievers, size=st.integers(0, 4))
def test_fuzz_computed_retrievers(sidecar_url, corpus, retriever, size):
    status, body = sd.search(sidecar_url, corpus, {"retriever": retriever, "size": size, "_source": False})
    assert status < 500, (retriever, body)
    event(f"status {status}")
    if status >= 400:
        assert body["status"] == status and body["error"]["type"] and body["error"]["reason"], body
        return
    scores = [h["_score"] for h in body["hits"]["hits"]]
    assert len(scores) <= size
    assert all(s is None or isinstance(s, float) for s in scores)
