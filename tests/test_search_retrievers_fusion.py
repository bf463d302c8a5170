"""``linear`` and weighted ``rrf`` computed by the sidecar on nodes that have neither, checked
against the exact cases and scores of Elasticsearch's own REST tests
(x-pack/plugin/rank-rrf/src/yamlRestTest: linear/10_linear_retriever.yml,
linear/10_linear_retriever_normalizers.yml, rrf/320_rrf_weighted_retriever.yml)."""

from __future__ import annotations

import pytest
import semantic_docs as sd

pytestmark = pytest.mark.es


@pytest.fixture(scope="module")
def index(sidecar_url):
    name = sd.create_index(sidecar_url, sd.uid("linear"), {
        "vector": {"type": "dense_vector", "dims": 1, "index": True, "similarity": "l2_norm",
                   "index_options": {"type": "flat"}},
        "keyword": {"type": "keyword"}, "other_keyword": {"type": "keyword"}, "timestamp": {"type": "date"}})
    sd.index_docs(sidecar_url, name, {
        "1": {"vector": [1], "keyword": "one", "other_keyword": "other", "timestamp": "2021-01-01T00:00:00"},
        "2": {"vector": [2], "keyword": "two", "timestamp": "2022-01-01T00:00:00"},
        "3": {"vector": [3], "keyword": "three", "timestamp": "2023-01-01T00:00:00"},
        "4": {"vector": [4], "keyword": "four", "other_keyword": "other", "timestamp": "2024-01-01T00:00:00"}})
    yield name
    sd.delete_index(sidecar_url, name)


def const(value, boost):
    return {"constant_score": {"filter": {"term": {"keyword": {"value": value}}}, "boost": boost}}


def std(*clauses, **extra):
    query = clauses[0] if len(clauses) == 1 else {"bool": {"should": list(clauses)}}
    return {"standard": {"query": query, **extra}}


KNN4 = {"knn": {"field": "vector", "query_vector": [4], "k": 1, "num_candidates": 1}}


def hits(resp):
    return [(h["_id"], h["_score"]) for h in resp["hits"]["hits"]]


def test_weighted_sum_of_standard_and_knn(sidecar_url, index):
    body = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0)), "weight": 0.5}, {"retriever": KNN4, "weight": 2.0}]}}}
    status, resp = sd.search(sidecar_url, index, body)
    assert status == 200, resp
    assert resp["hits"]["total"]["value"] == 2
    assert hits(resp) == [("1", 5.0), ("4", 2.0)]


def test_interleaved_results(sidecar_url, index):
    body = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0), const("two", 5.0)), "weight": 2},
        {"retriever": std(const("three", 5.0), const("four", 4.0)), "weight": 3}]}}}
    _, resp = sd.search(sidecar_url, index, body)
    assert resp["hits"]["total"]["value"] == 4
    assert hits(resp) == [("1", 20.0), ("3", 15.0), ("4", 12.0), ("2", 10.0)]


MINMAX = {"retriever": {"linear": {"retrievers": [
    {"retriever": std(const("one", 10.0), const("two", 9.0), const("three", 5.0)), "weight": 10.0,
     "normalizer": "minmax"},
    {"retriever": KNN4, "weight": 2.0}]}}}


def test_minmax_normalization_and_pagination(sidecar_url, index):
    _, resp = sd.search(sidecar_url, index, MINMAX)
    assert [h for h, _ in hits(resp)] == ["1", "2", "4", "3"]
    assert [s for _, s in hits(resp)][:3] == [10.0, 8.0, 2.0]
    assert hits(resp)[3][1] == pytest.approx(0.0, abs=1e-3)
    _, page = sd.search(sidecar_url, index, {**MINMAX, "from": 2, "size": 1})
    assert page["hits"]["total"]["value"] == 4 and hits(page) == [("4", 2.0)]


def test_rank_window_size_limits_normalization(sidecar_url, index):
    body = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0), const("two", 9.0), const("three", 5.0)), "weight": 1.0,
         "normalizer": "minmax"}, {"retriever": KNN4, "weight": 2.0}], "rank_window_size": 2}}, "size": 2}
    _, resp = sd.search(sidecar_url, index, body)
    assert resp["hits"]["total"]["value"] == 4
    assert hits(resp) == [("4", 2.0), ("1", 1.0)]
    status, err = sd.search(sidecar_url, index, {**body, "size": 10})
    assert status == 400
    assert "[linear] requires [rank_window_size: 2] be greater than or equal to [size: 10]" in err["error"]["reason"]


def test_nested_linear_and_filters(sidecar_url, index):
    body = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0)), "weight": 0.5},
        {"retriever": {"linear": {"retrievers": [{"retriever": std(const("two", 20.0))}, {"retriever": KNN4}]}},
         "weight": 2.0}]}}}
    _, resp = sd.search(sidecar_url, index, body)
    assert hits(resp) == [("2", 40.0), ("1", 5.0), ("4", 2.0)]
    filtered = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0)), "weight": 0.5}, {"retriever": KNN4, "weight": 2.0}],
        "filter": {"term": {"keyword": "four"}}}}}
    _, resp = sd.search(sidecar_url, index, filtered)
    assert resp["hits"]["total"]["value"] == 1 and hits(resp) == [("4", 2.0)]


