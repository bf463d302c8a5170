"""Ingest pipelines with inference processors through the sidecar, checked as a user sees
them: ``_ingest/pipeline`` round trips, what Elasticsearch holds, ``_simulate`` output shapes,
failure handling, batching and the endpoint-in-use check of ``DELETE _inference``."""

from __future__ import annotations

import uuid

import http_util as http
import numpy as np
import pytest

pytestmark = pytest.mark.es

MINILM = {
    "service": "elasticsearch",
    "service_settings": {"model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1, "num_threads": 1},
}
SPARSE = {
    "service": "elasticsearch",
    "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _endpoint(url: str, task_type: str, body: dict):
    inference_id = uid(f"ingest-{task_type.split('_')[0]}")
    status, answer = http.json_request("PUT", f"{url}/_inference/{task_type}/{inference_id}", body)
    assert status == 200, answer
    return inference_id


@pytest.fixture(scope="module")
def minilm(sidecar_url):
    inference_id = _endpoint(sidecar_url, "text_embedding", MINILM)
    yield inference_id
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


@pytest.fixture(scope="module")
def sparse(sidecar_url):
    inference_id = _endpoint(sidecar_url, "sparse_embedding", SPARSE)
    yield inference_id
    http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


@pytest.fixture
def pipeline_id(sidecar_url):
    pid = uid("ingest-p")
    yield pid
    http.request("DELETE", f"{sidecar_url}/_ingest/pipeline/{pid}")


def put_pipeline(url: str, pid: str, body: dict):
    return http.json_request("PUT", f"{url}/_ingest/pipeline/{pid}", body)


def simulate(url: str, body: dict, pid: str | None = None, verbose: bool = False):
    path = f"/_ingest/pipeline/{pid}/_simulate" if pid else "/_ingest/pipeline/_simulate"
    return http.json_request("POST", url + path + ("?verbose=true" if verbose else ""), body)


def simulate_one(url: str, processors: list, source: dict, **kw):
    status, body = simulate(url, {"pipeline": {"processors": processors}, "docs": [{"_source": source}]}, **kw)
    assert status == 200, body
    return body["docs"][0]


def embed(url: str, inference_id: str, text: str) -> list[float]:
    status, body = http.json_request("POST", f"{url}/_inference/{inference_id}", {"input": text})
    assert status == 200, body
    return body["text_embedding"][0]["embedding"]


def io(model: str, pairs, **extra) -> dict:
    io_value = [{"input_field": i, "output_field": o} for i, o in pairs]
    return {"inference": {"model_id": model, "input_output": io_value if len(io_value) > 1 else io_value[0], **extra}}


# -- definitions ---------------------------------------------------------------------------------


def test_put_get_delete_round_trip(sidecar_url, es_url, minilm, pipeline_id):
    body = {
        "description": "embeds the title",
        "version": 3,
        "_meta": {"owner": "search-team"},
        "processors": [
            {"inference": {"model_id": minilm, "tag": "title-embedding",
                           "input_output": [{"input_field": "title", "output_field": "title_vec"}],
                           "on_failure": [{"inference": {"model_id": minilm,
                                                         "input_output": {"input_field": "_ingest.on_failure_message",
                                                                          "output_field": "error_vec"}}}]}},
        ],
    }
    assert put_pipeline(sidecar_url, pipeline_id, body) == (200, {"acknowledged": True})
    # GET returns the definition exactly as written, alone or in listings.
    status, listed = http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}")
    assert status == 200 and untracked(listed) == {pipeline_id: body}
    status, listing = http.json_request("GET", f"{sidecar_url}/_ingest/pipeline")
    assert status == 200 and untracked(listing)[pipeline_id] == body
    status, listing = http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id[:-3]}*")
    assert untracked(listing) == {pipeline_id: body}
    assert http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}?summary=true") == (
        200, {pipeline_id: {}})
    # Elasticsearch holds a guard under that id, with the version for if_version.
    status, held = http.json_request("GET", f"{es_url}/_ingest/pipeline/{pipeline_id}")
    guard = held[pipeline_id]
    assert guard["_meta"]["managed_by"] == "es-inference-sidecar"
    assert guard["version"] == 3
    assert "must be run through es-inference-sidecar" in guard["description"]
    status, err = put_pipeline(sidecar_url, pipeline_id + "?if_version=7", body)
    assert status == 400 and "version conflict" in err["error"]["reason"]
    # DELETE removes both.
    assert http.json_request("DELETE", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}") == (
        200, {"acknowledged": True})
    assert http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}") == (404, {})
    assert http.json_request("GET", f"{es_url}/_ingest/pipeline/{pipeline_id}")[0] == 404


