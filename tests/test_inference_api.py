"""The Inference API through the sidecar with local models, checked as a user sees it:
status codes, bodies and what is stored in Elasticsearch."""

from __future__ import annotations

import time
import uuid

import http_util as http
import numpy as np
import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError
from sidecar_fixtures import SidecarProcess

pytestmark = pytest.mark.es


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def put(url, inference_id, body, task_type=None):
    path = f"/_inference/{task_type}/{inference_id}" if task_type else f"/_inference/{inference_id}"
    return http.json_request("PUT", url + path, body)


def infer(url, inference_id, body, task_type=None):
    path = f"/_inference/{task_type}/{inference_id}" if task_type else f"/_inference/{inference_id}"
    return http.json_request("POST", url + path, body)


E5 = {
    "service": "elasticsearch",
    "service_settings": {"num_allocations": 1, "num_threads": 1, "model_id": ".multilingual-e5-small"},
}
MINILM = {
    "service": "elasticsearch",
    "service_settings": {"num_allocations": 1, "num_threads": 1, "model_id": "sentence-transformers/all-MiniLM-L6-v2"},
}


@pytest.fixture(scope="module")
def minilm(sidecar_url):
    inference_id = uid("minilm")
    status, body = put(sidecar_url, inference_id, MINILM, "text_embedding")
    assert status == 200, body
    yield inference_id
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")


def cos(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- create / get --------------------------------------------------------------------------------


def test_create_text_embedding_returns_stored_config(sidecar_url, minilm):
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/{minilm}")
    assert status == 200
    [endpoint] = body["endpoints"]
    assert endpoint["inference_id"] == minilm
    assert endpoint["task_type"] == "text_embedding"
    assert endpoint["service"] == "elasticsearch"
    settings = endpoint["service_settings"]
    assert settings["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert settings["num_allocations"] == 1 and settings["num_threads"] == 1
    assert settings["dimensions"] == 384
    assert settings["similarity"] in ("cosine", "dot_product")
    # The default chunking settings are materialised, as Elasticsearch 8.16+ does.
    assert endpoint["chunking_settings"] == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
    assert "task_settings" not in endpoint


def test_real_embeddings(sidecar_url, minilm):
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]
    status, body = infer(sidecar_url, minilm, {"input": texts}, "text_embedding")
    assert status == 200, body
    vectors = [item["embedding"] for item in body["text_embedding"]]
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert abs(np.linalg.norm(vectors[0]) - 1.0) < 1e-3  # the model normalises
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.2
    # A single string works too, and the task type may be left out of the path.
    status, single = infer(sidecar_url, minilm, {"input": texts[0]})
    assert status == 200
    assert np.allclose(single["text_embedding"][0]["embedding"], vectors[0], atol=1e-5)


def test_duplicate_create_is_rejected(sidecar_url, minilm):
    status, body = put(sidecar_url, minilm, MINILM, "text_embedding")
    assert status == 400
    assert body["error"]["type"] == "resource_already_exists_exception"
    assert body["error"]["reason"] == f"Inference endpoint [{minilm}] already exists"


def test_list_and_filter(sidecar_url, minilm):
    for path in ("/_inference", "/_inference/_all", "/_inference/text_embedding/_all", "/_inference/text_embedding/*"):
        status, body = http.json_request("GET", sidecar_url + path)
        assert status == 200, path
        ids = [e["inference_id"] for e in body["endpoints"]]
        assert minilm in ids and ids == sorted(ids)
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/sparse_embedding/_all")
    assert minilm not in [e["inference_id"] for e in body["endpoints"]]
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/sparse_embedding/{minilm}")
    assert status == 400 and "does not match" in body["error"]["reason"]


def test_e5_seed_example_via_alias(sidecar_url):
    inference_id = uid("e5")
    status, body = put(sidecar_url, inference_id, E5, "text_embedding")
    assert status == 200, body
    # E5 models embed queries and passages with different prefixes.
    status, q = infer(sidecar_url, inference_id, {"input": "what is a cat", "input_type": "search"})
    status2, p = infer(sidecar_url, inference_id, {"input": "what is a cat", "input_type": "ingest"})
    assert status == status2 == 200
    assert not np.allclose(q["text_embedding"][0]["embedding"], p["text_embedding"][0]["embedding"])
    assert http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}")[0] == 200


