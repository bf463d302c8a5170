"""What a user's code does with the official Python client pointed at the sidecar: run with
whichever ``elasticsearch`` package comes first on ``sys.path`` (the test puts one version of
the client there), it prints one JSON object of what it saw, or the error the client raised.

    python flow.py SIDECAR_URL PREFIX
"""

from __future__ import annotations

import json
import sys

import elasticsearch
from elasticsearch import ApiError, Elasticsearch, helpers

DOCS = [
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar in green leaves.",
    "The stock market closed higher after the central bank held interest rates.",
    "Penguins huddle together to keep warm during the Antarctic winter.",
]


def flow(client: Elasticsearch, prefix: str) -> dict:
    seen: dict = {"client": elasticsearch.__versionstr__}
    seen["server"] = client.info()["version"]["number"]
    endpoint = f"{prefix}-e5"
    client.options(request_timeout=600).inference.put(
        task_type="text_embedding", inference_id=endpoint,
        inference_config={"service": "elasticsearch", "service_settings": {
            "model_id": ".multilingual-e5-small", "num_allocations": 1, "num_threads": 1}})
    got = client.inference.get(inference_id=endpoint)["endpoints"][0]
    seen["dims"] = got["service_settings"]["dimensions"]
    seen["embedding"] = len(client.inference.inference(inference_id=endpoint, input=["hello"])
                            ["text_embedding"][0]["embedding"])

    index = f"{prefix}-docs"
    client.indices.create(index=index, mappings={"properties": {
        "text": {"type": "semantic_text", "inference_id": endpoint}, "tag": {"type": "keyword"}}})
    seen["mapping_type"] = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["text"]["type"]
    ok, _ = helpers.bulk(client, ({"_index": index, "_id": str(i), "text": t, "tag": "doc"}
                                  for i, t in enumerate(DOCS)), refresh=True)
    seen["indexed"] = ok
    hits = client.search(index=index, query={"semantic": {"field": "text", "query": "How do plants eat?"}},
                         size=1)["hits"]["hits"]
    seen["top"] = hits[0]["_id"]
    seen["source_keys"] = sorted(hits[0]["_source"])
    hits = client.search(index=index, query={"match": {"text": "cold birds"}}, size=1)["hits"]["hits"]
    seen["match_top"] = hits[0]["_id"]

    pipeline = f"{prefix}-pipeline"
    client.ingest.put_pipeline(id=pipeline, processors=[{"inference": {
        "model_id": endpoint, "input_output": {"input_field": "body", "output_field": "body_vector"}}}])
    sim = client.ingest.simulate(id=pipeline, docs=[{"_source": {"body": "a short text"}}])
    seen["simulated_dims"] = len(sim["docs"][0]["doc"]["_source"]["body_vector"])

    dest = f"{prefix}-copy"
    client.indices.create(index=dest, mappings={"properties": {
        "text": {"type": "semantic_text", "inference_id": endpoint}, "tag": {"type": "keyword"}}})
    done = client.reindex(source={"index": index}, dest={"index": dest}, refresh=True, wait_for_completion=True)
    seen["reindexed"] = done["created"]
    hits = client.search(index=dest, query={"semantic": {"field": "text", "query": "How do plants eat?"}},
                         size=1)["hits"]["hits"]
    seen["copy_top"] = hits[0]["_id"]

    client.indices.delete(index=[index, dest])
    client.ingest.delete_pipeline(id=pipeline)
    client.inference.delete(inference_id=endpoint)
    return seen


def main(url: str, prefix: str) -> int:
    client = Elasticsearch(url)
    try:
        print(json.dumps(flow(client, prefix)))
    except ApiError as exc:
        print(json.dumps({"client": elasticsearch.__versionstr__, "status": exc.meta.status,
                          "error": exc.body}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
