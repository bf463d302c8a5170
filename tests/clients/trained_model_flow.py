"""Eland's upload sequence and elasticsearch-py's ``VectorStore`` with
``DenseVectorStrategy(model_id=...)``, with whichever ``elasticsearch`` package comes first on
``sys.path`` (the test puts one client version there). Prints one JSON object.

    python trained_model_flow.py SIDECAR_URL PREFIX WORKDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[1:1] = [str(HERE), str(HERE.parent)]

import elasticsearch  # noqa: E402
import numpy as np  # noqa: E402
from eland_upload import trace_like_eland, upload_like_eland  # noqa: E402
from elasticsearch import Elasticsearch  # noqa: E402
from elasticsearch.helpers.vectorstore import DenseVectorStrategy, VectorStore  # noqa: E402
from tiny_models import make_tiny_embedding_model  # noqa: E402

DOCS = ["the cat sat on the mat", "dogs run in the park", "the river runs to the sea"]


def main(url: str, prefix: str, workdir: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    client = Elasticsearch(url, request_timeout=120)
    model_dir = make_tiny_embedding_model(workdir / "emb")
    model_id = f"{prefix}-model"
    seen: dict = {"client": elasticsearch.__versionstr__}
    seen["steps"] = upload_like_eland(client, model_id, *trace_like_eland(model_dir, "text_embedding", workdir / "t"))
    index, pipeline = f"{prefix}-index", f"{prefix}-pipeline"
    try:
        client.ingest.put_pipeline(id=pipeline, processors=[{"inference": {
            "model_id": model_id, "field_map": {"text": "text_field"}, "target_field": "vector_query_field"}}])
        client.indices.create(index=index, settings={"index": {"default_pipeline": pipeline}}, mappings={
            "properties": {"text": {"type": "text"}, "vector_query_field": {"properties": {"predicted_value": {
                "type": "dense_vector", "dims": 32, "index": True, "similarity": "cosine"}}}}})
        store = VectorStore(client=client, index=index, retrieval_strategy=DenseVectorStrategy(model_id=model_id),
                            text_field="text", vector_field="vector_query_field.predicted_value", num_dimensions=32)
        store.add_texts(DOCS, refresh_indices=True)
        seen["top"] = [h["_source"]["text"] for h in store.search(query="a cat", k=3)]
        st = SentenceTransformer(str(model_dir), device="cpu")
        reference, q = st.encode(DOCS), st.encode(["a cat"])[0]
        scores = reference @ q / (np.linalg.norm(reference, axis=1) * np.linalg.norm(q))
        seen["expected"] = [DOCS[i] for i in np.argsort(-scores)]
        infer = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": DOCS[0]}])
        got = np.asarray(infer["inference_results"][0]["predicted_value"])
        seen["cos"] = float(got @ reference[0] / np.linalg.norm(got) / np.linalg.norm(reference[0]))
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).ingest.delete_pipeline(id=pipeline)
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))))
