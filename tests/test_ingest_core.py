"""The ingest core without HTTP: Elasticsearch's document field rules, how pipelines are
split between Elasticsearch and the sidecar, and the bulk-path API (``plan``/``run``) against
a real Elasticsearch with a service that counts its calls."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from elasticsearch import AsyncElasticsearch

from sidecar.errors import EsError, not_found
from sidecar.inference import Inference
from sidecar.ingest import IngestDoc, Pipelines
from sidecar.ingest.definition import (
    EsSegment,
    NodeStep,
    compile_pipeline,
    contains_inference,
    es_view,
    model_ids,
)
from sidecar.ingest.document import DocState, FieldError, get_field, has_field, set_field, set_or_append
from sidecar.ingest.inference_options import parse_inference
from sidecar.protocol.service import DenseEmbeddings, Endpoint, TaskType

# -- document fields -----------------------------------------------------------------------------


def _doc(source):
    return DocState(meta={"_index": "idx", "_id": "1"}, source=source, ingest={"timestamp": "t"})


def test_field_paths_follow_ingest_document():
    doc = _doc({"a": {"b": [{"c": "x"}, "y"]}, "n": None})
    assert get_field(doc, "a.b.0.c") == (True, "x")
    assert get_field(doc, "_source.a.b.1") == (True, "y")
    assert get_field(doc, "_index") == (True, "idx")
    assert get_field(doc, "_ingest.timestamp") == (True, "t")
    assert get_field(doc, "n") == (True, None)
    assert get_field(doc, "missing", ignore_missing=True) == (False, None)
    cases = {
        "missing": "field [missing] not present as part of path [missing]",
        "a.b.x": "[x] is not an integer, cannot be used as an index as part of path [a.b.x]",
        "a.b.5": "[5] is out of bounds for array with length [2] as part of path [a.b.5]",
        "a.b.1.z": "cannot resolve [z] from object of type [java.lang.String] as part of path [a.b.1.z]",
        "n.x": "cannot resolve [x] from null as part of path [n.x]",
        "a..b": "path [a..b] is not valid",
        "": "path cannot be null nor empty",
    }
    for path, message in cases.items():
        with pytest.raises(FieldError) as info:
            get_field(doc, path)
        assert str(info.value) == message
    assert has_field(doc, "a.b.0") and not has_field(doc, "a.b.9") and has_field(doc, "n")


def test_set_and_append_follow_ingest_document():
    doc = _doc({"s": "text"})
    set_field(doc, "x.y.z", 1)
    assert doc.source["x"] == {"y": {"z": 1}}
    set_or_append(doc, "x.y.z", [2, 3])
    assert doc.source["x"]["y"]["z"] == [1, 2, 3]
    set_or_append(doc, "m", {"k": 1})
    set_or_append(doc, "m", {"k": 2})
    assert doc.source["m"] == [{"k": 1}, {"k": 2}]
    with pytest.raises(FieldError, match=r"cannot set \[q\] with parent object of type \[java.lang.String\]"):
        set_field(doc, "s.q", 1)


# -- definitions ---------------------------------------------------------------------------------

INFER = {"inference": {"model_id": "m1", "input_output": {"input_field": "a", "output_field": "b"}}}


def test_pipelines_are_split_between_elasticsearch_and_the_sidecar():
    body = {
        "processors": [
            {"set": {"field": "x", "value": 1}},
            {"lowercase": {"field": "y"}},
            INFER,
            {"rename": {"field": "a", "target_field": "c",
                        "on_failure": [{"inference": {"model_id": "m2", "field_map": {"z": "text_field"}}}]}},
            {"rename": {"field": "q", "target_field": "r", "ignore_failure": True,
                        "on_failure": [{"inference": {"model_id": "m3"}}]}},
        ],
        "on_failure": [{"set": {"field": "error", "value": "{{ _ingest.on_failure_message }}"}}],
    }
    assert contains_inference(body) and not contains_inference({"processors": [{"set": {}}]})
    assert model_ids(body) == ["m1", "m2", "m3"]
    pipeline = compile_pipeline("p", body)
    kinds = [type(s).__name__ for s in pipeline.steps]
    assert kinds == ["EsSegment", "NodeStep", "NodeStep", "EsSegment"]
    first, inference, rename, last = pipeline.steps
    assert isinstance(first, EsSegment) and [n.type for n in first.nodes] == ["set", "lowercase"]
    assert isinstance(inference, NodeStep) and inference.node.is_inference
    # An Elasticsearch processor whose handler has inference processors runs alone, without it.
    assert isinstance(rename, NodeStep) and rename.node.es_config() == {"rename": {"field": "a", "target_field": "c"}}
    # With ignore_failure the handler can never run: the processor stays with its neighbours.
    assert isinstance(last, EsSegment) and "on_failure" not in last.processors()[0]["rename"]
    assert isinstance(pipeline.on_failure[0], EsSegment)
    # Elasticsearch checks everything but the inference options on a stand-in.
    view = es_view({"processors": [{"inference": {"model_id": "m", "tag": "t", "if": "true", "on_failure": [INFER]}}]})
    stand_in = view["processors"][0]["set_security_user"]
    assert stand_in["tag"] == "t" and stand_in["if"] == "true"
    assert "set_security_user" in stand_in["on_failure"][0]


def test_inference_options():
    spec = parse_inference({"model_id": "m", "input_output": [{"input_field": "a", "output_field": "x.y.out"}],
                            "ignore_missing": True}, None)
    assert spec.inputs[0].base_path == "x.y" and spec.inputs[0].leaf == "out" and spec.ignore_missing
    assert parse_inference({"model_id": "m"}, "tg").target_field == "ml.inference.tg"
    assert parse_inference({"model_id": "m"}, None).target_field == "ml.inference"
    spec = parse_inference({"model_id": "m", "field_mappings": {"b": "text_field"},
                            "inference_config": {"text_embedding": {"results_field": "vec"}}}, None)
    assert spec.field_map == {"b": "text_field"} and spec.results_field == "vec"
    with pytest.raises(EsError) as info:
        parse_inference({"model_id": "m", "ignore_missing": True}, "t")
    assert info.value.reason == ("processor [inference] doesn't support one or more provided configuration "
                                 "parameters [ignore_missing]")
    assert info.value.extra == {"processor_type": "inference", "processor_tag": "t"}
    with pytest.raises(EsError, match=r"\[model_id\] property isn't a string, but of type \[java.lang.Integer\]"):
        parse_inference({"model_id": 5}, None)


# -- the bulk path ------------------------------------------------------------------------------


class CountingService:
    name = "counting"
    batch_size = 1000

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, endpoint, inputs, input_type, task_settings, timeout=None):
        self.calls.append(list(inputs))
        return DenseEmbeddings(vectors=np.array([[float(len(t)), 0.5] for t in inputs], dtype=np.float32))


class FakeEndpoints:
    default_timeout_s = 5.0

    def __init__(self) -> None:
        self.service = CountingService()
        self.services = SimpleNamespace(get=lambda name: self.service)
        self.inference = Inference(self.resolve, self.services, timeout_s=self.default_timeout_s)

    async def resolve(self, inference_id: str) -> Endpoint:
        if inference_id != "counting":
            raise not_found(f"Inference endpoint not found [{inference_id}]")
        return Endpoint(inference_id, TaskType.TEXT_EMBEDDING, "counting", {})


@pytest.fixture
async def core(es_url):
    es = AsyncElasticsearch(es_url)
    suffix = uuid.uuid4().hex[:8]
    pipelines = Pipelines(es, FakeEndpoints(), index=f".sidecar-test-pipelines-{suffix}", ttl_s=0, settings_ttl_s=0)
    created: dict[str, list[str]] = {"pipelines": [], "indices": []}

    async def install(pipeline_id: str, body: dict) -> None:
        guard = await pipelines.prepare(pipeline_id, body)
        await es.ingest.put_pipeline(id=pipeline_id, body=guard)
        await pipelines.save(pipeline_id, body)
        created["pipelines"].append(pipeline_id)

    async def index(name: str, **settings) -> None:
        await es.indices.create(index=name, settings={"number_of_replicas": 0, **settings})
        created["indices"].append(name)

    yield SimpleNamespace(pipelines=pipelines, es=es, install=install, index=index, suffix=suffix)
    for name in created["indices"]:
        await es.indices.delete(index=name, ignore_unavailable=True)
    for pipeline_id in created["pipelines"]:
        await es.options(ignore_status=404).ingest.delete_pipeline(id=pipeline_id)
    await es.indices.delete(index=pipelines.store.index, ignore_unavailable=True)
    await es.close()


@pytest.mark.es
async def test_plan_and_run_batch_inference_once_per_processor(core):
    pid = f"core-p-{core.suffix}"
    await core.install(pid, {"processors": [
        {"inference": {"model_id": "counting", "input_output": [{"input_field": "a", "output_field": "va"},
                                                                {"input_field": "b", "output_field": "vb"}],
                       "ignore_missing": True}},
        {"inference": {"model_id": "counting", "input_output": {"input_field": "a", "output_field": "again"}}},
    ]})
    name = f"core-idx-{core.suffix}"
    await core.index(name, **{"index.default_pipeline": pid})
    plan = await core.pipelines.plan(name, None)
    assert plan is not None and (plan.pipeline, plan.final_pipeline, plan.sidecar_final) == (pid, None, False)
    assert await core.pipelines.plan(name, "_none") is None
    assert await core.pipelines.plan(f"core-other-{core.suffix}", None) is None
    docs = [IngestDoc(name, str(i), {"a": f"text {i}", "b": "bb"}) for i in range(20)]
    docs.append(IngestDoc(name, "missing-a", {"b": "only b"}))
    outcomes = await core.pipelines.run(plan, docs + [(name, None, {"a": "tuple doc"})])
    calls = core.pipelines.endpoints.service.calls
    # one call per processor for the whole batch (the doc without "a" is a no-op for the
    # first processor and fails in the second)
    assert [len(c) for c in calls] == [2 * 21, 21]
    ok = outcomes[0]
    assert ok.status == "ok" and ok.forward_pipeline == "_none" and not ok.dropped
    assert ok.source["va"] == [6.0, 0.5] and ok.source["again"] == [6.0, 0.5]
    assert ok.source["model_id"] == ["counting", "counting"]  # both wrote at the root: appended
    assert ok.index == name and ok.id == "0" and ok.executed_pipelines == [pid]
    failed = outcomes[20]
    assert failed.status == "failed" and failed.error.status == 400
    assert failed.error.to_cause() == {"type": "illegal_argument_exception",
                                       "reason": "field [a] not present as part of path [a]"}
    assert outcomes[21].status == "ok" and outcomes[21].id is None
    assert await core.pipelines.references("counting") == ([pid], [])
    assert await core.pipelines.any_inference_pipelines()


@pytest.mark.es
async def test_final_pipelines(core):
    pid = f"core-final-{core.suffix}"
    await core.install(pid, {"processors": [
        {"inference": {"model_id": "counting", "input_output": {"input_field": "a", "output_field": "v"}}}]})
    name = f"core-final-idx-{core.suffix}"
    await core.index(name, **{"index.final_pipeline": pid})
    caps = await core.pipelines.backend.capabilities()
    if not caps.conditional_guard:
        plan = await core.pipelines.plan(name, None)
        [outcome] = await core.pipelines.run(plan, [IngestDoc(name, "1", {"a": "x"})])
        assert outcome.status == "failed" and "can only run final pipelines when" in outcome.error.reason
        return
    plan = await core.pipelines.plan(name, "_none")
    assert plan is not None and plan.sidecar_final and plan.pipeline is None
    [outcome] = await core.pipelines.run(plan, [IngestDoc(name, "1", {"a": "x"})])
    assert outcome.source["_es_inference_sidecar_final"] is True


@pytest.mark.es
async def test_unknown_endpoint_is_an_item_error(core):
    pid = f"core-unknown-{core.suffix}"
    await core.install(pid, {"processors": [
        {"inference": {"model_id": "nope", "input_output": {"input_field": "a", "output_field": "v"}}}]})
    name = f"core-unknown-idx-{core.suffix}"
    await core.index(name)
    plan = await core.pipelines.plan(name, pid)
    [outcome] = await core.pipelines.run(plan, [IngestDoc(name, "1", {"a": "x"})])
    assert outcome.status == "failed" and outcome.error.status == 404
    assert outcome.error.reason == "[nope] is not an inference service model or a deployed ml model"


# -- what Elasticsearch is given -------------------------------------------------------------


def test_guard_pipelines_by_node_capabilities():
    from sidecar.es.capabilities import IngestCapabilities as Capabilities
    from sidecar.ingest.residual import guard_pipeline, is_guard

    body = {"version": 4, "processors": []}
    full = Capabilities(frozenset({"fail", "remove", "set", "set_security_user"}), painless=True)
    guard = guard_pipeline("p", body, full)
    assert is_guard(guard) and guard["version"] == 4
    fail, remove = guard["processors"]
    assert fail["fail"]["message"] == "pipeline [p] contains inference processors and must be run through es-inference-sidecar"
    assert fail["fail"]["if"] == "ctx['_es_inference_sidecar_final'] != true"
    assert remove == {"remove": {"field": "_es_inference_sidecar_final"}}
    no_painless = Capabilities(frozenset({"fail", "remove"}), painless=False)
    assert guard_pipeline("p", body, no_painless)["processors"] == [
        {"fail": {"message": "pipeline [p] contains inference processors and must be run through es-inference-sidecar"}}]
    bare = Capabilities(frozenset({"set_security_user"}), painless=False)
    [processor] = guard_pipeline("p", body, bare)["processors"]
    assert processor["set_security_user"]["field"] == "_index"


async def test_handlers_carry_failure_metadata_into_elasticsearch():
    from sidecar.es.capabilities import IngestCapabilities
    from sidecar.ingest.residual import CARRIER_FIELD, EsIngest

    backend = EsIngest(es=None)  # type: ignore[arg-type]
    backend.caps.assume_ingest(IngestCapabilities(frozenset({"set", "remove"}), painless=True))
    inside = _doc({"a": 1})
    inside.ingest.update(on_failure_message="boom", on_failure_processor_type="inference",
                         on_failure_processor_tag=None)
    prelude, docs = await backend._prelude([inside])
    assert prelude == [
        {"set": {"field": "_ingest.on_failure_message", "copy_from": f"{CARRIER_FIELD}.on_failure_message"}},
        {"set": {"field": "_ingest.on_failure_processor_type",
                 "copy_from": f"{CARRIER_FIELD}.on_failure_processor_type"}},
        {"set": {"field": "_ingest.on_failure_processor_tag", "copy_from": f"{CARRIER_FIELD}.on_failure_processor_tag"}},
        {"remove": {"field": CARRIER_FIELD}},
    ]
    assert docs[0]["_source"] == {"a": 1, CARRIER_FIELD: {"on_failure_message": "boom",
                                                          "on_failure_processor_type": "inference",
                                                          "on_failure_processor_tag": None}}
    assert inside.source == {"a": 1}
    assert await backend._prelude([_doc({"b": 2})]) == ([], [{"_index": "idx", "_id": "1", "_source": {"b": 2}}])
