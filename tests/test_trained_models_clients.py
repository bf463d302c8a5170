"""Libraries built on the official client, driven as their docs show, with in-cluster inference
by trained models through the sidecar: elasticsearch-py's ``VectorStore`` (the core of
LangChain's ``ElasticsearchStore``) with ``DenseVectorStrategy(model_id=...)`` over an ingest
pipeline whose ``inference`` processor names the uploaded model, hybrid, ``BM25Strategy`` and
``SparseVectorStrategy`` with the built-in ELSER id."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from elasticsearch.helpers.vectorstore import (
    BM25Strategy,
    DenseVectorStrategy,
    SparseVectorStrategy,
    VectorStore,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "clients"))
from eland_upload import trace_like_eland, upload_like_eland  # noqa: E402

pytestmark = pytest.mark.es

DOCS = ["the cat sat on the mat", "dogs run in the park", "rain and snow today in the city",
        "the river runs to the sea", "a good book about music"]


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(sidecar_url) -> Elasticsearch:
    return Elasticsearch(sidecar_url, request_timeout=120)


@pytest.fixture(scope="module")
def embedding_model(client, tmp_path_factory):
    from tiny_models import make_tiny_embedding_model

    base = tmp_path_factory.mktemp("vectorstore")
    model_dir = make_tiny_embedding_model(base / "emb")
    model_id = _uid("vs-bert")
    upload_like_eland(client, model_id, *trace_like_eland(model_dir, "text_embedding", base / "traced"))
    yield model_id, model_dir
    client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def _source(client, index: str, doc_id: str) -> dict:
    """A document's _source with its vectors (9.x leaves them out unless asked)."""
    params = {"_source_exclude_vectors": "false"} if int(client.info()["version"]["number"].split(".")[0]) >= 9 else {}
    return client.perform_request("GET", f"/{index}/_doc/{doc_id}", params=params,
                                  headers={"accept": "application/json"}).body["_source"]


def _pipeline_index(client, model_id: str) -> tuple[str, str]:
    """What the docs have users set up for in-cluster dense embeddings: a pipeline with the
    ``inference`` processor (``field_map`` + ``target_field``) as the index's default."""
    index, pipeline = _uid("vs-dense"), _uid("vs-pipeline")
    client.ingest.put_pipeline(id=pipeline, processors=[{"inference": {
        "model_id": model_id, "field_map": {"text": "text_field"}, "target_field": "vector_query_field"}}])
    client.indices.create(index=index, settings={"index": {"default_pipeline": pipeline}}, mappings={
        "properties": {"text": {"type": "text"}, "metadata": {"type": "object"}, "vector_query_field": {
            "properties": {"predicted_value": {"type": "dense_vector", "dims": 32, "index": True,
                                               "similarity": "cosine"}}}}})
    return index, pipeline


def test_dense_vector_strategy_with_model_id_end_to_end(client, embedding_model):
    from sentence_transformers import SentenceTransformer

    model_id, model_dir = embedding_model
    index, pipeline = _pipeline_index(client, model_id)
    try:
        store = VectorStore(client=client, index=index, retrieval_strategy=DenseVectorStrategy(model_id=model_id),
                            text_field="text", vector_field="vector_query_field.predicted_value", num_dimensions=32)
        ids = store.add_texts(DOCS, refresh_indices=True)
        assert len(ids) == len(DOCS)
        stored = _source(client, index, ids[0])
        st = SentenceTransformer(str(model_dir), device="cpu")
        reference = st.encode(DOCS)
        vector = np.asarray(stored["vector_query_field"]["predicted_value"])
        assert stored["vector_query_field"]["model_id"] == model_id
        assert float(vector @ reference[0] / np.linalg.norm(vector) / np.linalg.norm(reference[0])) >= 0.999

        query = "cats on mats"
        hits = store.search(query=query, k=3)
        q = st.encode([query])[0]
        scores = reference @ q / (np.linalg.norm(reference, axis=1) * np.linalg.norm(q))
        assert [h["_source"]["text"] for h in hits] == [DOCS[i] for i in np.argsort(-scores)[:3]]

        hybrid = VectorStore(client=client, index=index,
                             retrieval_strategy=DenseVectorStrategy(model_id=model_id, hybrid=True),
                             text_field="text", vector_field="vector_query_field.predicted_value", num_dimensions=32)
        found = [h["_source"]["text"] for h in hybrid.search(query="the river", k=2)]
        assert "the river runs to the sea" in found

        bm25 = VectorStore(client=client, index=index, retrieval_strategy=BM25Strategy(), text_field="text")
        assert bm25.search(query="music", k=1)[0]["_source"]["text"] == "a good book about music"
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).ingest.delete_pipeline(id=pipeline)


