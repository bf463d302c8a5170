"""semantic_text mappings answered as Elasticsearch's own REST tests of the inference plugin
expect them (10_semantic_text_field_mapping.yml and the mapper's source): ``model_settings``
written when the first document arrives, the default ``index_options`` and what the node
really maps, multi-fields, and the mapper's errors — against the real node."""

from __future__ import annotations

import http_util as http
import pytest
import semantic_docs as sd

pytestmark = pytest.mark.es
ROOT = "_sidecar_inference"
BBQ = {"type": "bbq_hnsw", "m": 16, "ef_construction": 100, "rescore_vector": {"oversample": 3.0}}


@pytest.fixture(scope="module")
def endpoints(sidecar_url):
    dense = sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "stm-dense")
    sparse = sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "stm-sparse")
    yield {"dense": dense, "sparse": sparse}
    for endpoint in (dense, sparse):
        sd.delete_endpoint(sidecar_url, endpoint)


@pytest.fixture
def index_name(sidecar_url):
    name = sd.uid("stm")
    yield name
    sd.delete_index(sidecar_url, name)


def _create(sidecar_url, name, properties, **mappings):
    return http.json_request("PUT", f"{sidecar_url}/{name}", {
        "settings": {"number_of_replicas": 0}, "mappings": {"properties": properties, **mappings}})


def _field(sidecar_url, index, name):
    status, body = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
    assert status == 200, body
    return body[index]["mappings"]["properties"][name]


def _embeddings_mapping(es_url, index, field):
    _, body = http.json_request("GET", f"{es_url}/{index}/_mapping")
    chunks = body[index]["mappings"]["properties"][ROOT]["properties"][field]["properties"]["chunks"]
    return chunks["properties"]["embeddings"]


# -- model_settings appear with the first document ---------------------------------------------------


def test_model_settings_are_written_when_the_first_document_arrives(sidecar_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {
        "sparse_field": {"type": "semantic_text", "inference_id": endpoints["sparse"]},
        "dense_field": {"type": "semantic_text", "inference_id": endpoints["dense"]}})
    assert status == 200, body
    assert _field(sidecar_url, index_name, "sparse_field") == {"type": "semantic_text",
                                                               "inference_id": endpoints["sparse"]}
    assert _field(sidecar_url, index_name, "dense_field") == {"type": "semantic_text",
                                                              "inference_id": endpoints["dense"]}
    sd.index_docs(sidecar_url, index_name, {"1": {"sparse_field": "these are not the droids you're looking for"}})
    assert _field(sidecar_url, index_name, "sparse_field")["model_settings"] == {"task_type": "sparse_embedding"}
    assert "model_settings" not in _field(sidecar_url, index_name, "dense_field")
    sd.index_docs(sidecar_url, index_name, {"2": {"dense_field": "these are not the droids you're looking for"}})
    settings = _field(sidecar_url, index_name, "dense_field")["model_settings"]
    assert settings["task_type"] == "text_embedding" and settings["dimensions"] == 384
    # Searchable as soon as documents arrive.
    status, found = sd.search(sidecar_url, index_name, {"query": {"semantic": {
        "field": "dense_field", "query": "droids"}}})
    assert status == 200 and sd.ids(found) == ["2"], found


def test_index_options_need_model_settings(sidecar_url, index_name):
    status, body = _create(sidecar_url, index_name, {"f": {
        "type": "semantic_text", "inference_id": "stm-not-yet-created",
        "index_options": {"dense_vector": {"type": "int8_hnsw"}}}})
    assert status == 400, body
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["reason"] == ("Model settings must be set to validate index options for inference ID "
                                       "[stm-not-yet-created]")
    assert http.json_request("GET", f"{sidecar_url}/{index_name}")[0] == 404


# -- default index_options -------------------------------------------------------------------------------


def test_dense_fields_default_to_bbq_hnsw_and_say_so(sidecar_url, es_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {
        "dense_field": {"type": "semantic_text", "inference_id": endpoints["dense"]}})
    assert status == 200, body
    # What the node really indexes is what the field claims.
    embeddings = _embeddings_mapping(es_url, index_name, "dense_field")
    assert embeddings["index_options"] == BBQ
    sd.index_docs(sidecar_url, index_name, {"1": {"dense_field": "a document"}})
    assert "index_options" not in _field(sidecar_url, index_name, "dense_field")
    status, body = http.json_request("GET", f"{sidecar_url}/{index_name}?include_defaults=true")
    assert status == 200, body
    shown = body[index_name]["mappings"]["properties"]["dense_field"]
    assert shown["index_options"] == {"dense_vector": BBQ}


def test_chosen_index_options_are_kept(sidecar_url, es_url, endpoints, index_name):
    options = {"dense_vector": {"type": "int8_hnsw", "m": 20, "ef_construction": 90}}
    status, body = _create(sidecar_url, index_name, {
        "dense_field": {"type": "semantic_text", "inference_id": endpoints["dense"], "index_options": options}})
    assert status == 200, body
    assert _embeddings_mapping(es_url, index_name, "dense_field")["index_options"]["type"] == "int8_hnsw"
    assert _field(sidecar_url, index_name, "dense_field")["index_options"] == options


