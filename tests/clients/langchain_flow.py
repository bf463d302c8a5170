"""LangChain's ``ElasticsearchStore`` with in-cluster embeddings, as its docs set it up: an
ingest pipeline whose ``inference`` processor names a trained model, the index mapped for
``vector_query_field.predicted_value``, ``DenseVectorStrategy(model_id=...)`` (and hybrid) at
query time. Run with ``langchain-elasticsearch`` first on ``sys.path``; prints one JSON object.

    python langchain_flow.py SIDECAR_URL MODEL_ID INDEX DIMS
"""

from __future__ import annotations

import json
import sys

from elasticsearch import Elasticsearch

try:  # installed in a folder of its own (it pins its own client), put first on sys.path by the test
    from langchain_elasticsearch import DenseVectorStrategy, ElasticsearchStore
except ImportError:  # pragma: no cover - the test installs it before running this script
    sys.exit("langchain_flow.py: langchain-elasticsearch must be on sys.path (see test_trained_models_clients.py)")

TEXTS = ["the cat sat on the mat", "dogs run in the park", "rain and snow today in the city",
         "the river runs to the sea", "a good book about music"]


def main(url: str, model_id: str, index: str, dims: int) -> dict:
    client = Elasticsearch(url, request_timeout=120)
    pipeline = f"{index}-pipeline"
    client.ingest.put_pipeline(id=pipeline, processors=[{"inference": {
        "model_id": model_id, "field_map": {"text_field": "text_field"}, "target_field": "vector_query_field"}}])
    client.indices.create(index=index, settings={"index": {"default_pipeline": pipeline}}, mappings={"properties": {
        "text_field": {"type": "text"}, "vector_query_field": {"properties": {"predicted_value": {
            "type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}}}}})
    seen: dict = {}
    try:
        store = ElasticsearchStore.from_texts(
            TEXTS, client=client, index_name=index, query_field="text_field",
            vector_query_field="vector_query_field.predicted_value", strategy=DenseVectorStrategy(model_id=model_id))
        client.indices.refresh(index=index)
        seen["dense"] = [d.page_content for d in store.similarity_search("cats on mats", k=3)]
        hybrid = ElasticsearchStore(
            client=client, index_name=index, query_field="text_field",
            vector_query_field="vector_query_field.predicted_value",
            strategy=DenseVectorStrategy(model_id=model_id, hybrid=True))
        seen["hybrid"] = [d.page_content for d in hybrid.similarity_search("the river", k=2)]
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).ingest.delete_pipeline(id=pipeline)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