def test_query_vector_builder_and_processor_accept_deployment_ids(client, embedding_model):
    model_id, _ = embedding_model
    deployment = _uid("vs-deployment")
    client.ml.start_trained_model_deployment(model_id=model_id, deployment_id=deployment, wait_for="started")
    index, pipeline = _pipeline_index(client, deployment)
    try:
        client.index(index=index, id="1", document={"text": DOCS[1]}, refresh=True)
        source = _source(client, index, "1")
        assert len(source["vector_query_field"]["predicted_value"]) == 32
        hits = client.search(index=index, knn={"field": "vector_query_field.predicted_value", "k": 1,
                                               "num_candidates": 5, "query_vector_builder": {
                                                   "text_embedding": {"model_id": deployment, "model_text": "dog"}}})
        assert hits["hits"]["hits"][0]["_id"] == "1"
        missing = _uid("nothing")
        bad = client.options(ignore_status=(400, 404)).search(index=index, knn={
            "field": "vector_query_field.predicted_value", "k": 1, "num_candidates": 5,
            "query_vector_builder": {"text_embedding": {"model_id": missing, "model_text": "dog"}}})
        assert bad.meta.status == 404
        # In use by a pipeline: neither stopped nor deleted without force.
        refused = client.options(ignore_status=409).ml.stop_trained_model_deployment(model_id=deployment)
        assert refused.meta.status == 409 and "referenced by ingest processors" in refused.body["error"]["reason"]
        refused = client.options(ignore_status=409).ml.delete_trained_model(model_id=model_id)
        assert refused.meta.status == 409 and "referenced by ingest processors" in refused.body["error"]["reason"]
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).ingest.delete_pipeline(id=pipeline)
        client.ml.stop_trained_model_deployment(model_id=deployment)


@pytest.fixture
def elser(client):
    """The built-in ELSER id, put and deployed as the ELSER tutorials do (the operator's alias
    points it at a tiny sparse model)."""
    model_id = ".elser_model_2"
    client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)
    client.ml.put_trained_model(model_id=model_id, input={"field_names": ["text_field"]}, wait_for_completion=True)
    client.ml.start_trained_model_deployment(model_id=model_id, wait_for="started")
    yield model_id
    client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def _has_rank_features(client) -> bool:
    probe = _uid("probe-rank-features")
    answer = client.options(ignore_status=400).indices.create(
        index=probe, mappings={"properties": {"f": {"type": "rank_features"}}})
    client.options(ignore_status=404).indices.delete(index=probe)
    return answer.meta.status == 200


def test_text_expansion_over_sparse_vector_with_the_built_in_elser_id(client, elser):
    index, pipeline = _uid("te-sparse"), _uid("te-pipeline")
    client.ingest.put_pipeline(id=pipeline, processors=[{"inference": {
        "model_id": elser, "input_output": [{"input_field": "text", "output_field": "tokens"}]}}])
    client.indices.create(index=index, settings={"index": {"default_pipeline": pipeline}},
                          mappings={"properties": {"text": {"type": "text"}, "tokens": {"type": "sparse_vector"}}})
    try:
        for i, text in enumerate(DOCS):
            client.index(index=index, id=str(i), document={"text": text})
        client.indices.refresh(index=index)
        tokens = _source(client, index, "0")["tokens"]
        assert tokens and all(w > 0 for w in tokens.values())
        hits = client.search(index=index, query={"text_expansion": {"tokens": {
            "model_id": elser, "model_text": DOCS[0]}}})["hits"]["hits"]
        assert hits[0]["_id"] == "0"
        # The sparse_vector query of the ELSER tutorials names the model as its inference_id.
        hits = client.search(index=index, query={"sparse_vector": {
            "field": "tokens", "inference_id": elser, "query": DOCS[0]}})["hits"]["hits"]
        assert hits[0]["_id"] == "0"
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).ingest.delete_pipeline(id=pipeline)