def untracked(listing: dict) -> dict:
    """A pipeline listing without the dates Elasticsearch 9 adds to each pipeline."""
    dates = {"created_date", "created_date_millis", "modified_date", "modified_date_millis"}
    return {pid: {k: v for k, v in cfg.items() if k not in dates} for pid, cfg in listing.items()}


def test_pipeline_without_inference_goes_to_elasticsearch(sidecar_url, es_url, minilm, pipeline_id):
    plain = {"description": "no inference", "processors": []}
    assert put_pipeline(sidecar_url, pipeline_id, plain) == (200, {"acknowledged": True})
    status, listed = http.json_request("GET", f"{es_url}/_ingest/pipeline/{pipeline_id}")
    assert status == 200 and untracked(listed) == {pipeline_id: plain}
    node_tracks = "created_date_millis" in listed[pipeline_id]
    # Replacing a sidecar pipeline by a plain one forgets the sidecar's copy.
    with_inference = {"processors": [io(minilm, [("a", "b")])]}
    assert put_pipeline(sidecar_url, pipeline_id, with_inference)[0] == 200
    listed = http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}?human=true")[1]
    assert untracked(listed) == {pipeline_id: with_inference}
    if node_tracks:
        # Elasticsearch 9 tracks when a pipeline was created and changed; so does the sidecar.
        tracked = listed[pipeline_id]
        assert tracked["created_date_millis"] <= tracked["modified_date_millis"]
        assert tracked["created_date"].endswith("Z") and "modified_date" in tracked
    assert put_pipeline(sidecar_url, pipeline_id, plain)[0] == 200
    assert untracked(http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}")[1]) == {pipeline_id: plain}
    status, result = simulate(sidecar_url, {"docs": [{"_source": {"a": "x"}}]}, pid=pipeline_id)
    assert status == 200 and result["docs"][0]["doc"]["_source"] == {"a": "x"}


def test_elasticsearch_itself_refuses_to_run_a_sidecar_pipeline(sidecar_url, es_url, minilm, pipeline_id):
    assert put_pipeline(sidecar_url, pipeline_id, {"processors": [io(minilm, [("a", "b")])]})[0] == 200
    status, body = http.json_request("POST", f"{es_url}/_ingest/pipeline/{pipeline_id}/_simulate",
                                     {"docs": [{"_source": {"a": "x"}}]})
    assert status == 200 and "error" in body["docs"][0]


@pytest.mark.parametrize(
    ("processor", "status", "type_", "reason"),
    [
        ({"inference": {"input_output": {"input_field": "a", "output_field": "b"}}},
         400, "parse_exception", "[model_id] required property is missing"),
        ({"inference": {"model_id": "m", "input_output": {"input_field": "a", "output_field": "b"}, "target_field": "x"}},
         400, "parse_exception", "[target_field] option is incompatible with [input_output]. Use the [output_field] "
                                 "option to specify where to write the inference results to."),
        ({"inference": {"model_id": "m", "input_output": []}},
         400, "parse_exception", "[input_output] property cannot be empty at least one is required"),
        ({"inference": {"model_id": "m", "input_output": [{"input_field": "a", "output_field": "b"},
                                                          {"input_field": "a", "output_field": "c"}]}},
         400, "parse_exception", "[input_field] names must be unique but [a] is repeated"),
        ({"inference": {"model_id": "m", "input_output": {"input_field": "a", "output_field": "b"}, "foo": 1}},
         400, "parse_exception", "processor [inference] doesn't support one or more provided configuration "
                                 "parameters [foo]"),
        ({"inference": {"model_id": "m", "inference_config": {"nope": {}}}},
         400, "status_exception", "unrecognized inference configuration type [nope]. Supported types "
                                  "[classification, regression, fill_mask, ner, pass_through, question_answering, "
                                  "text_classification, text_embedding, text_expansion, text_similarity, "
                                  "zero_shot_classification]"),
        # Checked by Elasticsearch on the pipeline with the inference processor stood in for.
        ({"inference": {"model_id": "m", "input_output": {"input_field": "a", "output_field": "b"}, "on_failure": []}},
         400, "parse_exception", "[on_failure] processors list cannot be empty"),
        ({"inference": {"model_id": "m", "input_output": {"input_field": "a", "output_field": "b"},
                        "on_failure": [{"no_such_processor": {}}]}},
         400, "parse_exception", "No processor type exists with name [no_such_processor]"),
    ],
)
def test_invalid_definitions_are_refused_like_elasticsearch(sidecar_url, es_url, pipeline_id, processor, status,
                                                            type_, reason):
    got_status, body = put_pipeline(sidecar_url, pipeline_id, {"processors": [processor]})
    assert got_status == status, body
    assert body["error"]["type"] == type_
    assert body["error"]["reason"] == reason
    expected_type = "no_such_processor" if "no_such_processor" in reason else "inference"
    assert body["error"]["processor_type"] == expected_type
    assert http.json_request("GET", f"{es_url}/_ingest/pipeline/{pipeline_id}")[0] == 404