def test_eland_style_model_id(sidecar_url):
    inference_id = uid("eland")
    body = {"service": "elasticsearch", "service_settings": {
        "num_allocations": 1, "num_threads": 1, "model_id": "sentence-transformers__all-minilm-l6-v2"}}
    status, created = put(sidecar_url, inference_id, body, "text_embedding")
    assert status == 200, created
    assert created["service_settings"]["dimensions"] == 384
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")


# -- sparse and rerank ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"num_allocations": 1, "num_threads": 1, "model_id": ".elser_model_2"},
    {"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 2},
     "num_threads": 1, "model_id": ".elser_model_2_linux-x86_64"},
])
def test_elser_seed_examples(sidecar_url, settings):
    inference_id = uid("elser")
    status, body = put(sidecar_url, inference_id, {"service": "elasticsearch", "service_settings": settings},
                       "sparse_embedding")
    assert status == 200, body
    assert body["task_type"] == "sparse_embedding"
    assert body["chunking_settings"]["strategy"] == "sentence"
    status, result = infer(sidecar_url, inference_id, {"input": ["the sky is blue", "cats purr"]}, "sparse_embedding")
    assert status == 200, result
    items = result["sparse_embedding"]
    assert len(items) == 2
    for item in items:
        assert item["is_truncated"] is False
        assert item["embedding"] and all(isinstance(k, str) and v > 0 for k, v in item["embedding"].items())
    long_text = " ".join(["word"] * 5000)
    status, result = infer(sidecar_url, inference_id, {"input": long_text}, "sparse_embedding")
    assert status == 200 and result["sparse_embedding"][0]["is_truncated"] is True
    assert http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}")[0] == 200


def test_deprecated_elser_service(sidecar_url):
    inference_id = uid("elser-svc")
    status, body = put(sidecar_url, inference_id,
                       {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}},
                       "sparse_embedding")
    assert status == 200, body
    assert body["service_settings"]["model_id"] == ".elser_model_2"
    assert infer(sidecar_url, inference_id, {"input": "hello"})[0] == 200
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")