def test_errors(sidecar_url, index):
    bad = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0)), "weight": 1.0, "normalizer": "aardvark"}, {"retriever": KNN4}]}}}
    status, err = sd.search(sidecar_url, index, bad)
    assert status == 400 and "Unknown normalizer [aardvark]" in str(err)
    negative = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0))}, {"retriever": KNN4, "weight": -10}]}}}
    status, err = sd.search(sidecar_url, index, negative)
    assert status == 400 and "[weight] must be non-negative" in str(err)


def test_explain_gives_weights_and_inner_retrievers(sidecar_url, index):
    body = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0), const("four", 1.0), _name="my_standard_retriever"), "weight": 10.0,
         "normalizer": "minmax"}, {"retriever": KNN4, "weight": 20.0}]}}, "explain": True, "size": 2}
    _, resp = sd.search(sidecar_url, index, body)
    top, second = resp["hits"]["hits"]
    assert top["_id"] == "4"
    assert top["_explanation"]["description"].startswith("weighted linear combination score: [20.0]")
    assert "and weights [10.0, 20.0] as sum of (weight[i] * score[i]) for each query." in top["_explanation"]["description"]
    assert top["_explanation"]["details"][0]["value"] == 0.0
    assert "result not found in query at index [0] [my_standard_retriever]" in top["_explanation"]["details"][0]["description"]
    assert top["_explanation"]["details"][1]["value"] == 20.0
    assert "using score normalizer [none]" in top["_explanation"]["details"][1]["description"]
    assert second["_id"] == "1"
    assert "computed for normalized scores [1.0, 0.0]" in second["_explanation"]["description"]
    assert "using score normalizer [minmax]" in second["_explanation"]["details"][0]["description"]


def test_l2_norm_per_retriever_and_top_level(sidecar_url, index, es_version):
    children = [{"retriever": std(const("one", 5.0)), "weight": 1.0}, {"retriever": std(const("four", 12.0)), "weight": 1.0}]
    per = {"retriever": {"linear": {"retrievers": [{**c, "normalizer": "l2_norm"} for c in children]}}}
    top = {"retriever": {"linear": {"normalizer": "l2_norm", "retrievers": children}}}
    status, resp = sd.search(sidecar_url, index, per)
    if es_version < (9, 1):
        assert status == 400 and "Unknown normalizer [l2_norm]" in str(resp)
        return
    assert [s for _, s in hits(resp)] == [1.0, 1.0]
    status, resp = sd.search(sidecar_url, index, top)
    if es_version < (9, 2):
        assert status == 400 and "[linear] [normalizer] cannot be provided when [retrievers] is specified" in str(resp)
        return
    # 9.2+: the top-level normalizer is the default of each child (the retriever documentation);
    # each child holds one document, which l2_norm scores 1.0.
    assert [s for _, s in hits(resp)] == [1.0, 1.0]


def test_weighted_rrf(sidecar_url, index, es_version):
    body = {"retriever": {"rrf": {"retrievers": [
        {"retriever": std(const("one", 1.0)), "weight": 0.1}, {"retriever": std(const("two", 1.0)), "weight": 0.9}]}}}
    status, resp = sd.search(sidecar_url, index, body)
    if es_version < (9, 1):
        assert status == 400, resp
        return
    assert status == 200, resp
    assert [h for h, _ in hits(resp)] == ["2", "1"]
    assert [s for _, s in hits(resp)] == pytest.approx([0.9 / 61, 0.1 / 61], rel=1e-6)
    negative = {"retriever": {"rrf": {"retrievers": [
        {"retriever": std(const("one", 1.0)), "weight": -0.5}, {"retriever": std(const("two", 1.0))}]}}}
    status, err = sd.search(sidecar_url, index, negative)
    assert status == 400 and err["error"]["type"] == "x_content_parse_exception"
    assert "[weight] must be non-negative, found [-0.5]" in err["error"]["caused_by"]["reason"]


@pytest.fixture(scope="module")
def es_version(sidecar_url):
    import json
    import urllib.request

    with urllib.request.urlopen(sidecar_url.rstrip("/") + "/") as resp:
        number = json.load(resp)["version"]["number"]
    return tuple(int(p) for p in number.split("-")[0].split(".")[:2])


def test_linear_min_score(sidecar_url, index):
    body = {"retriever": {"linear": {"retrievers": [
        {"retriever": std(const("one", 10.0), const("two", 5.0)), "weight": 2},
        {"retriever": std(const("three", 5.0), const("four", 4.0)), "weight": 3}], "min_score": 12.0}}}
    _, resp = sd.search(sidecar_url, index, body)
    assert hits(resp) == [("1", 20.0), ("3", 15.0), ("4", 12.0)]
    body["retriever"]["linear"]["min_score"] = -1
    status, err = sd.search(sidecar_url, index, body)
    assert status == 400 and "[min_score] must be greater than or equal to 0, was: [-1]" in err["error"]["reason"]