def test_top_level_keys_are_checked_with_the_pipeline_id(sidecar_url, pipeline_id):
    status, body = put_pipeline(sidecar_url, pipeline_id,
                                {"processors": [io("m", [("a", "b")])], "extra": 1})
    assert status == 400
    assert body["error"]["reason"] == (
        f"pipeline [{pipeline_id}] doesn't support one or more provided configuration parameters [extra]")


def test_if_needs_painless(sidecar_url, es_url, pipeline_id):
    status, modules = http.json_request("GET", f"{es_url}/_nodes/plugins?filter_path=nodes.*.modules.name")
    names = {m["name"] for node in modules.get("nodes", {}).values() for m in node.get("modules", [])}
    if "lang-painless" in names:
        pytest.skip("this Elasticsearch has painless")
    status, body = put_pipeline(sidecar_url, pipeline_id,
                                {"processors": [io("m", [("a", "b")], **{"if": "ctx.a != null"})]})
    assert status == 500
    assert body["error"]["processor_type"] == "inference"
    assert "script_lang not supported [painless]" in body["error"]["reason"]


# -- output shapes -------------------------------------------------------------------------------


def test_dense_input_output_shapes(sidecar_url, minilm):
    doc = simulate_one(sidecar_url, [io(minilm, [("title", "ml.title_vec")])], {"title": "a cat sat"})["doc"]
    source = doc["_source"]
    assert set(source["ml"]) == {"title_vec", "model_id"}
    assert source["ml"]["model_id"] == minilm
    assert len(source["ml"]["title_vec"]) == 384
    assert np.allclose(source["ml"]["title_vec"], embed(sidecar_url, minilm, "a cat sat"), atol=1e-5)
    assert set(doc) == {"_index", "_id", "_version", "_source", "_ingest"} and doc["_version"] == "-3"
    assert set(doc["_ingest"]) == {"timestamp"}
    # A list of inputs: model_id once, beside the first output; an output without dots
    # writes model_id at the document root.
    source = simulate_one(sidecar_url, [io(minilm, [("a", "out_a"), ("b", "vectors.out_b")])],
                          {"a": "first", "b": "second"})["doc"]["_source"]
    assert source["model_id"] == minilm
    assert set(source["vectors"]) == {"out_b"}
    assert np.allclose(source["vectors"]["out_b"], embed(sidecar_url, minilm, "second"), atol=1e-5)


def test_existing_outputs_are_appended_to(sidecar_url, minilm):
    processors = [io(minilm, [("a", "x.vec")]), io(minilm, [("a", "x.vec")])]
    source = simulate_one(sidecar_url, processors, {"a": "twice"})["doc"]["_source"]
    assert len(source["x"]["vec"]) == 2 * 384
    assert source["x"]["model_id"] == [minilm, minilm]


def test_sparse_output_and_truncation(sidecar_url, sparse):
    source = simulate_one(sidecar_url, [io(sparse, [("text", "tokens")])], {"text": "the cat and the dog"})["doc"]["_source"]
    assert isinstance(source["tokens"], dict) and source["tokens"]
    assert all(isinstance(w, float) and w > 0 for w in source["tokens"].values())
    assert "is_truncated" not in source
    long_text = " ".join(["weather"] * 200)
    source = simulate_one(sidecar_url, [io(sparse, [("text", "ml.tokens")])], {"text": long_text})["doc"]["_source"]
    assert source["ml"]["is_truncated"] is True
    assert list(source["ml"]) == ["is_truncated", "tokens", "model_id"]