def test_rerank(sidecar_url):
    inference_id = uid("rerank")
    status, body = put(sidecar_url, inference_id, {"service": "elasticsearch", "service_settings": {
        "num_allocations": 1, "num_threads": 1, "model_id": ".rerank-v1"}}, "rerank")
    assert status == 200, body
    assert "chunking_settings" not in body
    docs = ["luke", "like", "leia", "chewy", "r2d2", "star", "wars"]
    status, result = infer(sidecar_url, inference_id, {"query": "star wars main character", "input": docs})
    assert status == 200, result
    ranked = result["rerank"]
    assert sorted(r["index"] for r in ranked) == list(range(len(docs)))
    scores = [r["relevance_score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(r["text"] == docs[r["index"]] for r in ranked)  # return_documents defaults to true
    status, result = infer(sidecar_url, inference_id, {"query": "q", "input": docs, "top_n": 2,
                                                        "return_documents": False})
    assert status == 200 and len(result["rerank"]) == 2 and "text" not in result["rerank"][0]
    status, err = infer(sidecar_url, inference_id, {"input": docs})
    assert status == 400 and err["error"]["reason"] == "Validation Failed: 1: Field [query] cannot be null for task type [rerank];"
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")


# -- validation: clear 400s, nothing stored --------------------------------------------------------


@pytest.mark.parametrize("task_type,body,status,type_,fragment", [
    ("text_embedding", {"service": "nope", "service_settings": {}}, 400, "status_exception", "Unknown service [nope]"),
    ("completion", MINILM, 400, "status_exception",
     "The [elasticsearch] service does not support task type [completion]"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {"num_allocations": 1, "num_threads": 1}},
     400, "validation_exception", "[service_settings] does not contain the required setting [model_id]"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {**MINILM["service_settings"], "colour": "red"}},
     400, "status_exception", "Configuration contains settings [{colour=red}] unknown to the [elasticsearch] service"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {**MINILM["service_settings"], "num_threads": 3}},
     400, "action_request_validation_exception", "[num_threads] must be a power of 2"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {**MINILM["service_settings"], "num_threads": 64}},
     400, "action_request_validation_exception", "[num_threads] must be a power of 2"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {"num_threads": 1, "model_id": "x"}},
     400, "validation_exception", "does not contain one of the required settings [num_allocations, adaptive_allocations]"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {
        "num_threads": 1, "model_id": "x",
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 3, "max_number_of_allocations": 1}}},
     400, "validation_exception", "[max_number_of_allocations] must be greater than or equal to [min_number_of_allocations]"),
    ("text_embedding", {"service": "elasticsearch", "service_settings": {**MINILM["service_settings"], "num_allocations": "two"}},
     400, "validation_exception", "field [num_allocations] is not of the expected type"),
    ("text_embedding", {**MINILM, "chunking_settings": {"strategy": "word", "max_chunk_size": 5, "overlap": 1}},
     400, "validation_exception", "[max_chunk_size] must be a greater than or equal to [10.0]"),
    ("text_embedding", {**MINILM, "chunking_settings": {"strategy": "paragraphs"}},
     400, None, "paragraphs"),
    ("text_embedding", {"service_settings": {}}, 400, "status_exception", "Model configuration is missing a service"),
    ("text_embedding", {**MINILM, "extra": 1}, 400, "status_exception", "Configuration contains settings [{extra=1}]"),
    ("sparse_things", MINILM, 400, "status_exception", "Unknown task_type [sparse_things]"),
])
def test_invalid_create_is_rejected_and_nothing_stored(sidecar_url, task_type, body, status, type_, fragment):
    inference_id = uid("bad")
    got_status, got = put(sidecar_url, inference_id, body, task_type)
    assert got_status == status, got
    assert got["status"] == status
    if type_:
        assert got["error"]["type"] == type_
    assert fragment in got["error"]["reason"]
    assert got["error"]["root_cause"][0]["reason"] == got["error"]["reason"]
    assert http.json_request("GET", f"{sidecar_url}/_inference/{inference_id}")[0] == 404


def test_bad_ids_and_bodies(sidecar_url):
    status, body = put(sidecar_url, "Bad_ID", MINILM, "text_embedding")
    assert status == 400 and body["error"]["type"] == "action_request_validation_exception"
    assert "Invalid inference_id" in body["error"]["reason"]
    status, _, raw = http.request("PUT", f"{sidecar_url}/_inference/text_embedding/bad-json", b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and b"x_content_parse_exception" in raw
    status, body = put(sidecar_url, "no-task", MINILM)
    assert status == 400 and body["error"]["reason"] == "model is missing required setting [task_type]"
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/not-there")
    assert status == 404
    assert body["error"] == {"root_cause": [{"type": "resource_not_found_exception",
                                             "reason": "Inference endpoint not found [not-there]"}],
                             "type": "resource_not_found_exception",
                             "reason": "Inference endpoint not found [not-there]"}


def test_perform_errors(sidecar_url, minilm):
    status, body = infer(sidecar_url, minilm, {})
    assert status == 400 and body["error"]["reason"] == "Validation Failed: 1: Field [input] cannot be null;"
    status, body = infer(sidecar_url, minilm, {"input": []})
    assert status == 400 and "cannot be an empty array" in body["error"]["reason"]
    status, body = infer(sidecar_url, minilm, {"input": "x"}, "sparse_embedding")
    assert status == 400 and body["error"]["reason"] == (
        "Incompatible task_type, the requested type [sparse_embedding] does not match the model type [text_embedding]")
    status, body = infer(sidecar_url, "missing-endpoint", {"input": "x"})
    assert status == 404


# -- delete, update, stats -----------------------------------------------------------------------------


def test_delete(sidecar_url):
    inference_id = uid("del")
    assert put(sidecar_url, inference_id, MINILM, "text_embedding")[0] == 200
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}?dry_run=true")
    assert status == 200 and body == {"acknowledged": False, "pipelines": [], "indexes": []}
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/sparse_embedding/{inference_id}")
    assert status == 400
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/text_embedding/{inference_id}")
    assert status == 200 and body == {"acknowledged": True, "pipelines": [], "indexes": []}
    assert http.json_request("GET", f"{sidecar_url}/_inference/{inference_id}")[0] == 404
    assert http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}")[0] == 404


