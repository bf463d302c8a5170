"""What a semantic_text field embeds, as Elasticsearch's own REST tests of the inference plugin
expect it (30_semantic_text_inference.yml): each value of a multi-valued field chunked on its
own with offsets into the concatenated value, numbers and booleans as their string forms,
objects refused — against the real node, with MiniLM and the tiny local sparse model."""

from __future__ import annotations

import json

import http_util as http
import pytest
import semantic_docs as sd

from sidecar.semantic.values import field_text, field_values, java_double

pytestmark = pytest.mark.es


@pytest.fixture(scope="module")
def env(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "stv-dense")
    sparse = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "stv-sparse")
    yield {"dense": dense, "sparse": sparse}
    for endpoint in (dense, sparse):
        sd.delete_endpoint(sidecar_url, endpoint)


@pytest.fixture
def index(sidecar_url, env):
    name = sd.create_index(sidecar_url, sd.uid("stv"), {
        "sparse_field": {"type": "semantic_text", "inference_id": env["sparse"]},
        "dense_field": {"type": "semantic_text", "inference_id": env["dense"]},
        "non_inference_field": {"type": "text"}})
    yield name
    sd.delete_index(sidecar_url, name)


def _offsets(sidecar_url, index, doc_id):
    status, body = sd.search(sidecar_url, index, {"fields": ["_inference_fields"],
                                                  "query": {"ids": {"values": [doc_id]}}})
    assert status == 200, body
    fields = body["hits"]["hits"][0]["_source"]["_inference_fields"]
    out = {}
    for name, data in fields.items():
        chunks = data["inference"]["chunks"][name]
        assert all(chunk["embeddings"] for chunk in chunks)
        out[name] = [(chunk["start_offset"], chunk["end_offset"]) for chunk in chunks]
    return out


def test_each_value_is_chunked_on_its_own(sidecar_url, index):
    sd.index_docs(sidecar_url, index, {"1": {"sparse_field": ["inference test", "another inference test"],
                                             "dense_field": ["inference test", "another inference test"]}})
    assert _offsets(sidecar_url, index, "1") == {"sparse_field": [(0, 14), (15, 37)],
                                                 "dense_field": [(0, 14), (15, 37)]}
    # A value equal to the query is an exact match of its own chunk.
    status, body = sd.search(sidecar_url, index, {"query": {"semantic": {"field": "dense_field",
                                                                          "query": "inference test"}}})
    assert status == 200, body
    assert body["hits"]["hits"][0]["_score"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("doc,expected", [
    ({"sparse_field": 75, "dense_field": 100}, {"sparse_field": [(0, 2)], "dense_field": [(0, 3)]}),
    ({"sparse_field": True, "dense_field": False}, {"sparse_field": [(0, 4)], "dense_field": [(0, 5)]}),
    ({"sparse_field": [False, 75, "inference test", 13.49], "dense_field": [True, 49.99, "another inference test", 5654]},
     {"sparse_field": [(0, 5), (6, 8), (9, 23), (24, 29)], "dense_field": [(0, 4), (5, 10), (11, 33), (34, 38)]}),
])
def test_numbers_and_booleans_are_embedded_as_strings(sidecar_url, index, doc, expected):
    sd.index_docs(sidecar_url, index, {"1": doc})
    assert _offsets(sidecar_url, index, "1") == expected
    # The source keeps the values as sent.
    status, got = http.json_request("GET", f"{sidecar_url}/{index}/_source/1")
    assert status == 200 and got == doc, got


@pytest.mark.parametrize("value", [{"text": "inference test"}, ["inference test", {"a": 1}]])
def test_object_values_are_refused(sidecar_url, index, value):
    lines = [json.dumps({"index": {"_index": index, "_id": "1"}}),
             json.dumps({"non_inference_field": "x", "dense_field": value})]
    status, body = http.json_request("POST", f"{sidecar_url}/_bulk?refresh=true", "\n".join(lines) + "\n",
                                     headers={"Content-Type": "application/x-ndjson"})
    assert status == 200 and body["errors"], body
    error = body["items"][0]["index"]["error"]
    assert error["type"] == "status_exception"
    assert error["reason"].startswith("Invalid format for field [dense_field], expected [String|Number|Boolean] got [")
    assert http.json_request("GET", f"{sidecar_url}/{index}/_doc/1")[0] == 404


def test_script_updates_are_refused_as_elasticsearch_words_it(sidecar_url, index):
    sd.index_docs(sidecar_url, index, {"1": {"non_inference_field": "x"}})
    lines = [json.dumps({"update": {"_index": index, "_id": "1"}}),
             json.dumps({"script": {"source": "ctx._source.non_inference_field = 'y'"}})]
    status, body = http.json_request("POST", f"{sidecar_url}/_bulk", "\n".join(lines) + "\n",
                                     headers={"Content-Type": "application/x-ndjson"})
    assert status == 200 and body["errors"], body
    error = body["items"][0]["update"]["error"]
    assert error["type"] == "status_exception"
    assert error["reason"] == "Cannot apply update with a script on indices that contain [semantic_text] field(s)"


def test_string_forms_follow_java():
    assert field_values([False, 75, "x", 13.49], "f") == ["false", "75", "x", "13.49"]
    assert field_text(["a", "b"], "f") == "a\u0000b"
    assert [java_double(v) for v in (1e7, 0.0001, 12345678.9, 5.0, -2.5e-5)] == [
        "1.0E7", "1.0E-4", "1.23456789E7", "5.0", "-2.5E-5"]