def test_target_field_style(sidecar_url, minilm, sparse):
    processor = {"inference": {"model_id": minilm, "tag": "emb", "field_map": {"body": "text_field"}}}
    source = simulate_one(sidecar_url, [processor], {"body": "hello"})["doc"]["_source"]
    result = source["ml"]["inference"]["emb"]
    assert list(result) == ["predicted_value", "model_id"]
    assert result["model_id"] == minilm
    assert np.allclose(result["predicted_value"], embed(sidecar_url, minilm, "hello"), atol=1e-5)
    processor = {"inference": {"model_id": sparse, "target_field": "out",
                               "inference_config": {"text_expansion": {"results_field": "tokens"}}}}
    source = simulate_one(sidecar_url, [processor], {"text_field": "the cat"})["doc"]["_source"]
    assert set(source["out"]) == {"tokens", "model_id"}
    error = simulate_one(sidecar_url, [{"inference": {"model_id": minilm}}], {"body": "x"})["error"]
    assert error["reason"] == "Input field [text_field] does not exist in the source document"


# -- failures ------------------------------------------------------------------------------------


def test_missing_and_non_string_inputs(sidecar_url, minilm):
    error = simulate_one(sidecar_url, [io(minilm, [("title", "v")])], {"other": "x"})["error"]
    assert error["type"] == "illegal_argument_exception"
    assert error["reason"] == "field [title] not present as part of path [title]"
    error = simulate_one(sidecar_url, [io(minilm, [("title", "v")])], {"title": 42})["error"]
    assert error["reason"] == "input field [title] cannot be processed because it is not a text field"
    error = simulate_one(sidecar_url, [io(minilm, [("a.b", "v")])], {"a": "flat"})["error"]
    assert error["reason"] == "cannot resolve [b] from object of type [java.lang.String] as part of path [a.b]"


def test_ignore_missing(sidecar_url, minilm):
    processor = io(minilm, [("first", "out_1"), ("second", "out_2")], ignore_missing=True)
    # The first input missing: nothing happens (Elasticsearch returns early).
    assert simulate_one(sidecar_url, [processor], {"second": "x"})["doc"]["_source"] == {"second": "x"}
    # A later input missing: "" is embedded for it.
    source = simulate_one(sidecar_url, [processor], {"first": "x"})["doc"]["_source"]
    assert np.allclose(source["out_2"], embed(sidecar_url, minilm, ""), atol=1e-5)


def test_unknown_model_on_failure_and_ignore_failure(sidecar_url, minilm):
    missing = uid("no-such-endpoint")
    error = simulate_one(sidecar_url, [io(missing, [("a", "v")])], {"a": "x"})["error"]
    assert error == {"root_cause": [{"type": "status_exception",
                                     "reason": f"[{missing}] is not an inference service model or a deployed ml model"}],
                     "type": "status_exception",
                     "reason": f"[{missing}] is not an inference service model or a deployed ml model"}
    # ignore_failure: the document goes on unchanged.
    processors = [io(missing, [("a", "v")], ignore_failure=True), io(minilm, [("a", "w")])]
    source = simulate_one(sidecar_url, processors, {"a": "x"})["doc"]["_source"]
    assert "v" not in source and len(source["w"]) == 384
    # on_failure: the handler sees the failure in _ingest, the next processor still runs.
    handler = [io(minilm, [("_ingest.on_failure_message", "err_vec")]),
               io(minilm, [("_ingest.on_failure_processor_tag", "tag_vec")])]
    processors = [io(missing, [("a", "v")], tag="first", on_failure=handler), io(minilm, [("a", "after")])]
    doc = simulate_one(sidecar_url, processors, {"a": "x"})["doc"]
    source = doc["_source"]
    message = f"[{missing}] is not an inference service model or a deployed ml model"
    assert np.allclose(source["err_vec"], embed(sidecar_url, minilm, message), atol=1e-5)
    assert np.allclose(source["tag_vec"], embed(sidecar_url, minilm, "first"), atol=1e-5)
    assert "after" in source
    assert set(doc["_ingest"]) == {"timestamp"}  # the failure fields are gone afterwards