def test_update_allocations_and_stats(sidecar_url):
    inference_id = uid("upd")
    assert put(sidecar_url, inference_id, MINILM, "text_embedding")[0] == 200
    status, stats = http.json_request("GET", f"{sidecar_url}/_ml/trained_models/{inference_id}/_stats")
    assert status == 200 and stats["count"] == 1
    deployment = stats["trained_model_stats"][0]["deployment_stats"]
    assert deployment["deployment_id"] == inference_id
    assert deployment["allocation_status"]["state"] == "fully_allocated"
    assert deployment["allocation_status"]["allocation_count"] == deployment["allocation_status"]["target_allocation_count"] == 1

    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/{inference_id}/_update",
                                     {"service_settings": {"num_allocations": 2}})
    assert status == 200, body
    assert body["service_settings"]["num_allocations"] == 2
    assert http.json_request("GET", f"{sidecar_url}/_inference/{inference_id}")[1]["endpoints"][0][
        "service_settings"]["num_allocations"] == 2
    status, stats = http.json_request("GET", f"{sidecar_url}/_ml/trained_models/{inference_id}/_stats")
    assert stats["trained_model_stats"][0]["deployment_stats"]["allocation_status"]["target_allocation_count"] == 2

    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/{inference_id}/_update",
                                     {"service": "openai"})
    assert status == 400 and "cannot be updated" in body["error"]["reason"]
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/{inference_id}/_update",
                                     {"service_settings": {"model_id": "other"}})
    assert status == 400
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/{inference_id}/_update", None)
    assert status == 400 and body["error"]["reason"] == "Request body is empty"
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")


def test_services_catalogue(sidecar_url):
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/_services")
    assert status == 200
    names = {s["service"] for s in body}
    assert {"elasticsearch", "elser"} <= names
    es = next(s for s in body if s["service"] == "elasticsearch")
    assert set(es["task_types"]) == {"text_embedding", "sparse_embedding", "rerank"}
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/_services/rerank")
    assert all("rerank" in s["task_types"] for s in body)


# -- storage: restart, replicas, hidden indices ------------------------------------------------------


def test_endpoints_survive_restart_and_replicas_agree(es_url, sidecar_env, tmp_path):
    a = SidecarProcess(es_url, sidecar_env, tmp_path / "a.log").start()
    b = SidecarProcess(es_url, sidecar_env, tmp_path / "b.log").start()
    try:
        inference_id = uid("replica")
        assert put(a.url, inference_id, MINILM, "text_embedding")[0] == 200
        status, body = infer(b.url, inference_id, {"input": "hello"})
        assert status == 200 and len(body["text_embedding"][0]["embedding"]) == 384
        a.stop()
        a = SidecarProcess(es_url, sidecar_env, tmp_path / "a2.log").start()
        assert http.json_request("GET", f"{a.url}/_inference/{inference_id}")[0] == 200
        assert http.json_request("DELETE", f"{a.url}/_inference/{inference_id}")[0] == 200
        time.sleep(1.2)  # the registry cache TTL
        assert infer(b.url, inference_id, {"input": "hello"})[0] == 404
    finally:
        a.stop()
        b.stop()


