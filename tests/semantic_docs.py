"""Test corpora with semantic_text fields, created through the sidecar as users create them:
inference endpoints via ``_inference``, the index via ``PUT /{index}`` with ``semantic_text``
mappings, documents via ``_bulk`` (the sidecar chunks and embeds them)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import http_util as http

MINILM = {"service": "elasticsearch",
          "service_settings": {"model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_allocations": 1,
                               "num_threads": 1}}
TINY_SPARSE = {"service": "elasticsearch",
               "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1}}
TINY_RERANK = {"service": "elasticsearch",
               "service_settings": {"model_id": ".rerank-v1", "num_allocations": 1, "num_threads": 1}}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_endpoint(url: str, task_type: str, config: dict[str, Any], prefix: str) -> str:
    inference_id = uid(prefix)
    status, body = http.json_request("PUT", f"{url}/_inference/{task_type}/{inference_id}", config)
    assert status == 200, body
    return inference_id


def delete_endpoint(url: str, inference_id: str) -> None:
    http.request("DELETE", f"{url}/_inference/{inference_id}?force=true")


def create_index(url: str, name: str, properties: dict[str, Any], shards: int = 1) -> str:
    body = {"settings": {"number_of_shards": shards, "number_of_replicas": 0},
            "mappings": {"properties": properties}}
    status, resp = http.json_request("PUT", f"{url}/{name}", body)
    assert status == 200, resp
    return name


def index_docs(url: str, index: str, docs: dict[str, dict[str, Any]]) -> None:
    lines = []
    for doc_id, source in docs.items():
        lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
        lines.append(json.dumps(source))
    status, body = http.json_request("POST", f"{url}/_bulk?refresh=true", "\n".join(lines) + "\n",
                                     headers={"Content-Type": "application/x-ndjson"})
    assert status == 200 and not body["errors"], body


def delete_index(url: str, name: str) -> None:
    http.request("DELETE", f"{url}/{name}")


def search(url: str, index: str | None, body: dict[str, Any], params: str = "") -> tuple[int, Any]:
    path = f"/{index}/_search" if index else "/_search"
    return http.json_request("POST", f"{url}{path}{params}", body)


def ids(body: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in body["hits"]["hits"]]


def inference_count(url: str, inference_id: str) -> int:
    """How many inferences the endpoint's local deployment has run (trained-model stats)."""
    status, body = http.json_request("GET", f"{url}/_ml/trained_models/{inference_id}/_stats")
    assert status == 200, body
    return sum(s["inference_stats"]["inference_count"] for s in body["trained_model_stats"])