def test_pipeline_on_failure_after_an_elasticsearch_processor_fails(sidecar_url, minilm):
    # set_security_user fails on a node without security: Elasticsearch runs it, the
    # sidecar runs the pipeline's handler with the failed processor's type.
    pipeline = {
        "processors": [io(minilm, [("a", "v")]), {"set_security_user": {"field": "user", "tag": "who"}},
                       io(minilm, [("a", "never")])],
        "on_failure": [io(minilm, [("_ingest.on_failure_processor_type", "failed_type")])],
    }
    status, body = simulate(sidecar_url, {"pipeline": pipeline, "docs": [{"_source": {"a": "x"}}]})
    assert status == 200, body
    source = body["docs"][0]["doc"]["_source"]
    if "user" in source:
        pytest.skip("this Elasticsearch has security enabled")
    assert "never" not in source and len(source["v"]) == 384
    assert np.allclose(source["failed_type"], embed(sidecar_url, minilm, "set_security_user"), atol=1e-5)


def test_handler_with_inference_around_an_elasticsearch_processor(sidecar_url, minilm):
    handler = [io(minilm, [("_ingest.on_failure_processor_tag", "tag_vec")])]
    processors = [{"set_security_user": {"field": "user", "tag": "who", "on_failure": handler}},
                  io(minilm, [("a", "after")])]
    source = simulate_one(sidecar_url, processors, {"a": "x"})["doc"]["_source"]
    if "user" in source:
        pytest.skip("this Elasticsearch has security enabled")
    assert np.allclose(source["tag_vec"], embed(sidecar_url, minilm, "who"), atol=1e-5)
    assert len(source["after"]) == 384
    results = simulate_one(sidecar_url, processors, {"a": "x"}, verbose=True)["processor_results"]
    assert [(r["processor_type"], r["status"]) for r in results] == [
        ("set_security_user", "error"), ("inference", "success"), ("inference", "success")]
    assert results[1]["doc"]["_ingest"]["on_failure_processor_tag"] == "who"


def test_failures_do_not_affect_other_documents(sidecar_url, minilm):
    body = {"pipeline": {"processors": [io(minilm, [("a", "v")])]},
            "docs": [{"_id": "1", "_source": {"a": "x"}}, {"_id": "2", "_source": {"b": "y"}},
                     {"_id": "3", "_source": {"a": "z"}}]}
    status, result = simulate(sidecar_url, body)
    assert status == 200
    docs = result["docs"]
    assert docs[0]["doc"]["_id"] == "1" and len(docs[0]["doc"]["_source"]["v"]) == 384
    assert docs[1]["error"]["type"] == "illegal_argument_exception"
    assert docs[2]["doc"]["_id"] == "3"


# -- simulate ------------------------------------------------------------------------------------


def test_simulate_verbose(sidecar_url, minilm):
    processors = [io(minilm, [("a", "v")], tag="embed", description="embeds a"),
                  {"set_security_user": {"field": "u", "ignore_failure": True}},
                  io(uid("missing"), [("a", "w")], ignore_failure=True)]
    results = simulate_one(sidecar_url, processors, {"a": "x"}, verbose=True)["processor_results"]
    first, second, third = results
    assert [r["processor_type"] for r in results] == ["inference", "set_security_user", "inference"]
    assert first["status"] == "success" and first["tag"] == "embed" and first["description"] == "embeds a"
    assert list(first) == ["processor_type", "status", "description", "tag", "doc"]
    assert len(first["doc"]["_source"]["v"]) == 384
    assert first["doc"]["_ingest"]["pipeline"] == "_simulate_pipeline"
    assert second["status"] in ("error_ignored", "success")
    assert third["status"] == "error_ignored"
    assert third["ignored_error"]["error"]["type"] == "status_exception"
    assert "w" not in third["doc"]["_source"]


