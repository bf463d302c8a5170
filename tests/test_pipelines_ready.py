"""The ready-made pipelines in ``pipelines/``: each file is a documented pipeline definition;
``es-inference-sidecar pipelines install`` puts it through the sidecar with the test's own
endpoints in place of the preconfigured ids; ``_simulate`` and a real ``_bulk?pipeline=``
into an index made from the pipeline's own ``_meta.index_mappings`` give documents that carry
what the pipeline promises, and the search example in its ``_meta`` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import http_util as http
import numpy as np
import pytest
import semantic_docs as sd

from sidecar import cli_pipelines

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "pipelines").glob("*.json"))
E5 = ".multilingual-e5-small-elasticsearch"
ELSER = ".elser-2-elasticsearch"
RERANK = ".rerank-v1-elasticsearch"
TASKS = {E5: "text_embedding", ELSER: "sparse_embedding", RERANK: "rerank"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# -- the files (no Elasticsearch needed) ---------------------------------------------------------


def test_pipelines_folder_is_the_shipped_package_data():
    assert FILES, "pipelines/ holds no definitions"
    assert {p.stem for p in FILES} == set(cli_pipelines.available())
    assert (ROOT / "pipelines").resolve() == (ROOT / "sidecar" / "pipelines").resolve()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_file_is_a_documented_pipeline(path):
    body = _load(path)
    assert isinstance(body["description"], str) and body["description"]
    meta = body["_meta"]
    endpoints = meta["requires"]["inference_endpoints"]
    assert endpoints and all(TASKS[e] == t for e, t in endpoints.items())
    assert meta["requires"]["fields"] and meta["writes"]
    assert meta["index_mappings"]["properties"]
    assert "{{query}}" in json.dumps(meta["search"])
    processors = body["processors"]
    assert processors and all(set(p) == {"inference"} for p in processors)
    # every processor uses an endpoint the _meta declares, so the installer can substitute it
    assert set(cli_pipelines.model_ids(body)) <= set(endpoints)
    assert set(body) <= {"description", "version", "_meta", "processors", "on_failure"}


def test_substitution_reaches_processors_mappings_and_search():
    body = cli_pipelines.available()["e5-semantic-text"]
    out = cli_pipelines.substitute(body, {E5: "my-e5"})
    text = json.dumps(out)
    assert E5 not in text and text.count("my-e5") == json.dumps(body).count(E5)
    assert out["_meta"]["requires"]["inference_endpoints"] == {"my-e5": "text_embedding"}
    assert out["_meta"]["index_mappings"]["properties"]["content"]["inference_id"] == "my-e5"
    assert body["processors"][0]["inference"]["model_id"] == E5  # the shipped definition is untouched


def test_prepare_refuses_unknown_names_and_unused_placeholders():
    with pytest.raises(cli_pipelines.PipelineError, match=r"no ready-made pipeline named \[nope\]"):
        cli_pipelines.prepare(["nope"], {})
    with pytest.raises(cli_pipelines.PipelineError, match="is not used by the chosen pipelines"):
        cli_pipelines.prepare(["elser-sparse"], {E5: "x"})
    with pytest.raises(cli_pipelines.PipelineError, match="PLACEHOLDER=ID"):
        cli_pipelines.parse_ids(["no-equals-sign"])
    [(name, pipeline_id, _)] = cli_pipelines.prepare(["elser-sparse"], {}, "team-")
    assert (name, pipeline_id) == ("elser-sparse", "team-elser-sparse")


# -- through the sidecar -------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sidecar", "pipelines", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def endpoints(sidecar_url):
    ids = {E5: sd.create_endpoint(sidecar_url, "text_embedding", sd.MINILM, "ready-dense"),
           ELSER: sd.create_endpoint(sidecar_url, "sparse_embedding", sd.TINY_SPARSE, "ready-sparse"),
           RERANK: sd.create_endpoint(sidecar_url, "rerank", sd.TINY_RERANK, "ready-rerank")}
    yield ids
    for inference_id in ids.values():
        sd.delete_endpoint(sidecar_url, inference_id)


@pytest.fixture
def cleanup(sidecar_url):
    made: dict[str, list[str]] = {"pipelines": [], "indices": []}
    yield made
    for index in made["indices"]:
        sd.delete_index(sidecar_url, index)
    for pipeline_id in made["pipelines"]:
        http.request("DELETE", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}")


def embed(url: str, inference_id: str, text: str) -> list[float]:
    status, body = http.json_request("POST", f"{url}/_inference/{inference_id}", {"input": text})
    assert status == 200, body
    return body["text_embedding"][0]["embedding"]


def dig(source: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        source = source[part]
    return source


# What each pipeline is given, what it promises to write, and a question its search example
# answers with the document ``expected`` (None: the tiny random models rank arbitrarily).
CASES: dict[str, dict[str, Any]] = {
    "elser-sparse": {
        "docs": {"cat": {"content": "The cat sat on the warm mat."},
                 "bank": {"content": "The central bank raised interest rates."}},
        "sparse": {"content_embedding": ELSER}, "model_id": "model_id", "query": "cat mat", "expected": None},
    "field-map-elser": {
        "docs": {"cat": {"text": "The cat sat on the warm mat."},
                 "bank": {"text": "The central bank raised interest rates."}},
        "sparse": {"vector.tokens": ELSER}, "model_id": "vector.model_id", "query": "cat mat", "expected": None},
    "field-map-e5": {
        "docs": {"cat": {"text": "The kitten purred on the sofa."},
                 "bank": {"text": "The central bank raised interest rates."},
                 "space": {"text": "Astronauts docked with the space station."}},
        "dense": {"vector.predicted_value": "text"}, "model_id": "vector.model_id",
        "query": "a sleepy little cat", "expected": "cat"},
    "e5-rerank-ready": {
        "docs": {"cat": {"passage": "The kitten purred on the sofa."},
                 "bank": {"passage": "The central bank raised interest rates."},
                 "space": {"passage": "Astronauts docked with the space station."}},
        "dense": {"passage_embedding": "passage"}, "model_id": "model_id", "query": "a sleepy little cat",
        "expected": None},
    "e5-semantic-text": {
        "docs": {"cat": {"title": "Cats", "body": "The kitten purred on the sofa. It fell asleep in the sun."},
                 "bank": {"title": "Interest rates", "body": "The central bank raised interest rates again."},
                 "space": {"title": "Space", "body": "Astronauts docked with the space station."},
                 "untitled": {"body": "A note without a title about gardening and tomatoes."}},
        "dense": {"title_embedding": "title"}, "model_id": "model_id", "query": "a sleepy little cat",
        "expected": "cat"},
}


def test_every_shipped_pipeline_has_a_case():
    assert set(CASES) == {p.stem for p in FILES}


def _check_outputs(url: str, case: dict[str, Any], ids: dict[str, str], doc_id: str, source: dict[str, Any],
                   dims: int) -> None:
    given = case["docs"][doc_id]
    for path, placeholder in case.get("sparse", {}).items():
        tokens = dig(source, path)
        assert isinstance(tokens, dict) and tokens, (doc_id, path, source)
        assert all(isinstance(w, float) and w > 0 for w in tokens.values())
        assert dig(source, case["model_id"]) == ids[placeholder]
    for path, input_field in case.get("dense", {}).items():
        if input_field not in given:  # ignore_missing: the document passes unchanged
            with pytest.raises(KeyError):
                dig(source, path)
            continue
        vector = dig(source, path)
        assert len(vector) == dims
        assert np.allclose(vector, embed(url, ids[E5], given[input_field]), atol=1e-5)
        assert dig(source, case["model_id"]) == ids[E5]


@pytest.mark.es
@pytest.mark.parametrize("name", sorted(CASES))
def test_installed_simulated_and_bulk_indexed(name, sidecar_url, es_url, endpoints, cleanup):
    case = CASES[name]
    shipped = cli_pipelines.available()[name]
    used = cli_pipelines.required_endpoints(shipped)
    prefix = sd.uid("ready") + "-"
    pipeline_id = prefix + name
    cleanup["pipelines"].append(pipeline_id)
    args = ["install", name, "--url", sidecar_url, "--prefix", prefix]
    for placeholder in used:
        args += ["--inference-id", f"{placeholder}={endpoints[placeholder]}"]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    assert f"installed pipeline [{pipeline_id}] from pipelines/{name}.json" in out.stdout

    # Stored as written, with the test's endpoints everywhere the preconfigured ids were.
    status, got = http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}")
    assert status == 200, got
    stored = {k: v for k, v in got[pipeline_id].items() if k not in ("created_date", "created_date_millis",
                                                                    "modified_date", "modified_date_millis")}
    assert stored == cli_pipelines.substitute(shipped, {p: endpoints[p] for p in used})
    assert not any(p in json.dumps(stored) for p in TASKS)

    status, info = http.json_request("GET", f"{sidecar_url}/_inference/{endpoints[E5]}")
    dims = info["endpoints"][0]["service_settings"]["dimensions"]

    # _simulate through the installed pipeline.
    docs = case["docs"]
    status, simulated = http.json_request("POST", f"{sidecar_url}/_ingest/pipeline/{pipeline_id}/_simulate",
                                          {"docs": [{"_id": i, "_source": s} for i, s in docs.items()]})
    assert status == 200, simulated
    simulated_sources = {}
    for doc_id, result in zip(docs, simulated["docs"], strict=True):
        assert "doc" in result, result
        simulated_sources[doc_id] = result["doc"]["_source"]
        _check_outputs(sidecar_url, case, endpoints, doc_id, result["doc"]["_source"], dims)

    # A real _bulk with ?pipeline= into an index mapped as the pipeline's _meta says.
    meta = stored["_meta"]
    index = sd.create_index(sidecar_url, sd.uid(f"ready-{name}"), meta["index_mappings"]["properties"])
    cleanup["indices"].append(index)
    lines = "".join(json.dumps({"index": {"_index": index, "_id": i}}) + "\n" + json.dumps(s) + "\n"
                    for i, s in docs.items())
    status, bulk = http.json_request("POST", f"{sidecar_url}/_bulk?refresh=true&pipeline={pipeline_id}", lines,
                                     headers={"Content-Type": "application/x-ndjson"})
    assert status == 200 and not bulk["errors"], bulk
    for doc_id, given in docs.items():
        source = http.stored_source(es_url, index, doc_id)
        _check_outputs(sidecar_url, case, endpoints, doc_id, source, dims)
        # What was indexed is what _simulate showed.
        for path in case.get("sparse", {}):
            # Nodes from 9.1 on give stored token weights back as indexed: 9 significant bits.
            stored_tokens, simulated_tokens = dig(source, path), dig(simulated_sources[doc_id], path)
            assert stored_tokens.keys() == simulated_tokens.keys()
            assert all(stored_tokens[t] == pytest.approx(w, rel=1e-2) for t, w in simulated_tokens.items())
        for path, input_field in case.get("dense", {}).items():
            if input_field in given:
                assert np.allclose(dig(source, path), dig(simulated_sources[doc_id], path), atol=1e-6)

    # The search example of _meta runs against that index.
    search = json.loads(json.dumps(meta["search"]).replace("{{query}}", case["query"]))
    status, found = sd.search(sidecar_url, index, {**search, "size": 3})
    assert status == 200, found
    assert found["hits"]["hits"], found
    if case["expected"] is not None:
        assert found["hits"]["hits"][0]["_id"] == case["expected"], found


@pytest.mark.es
def test_install_all_with_the_preconfigured_endpoints(sidecar_url, cleanup):
    prefix = sd.uid("ready-all") + "-"
    out = run_cli("install", "--url", sidecar_url, "--prefix", prefix)
    names = [p.stem for p in FILES]
    cleanup["pipelines"].extend(prefix + n for n in names)
    assert out.returncode == 0, out.stderr
    for name in names:
        assert f"installed pipeline [{prefix}{name}]" in out.stdout
        status, got = http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{prefix}{name}")
        assert status == 200 and got[prefix + name]["processors"] == _load(ROOT / "pipelines" / f"{name}.json")[
            "processors"]


@pytest.mark.es
def test_install_refuses_an_endpoint_of_the_wrong_task_type(sidecar_url, endpoints):
    prefix = sd.uid("ready-bad") + "-"
    out = run_cli("install", "elser-sparse", "--url", sidecar_url, "--prefix", prefix,
                  "--inference-id", f"{ELSER}={endpoints[E5]}")
    assert out.returncode == 1
    assert f"needs a [sparse_embedding] endpoint but [{endpoints[E5]}] is [text_embedding]" in out.stderr
    out = run_cli("install", "elser-sparse", "--url", sidecar_url, "--prefix", prefix,
                  "--inference-id", f"{ELSER}=no-such-endpoint")
    assert out.returncode == 1 and "[no-such-endpoint] (sparse_embedding), which does not exist" in out.stderr
    assert http.json_request("GET", f"{sidecar_url}/_ingest/pipeline/{prefix}elser-sparse")[0] == 404


@pytest.mark.es
def test_elasticsearch_errors_are_reported(es_url, cleanup):
    # Pointed at Elasticsearch itself instead of the sidecar: the node has no inference
    # processor and says so; the command exits non-zero with that error.
    prefix = sd.uid("ready-direct") + "-"
    cleanup["pipelines"].append(prefix + "field-map-e5")
    out = run_cli("install", "field-map-e5", "--url", es_url, "--prefix", prefix, "--no-check")
    assert out.returncode == 1
    assert f"pipeline [{prefix}field-map-e5] (field-map-e5) was refused: 400" in out.stderr
    assert "No processor type exists with name [inference]" in out.stderr
    assert "installed" not in out.stdout