@pytest.mark.parametrize("options,reason", [
    ({"dense_vector": {"type": "invalid"}}, "Unsupported index options type invalid"),
    ({"dense_vector": {"m": 16}}, "Required type"),
])
def test_bad_index_options_type(sidecar_url, endpoints, index_name, options, reason):
    status, body = _create(sidecar_url, index_name, {
        "dense_field": {"type": "semantic_text", "inference_id": endpoints["dense"], "index_options": options}})
    assert status == 400, body
    assert body["error"]["type"] == "mapper_parsing_exception"
    assert body["error"]["reason"] == f"Failed to parse mapping: {reason}"


def test_index_options_errors_name_the_users_field(sidecar_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {
        "dense_field": {"type": "semantic_text", "inference_id": endpoints["dense"],
                        "index_options": {"dense_vector": {"type": "hnsw", "foo": 1}}}})
    assert status == 400, body
    assert "[dense_field]" in body["error"]["reason"] and "embeddings" not in str(body), body


def test_dense_index_options_on_a_sparse_model(sidecar_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {
        "f": {"type": "semantic_text", "inference_id": endpoints["sparse"],
              "index_options": {"dense_vector": {"type": "int8_hnsw"}}}})
    assert status == 400, body
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["reason"] == ("Invalid task type for index options, required [text_embedding] but was "
                                       "[sparse_embedding]")


# -- where semantic_text may not be ---------------------------------------------------------------------


@pytest.mark.parametrize("properties,path", [
    ({"nested": {"type": "nested", "properties": {"semantic": {"type": "semantic_text"}}}}, "nested.semantic"),
    ({"nested": {"type": "nested", "properties": {"nested_object": {"type": "object", "properties": {
        "semantic": {"type": "semantic_text"}}}}}}, "nested.nested_object.semantic"),
])
def test_cannot_be_nested(sidecar_url, endpoints, index_name, properties, path):
    status, body = _create(sidecar_url, index_name, properties)
    assert status == 400, body
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["reason"] == f"semantic_text field [{path}] cannot be nested"


def test_cannot_be_in_an_object_without_subobjects(sidecar_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {"level_1": {"type": "object", "properties": {
        "level_2": {"type": "object", "subobjects": False, "properties": {
            "sparse_field": {"type": "semantic_text", "inference_id": endpoints["sparse"]}}}}}})
    assert status == 400, body
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["reason"] == ("semantic_text field [level_1.level_2.sparse_field] cannot be in an object "
                                       "field with subobjects disabled")
    assert http.json_request("GET", f"{sidecar_url}/{index_name}")[0] == 404


# -- multi-fields ------------------------------------------------------------------------------------------


def test_semantic_text_as_a_multi_field(sidecar_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {"text_field": {"type": "text", "fields": {
        "semantic": {"type": "semantic_text", "inference_id": endpoints["sparse"]}}}})
    assert status == 200, body
    text_field = _field(sidecar_url, index_name, "text_field")
    assert text_field == {"type": "text", "fields": {"semantic": {"type": "semantic_text",
                                                                  "inference_id": endpoints["sparse"]}}}
    sd.index_docs(sidecar_url, index_name, {"1": {"text_field": "the droids you are looking for"},
                                            "2": {"text_field": ""}})
    status, found = sd.search(sidecar_url, index_name, {"query": {"semantic": {
        "field": "text_field.semantic", "query": "droids"}}})
    assert status == 200 and sd.ids(found) == ["1"], found
    assert found["hits"]["hits"][0]["_source"] == {"text_field": "the droids you are looking for"}
    # The text field itself is still the text field.
    status, found = sd.search(sidecar_url, index_name, {"query": {"match": {"text_field": "droids"}}})
    assert sd.ids(found) == ["1"], found


def test_semantic_text_with_multi_fields(sidecar_url, endpoints, index_name):
    status, body = _create(sidecar_url, index_name, {"semantic": {
        "type": "semantic_text", "inference_id": endpoints["sparse"],
        "fields": {"keyword_field": {"type": "keyword"}}}})
    assert status == 200, body
    assert _field(sidecar_url, index_name, "semantic")["fields"] == {"keyword_field": {"type": "keyword"}}
    sd.index_docs(sidecar_url, index_name, {"1": {"semantic": "the droids you are looking for"}})
    status, found = sd.search(sidecar_url, index_name, {"query": {"term": {
        "semantic.keyword_field": "the droids you are looking for"}}})
    assert status == 200 and sd.ids(found) == ["1"], found
    status, found = sd.search(sidecar_url, index_name, {"query": {"semantic": {
        "field": "semantic", "query": "droids"}}})
    assert status == 200 and sd.ids(found) == ["1"], found


def test_sparse_index_options_from_9_2(sidecar_url, es_url, endpoints, index_name):
    options = {"sparse_vector": {"prune": True, "pruning_config": {"tokens_freq_ratio_threshold": 10,
                                                                    "tokens_weight_threshold": 0.5}}}
    status, body = _create(sidecar_url, index_name, {
        "sparse_field": {"type": "semantic_text", "inference_id": endpoints["sparse"], "index_options": options}})
    if http.node_version(es_url) < (9, 2):
        assert status == 400, body
        assert body["error"]["reason"] == "Failed to parse mapping: Unknown index options type [sparse_vector]"
        return
    assert status == 200, body
    mapped = _embeddings_mapping(es_url, index_name, "sparse_field")["index_options"]
    assert mapped["prune"] is True and mapped["pruning_config"]["tokens_freq_ratio_threshold"] == 10
    assert _field(sidecar_url, index_name, "sparse_field")["index_options"] == options