def test_simulate_by_id_and_errors_passed_through(sidecar_url, minilm, pipeline_id):
    assert put_pipeline(sidecar_url, pipeline_id, {"processors": [io(minilm, [("a", "v")])]})[0] == 200
    body = {"docs": [{"_index": "my-index", "_id": "7", "_routing": "r", "_source": {"a": "x"}}]}
    status, result = simulate(sidecar_url, body, pid=pipeline_id)
    assert status == 200, result
    doc = result["docs"][0]["doc"]
    assert (doc["_index"], doc["_id"], doc["_routing"]) == ("my-index", "7", "r")
    assert doc["_source"]["model_id"] == minilm
    status, result = simulate(sidecar_url, {"docs": []}, pid=pipeline_id)
    assert status == 400 and result["error"]["reason"] == "must specify at least one document in [docs]"
    status, result = simulate(sidecar_url, {"docs": [{"_source": {}}]}, pid=uid("missing"))
    assert status == 400 and result["error"]["reason"].endswith("does not exist")


# -- batching and endpoint references ---------------------------------------------------------


def _inference_count(url: str, inference_id: str) -> int:
    status, stats = http.json_request("GET", f"{url}/_ml/trained_models/{inference_id}/_stats")
    assert status == 200, stats
    return stats["trained_model_stats"][0]["deployment_stats"].get("inference_count", 0)


def test_inference_is_done_once_per_document(sidecar_url):
    inference_id = _endpoint(sidecar_url, "text_embedding", MINILM)
    try:
        before = _inference_count(sidecar_url, inference_id)
        docs = [{"_source": {"a": f"document number {i}", "b": f"second field {i}"}} for i in range(12)]
        docs.append({"_source": {"b": "no a: fails before any inference"}})
        body = {"pipeline": {"processors": [io(inference_id, [("a", "va"), ("b", "vb")])]}, "docs": docs}
        status, result = simulate(sidecar_url, body)
        assert status == 200 and all("doc" in d for d in result["docs"][:-1])
        assert "error" in result["docs"][-1]
        # two inputs per document, each embedded once
        assert _inference_count(sidecar_url, inference_id) - before == 2 * 12
    finally:
        http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


def test_delete_endpoint_refused_while_a_pipeline_uses_it(sidecar_url, pipeline_id):
    inference_id = _endpoint(sidecar_url, "text_embedding", MINILM)
    try:
        pipeline = {"processors": [{"set_security_user": {"field": "u", "on_failure": [io(inference_id, [("a", "v")])]}}]}
        assert put_pipeline(sidecar_url, pipeline_id, pipeline)[0] == 200
        status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}")
        assert status == 409
        assert body["error"]["reason"] == (
            f"Inference endpoint {inference_id} is referenced by pipelines: [{pipeline_id}]. Ensure that no pipelines "
            "are using this inference endpoint, or use force to ignore this warning and delete the inference endpoint.")
        status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}?dry_run=true")
        assert status == 200 and body["pipelines"] == [pipeline_id]
        status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")
        assert status == 200 and body["acknowledged"] is True
    finally:
        http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


def test_deleted_pipeline_no_longer_holds_its_endpoint(sidecar_url, pipeline_id):
    inference_id = _endpoint(sidecar_url, "text_embedding", MINILM)
    try:
        assert put_pipeline(sidecar_url, pipeline_id, {"processors": [io(inference_id, [("a", "v")])]})[0] == 200
        # replaced by a plain pipeline, then deleted: each answer comes after the sidecar caught up
        assert put_pipeline(sidecar_url, pipeline_id, {"processors": []})[0] == 200
        assert http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}?dry_run=true")[1]["pipelines"] == []
        assert put_pipeline(sidecar_url, pipeline_id, {"processors": [io(inference_id, [("a", "v")])]})[0] == 200
        assert http.json_request("DELETE", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}")[0] == 200
        status, body = http.json_request("DELETE", f"{sidecar_url}/_inference/{inference_id}")
        assert status == 200 and body == {"acknowledged": True, "pipelines": [], "indexes": []}
    finally:
        http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}?force=true")


def test_official_client(sidecar_url, minilm, pipeline_id):
    from elasticsearch import Elasticsearch

    with Elasticsearch(sidecar_url) as client:
        processors = [io(minilm, [("a", "v")])]
        assert client.ingest.put_pipeline(id=pipeline_id, processors=processors).body == {"acknowledged": True}
        assert untracked(client.ingest.get_pipeline(id=pipeline_id).body) == {pipeline_id: {"processors": processors}}
        result = client.ingest.simulate(id=pipeline_id, docs=[{"_source": {"a": "x"}}], verbose=True).body
        assert result["docs"][0]["processor_results"][0]["status"] == "success"
        assert client.ingest.delete_pipeline(id=pipeline_id).body == {"acknowledged": True}