def test_definitions_live_in_hidden_indices(es_url, sidecar_url, minilm):
    status, body = http.json_request("GET", f"{es_url}/.sidecar-inference/_settings?expand_wildcards=all")
    assert status == 200
    settings = body[".sidecar-inference"]["settings"]["index"]
    assert settings["hidden"] == "true"
    status, doc = http.json_request("GET", f"{es_url}/.sidecar-inference/_doc/{minilm}")
    assert status == 200 and doc["_source"]["config"]["inference_id"] == minilm
    # Hidden: not matched by wildcards.
    status, body = http.json_request("GET", f"{es_url}/_cat/indices/*?format=json")
    assert ".sidecar-inference" not in [i["index"] for i in body]


# -- the official client -----------------------------------------------------------------------------


def test_official_client_inference_api(sidecar_url):
    client = Elasticsearch(sidecar_url)
    inference_id = uid("client")
    created = client.inference.put(
        task_type="text_embedding", inference_id=inference_id,
        inference_config={"service": "elasticsearch", "service_settings": MINILM["service_settings"]},
    )
    assert created["inference_id"] == inference_id
    got = client.inference.get(inference_id=inference_id)
    assert got["endpoints"][0]["service_settings"]["dimensions"] == 384
    result = client.inference.inference(inference_id=inference_id, input=["hello world"])
    assert len(result["text_embedding"][0]["embedding"]) == 384
    with pytest.raises(BadRequestError):
        client.inference.put(task_type="text_embedding", inference_id=inference_id,
                             inference_config={"service": "elasticsearch",
                                               "service_settings": MINILM["service_settings"]})
    assert client.inference.delete(inference_id=inference_id)["acknowledged"] is True
    with pytest.raises(NotFoundError):
        client.inference.get(inference_id=inference_id)


# -- preconfigured endpoints ----------------------------------------------------------------------


def test_preconfigured_endpoints(sidecar_url):
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/_all")
    ids = [e["inference_id"] for e in body["endpoints"]]
    assert {".elser-2-elasticsearch", ".multilingual-e5-small-elasticsearch", ".rerank-v1-elasticsearch"} <= set(ids)
    status, result = infer(sidecar_url, ".elser-2-elasticsearch", {"input": "ready to use"})
    assert status == 200 and result["sparse_embedding"][0]["embedding"]
    status, result = infer(sidecar_url, ".multilingual-e5-small-elasticsearch", {"input": "ready"}, "text_embedding")
    assert status == 200 and len(result["text_embedding"][0]["embedding"]) == 384
    status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/.elser-2-elasticsearch")
    assert status == 400 and "reserved" in body["error"]["reason"]
    status, body = put(sidecar_url, ".elser-2-elasticsearch", MINILM, "text_embedding")
    assert status == 400 and "reserved" in body["error"]["reason"]


def test_semantic_text_defaults_to_elser(sidecar_url, es_url):
    index = uid("default-elser")
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}", {
        "settings": {"number_of_replicas": 0}, "mappings": {"properties": {"body": {"type": "semantic_text"}}}})
    assert status == 200, body
    _, mapping = http.json_request("GET", f"{sidecar_url}/{index}/_mapping")
    assert mapping[index]["mappings"]["properties"]["body"]["inference_id"] == ".elser-2-elasticsearch"
    status, body = http.json_request("PUT", f"{sidecar_url}/{index}/_doc/1?refresh=true", {"body": "hello there"})
    assert status == 201, body
    doc = {"_source": http.stored_source(es_url, index, "1")}
    assert doc["_source"]["_sidecar_inference"]["body"]["chunks"][0]["embeddings"]