def test_sparse_vector_strategy_with_the_built_in_elser_id(client, elser):
    """``SparseVectorStrategy`` maps ``rank_features`` and queries with ``text_expansion``."""
    if not _has_rank_features(client):
        pytest.skip("the node has no [rank_features] field type (its mapper-extras module is not installed), "
                    "which SparseVectorStrategy maps")
    model_id = elser
    index = _uid("vs-sparse")
    strategy = SparseVectorStrategy(model_id=model_id)
    try:
        store = VectorStore(client=client, index=index, retrieval_strategy=strategy, text_field="text",
                            vector_field="vector")
        store.add_texts(DOCS, refresh_indices=True)
        mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert mapping["vector"]["properties"]["tokens"]["type"] == "rank_features"
        hits = store.search(query="the cat sat on the mat", k=5)
        assert hits and hits[0]["_source"]["text"] == "the cat sat on the mat"
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).ingest.delete_pipeline(id=f"{model_id}_sparse_embedding")


LANGCHAIN = "1.0.0"


def _langchain_site() -> Path:
    """``langchain-elasticsearch`` (with an 8.x client) in a folder of its own, installed once."""
    import os
    import subprocess

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "es-inference-sidecar" / "clients"
    target = cache / f"langchain-elasticsearch-{LANGCHAIN}"
    if not (target / ".complete").exists():
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                               "--target", str(tmp), f"langchain-elasticsearch=={LANGCHAIN}",
                               "elasticsearch>=8.13,<9"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"langchain-elasticsearch does not install here: {done.stderr[-500:]}")
        (tmp / ".complete").write_text(LANGCHAIN)
        try:
            tmp.rename(target)
        except OSError:  # another run installed it meanwhile
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return target


def test_langchain_elasticsearch_store_with_in_cluster_embeddings(sidecar_url, embedding_model):
    import json
    import os
    import subprocess

    from sentence_transformers import SentenceTransformer

    model_id, model_dir = embedding_model
    site = _langchain_site()
    flow = Path(__file__).resolve().parent / "clients" / "langchain_flow.py"
    out = subprocess.run([sys.executable, str(flow), sidecar_url, model_id, _uid("langchain"), "32"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    st = SentenceTransformer(str(model_dir), device="cpu")
    reference, q = st.encode(DOCS), st.encode(["cats on mats"])[0]  # the flow indexes DOCS
    scores = reference @ q / (np.linalg.norm(reference, axis=1) * np.linalg.norm(q))
    assert seen["dense"] == [DOCS[i] for i in np.argsort(-scores)[:3]]
    assert "the river runs to the sea" in seen["hybrid"]


@pytest.mark.parametrize("major", [8, 9])
def test_each_client_major_uploads_like_eland_and_searches(sidecar_url, client, major, tmp_path):
    """Eland's sequence and VectorStore with the 8.x client, and with the 9.x client where the
    node is 9.x (8.19 refuses the 9.x client's ``compatible-with=9``, as it does without the sidecar)."""
    import json
    import os
    import subprocess

    from test_clients import CLIENTS, client_site

    if major == 9 and int(client.info()["version"]["number"].split(".")[0]) < 9:
        pytest.skip("the 9.x client needs a 9.x node")
    site = client_site(CLIENTS[major])
    flow = Path(__file__).resolve().parent / "clients" / "trained_model_flow.py"
    out = subprocess.run([sys.executable, str(flow), sidecar_url, _uid(f"client{major}"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["client"].startswith(f"{major}.")
    assert seen["steps"][0] == "get:404" and seen["steps"][-1] == "start"
    assert seen["top"] == seen["expected"]
    assert seen["cos"] >= 0.999
