"""Jina AI and Voyage AI: OpenAI-shaped ``/v1/embeddings`` and a ``/v1/rerank`` that answers
``{index, relevance_score, document}`` items; bearer auth, ``{"detail": ...}`` errors."""

from __future__ import annotations

import json
from typing import Any

from .harness import Call, FakeProvider, Reply
from .openai_fake import fake_vector


class FakeEmbedRerank(FakeProvider):
    results_field = "results"
    input_types: tuple[str, ...] = ()
    input_type_field = "task"
    dtype_field = "embedding_type"

    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"detail": message})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if not body.get("model"):
            return "model is required"
        if call.path == "/v1/embeddings":
            if not all(isinstance(t, str) for t in body["input"]):
                return "input must be strings"
            if body.get(self.input_type_field, self.input_types[0]) not in self.input_types:
                return f"bad {self.input_type_field}"
            return None
        if call.path == "/v1/rerank":
            return None if isinstance(body.get("query"), str) and isinstance(body.get("documents"), list) else "bad rerank"
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path == "/v1/embeddings":
            dtype = body.get(self.dtype_field, "float")
            dims = body.get("output_dimension", 4)
            rows: list[Any] = (
                [fake_vector(t, dims) for t in body["input"]] if dtype == "float" else [[-3, 17] for _ in body["input"]]
            )
            return Reply(json={"object": "list", "data": [{"index": i, "embedding": r} for i, r in enumerate(rows)]})
        docs = body["documents"]
        order = sorted(range(len(docs)), key=lambda i: len(docs[i]))[: body.get("top_n", body.get("top_k"))]
        items = [
            {"index": i, "relevance_score": 1.0 / (1 + len(docs[i]))}
            | ({"document": {"text": docs[i]}} if body.get("return_documents") else {})
            for i in order
        ]
        return Reply(json={self.results_field: items})


def _jina_item_problem(item: Any) -> str | None:
    """What is wrong with one multimodal input of Jina's embeddings API, or None."""
    if isinstance(item, dict) and set(item) == {"content"} and isinstance(item["content"], list):
        return next(filter(None, map(_jina_item_problem, item["content"])), None)
    if not isinstance(item, dict) or len(item) != 1:
        return f"bad multimodal input {item!r}"
    (kind, value), = item.items()
    if kind == "text":
        return None if isinstance(value, str) else "text must be a string"
    if kind == "image":
        return None if isinstance(value, str) and value.startswith("data:image/") else "image must be a data URI"
    return f"unknown input kind {kind}"


class FakeJina(FakeEmbedRerank):
    """Jina's embeddings take plain strings, or (multimodal models: jina-clip, jina-embeddings-v4)
    ``{"text"}`` / ``{"image"}`` objects and ``{"content": [...]}`` groups."""

    input_types = ("retrieval.passage", "retrieval.query", "classification", "separation")

    def validate(self, call: Call) -> str | None:
        if call.headers.get("Request-Source") != "unspecified:elasticsearch":
            return "missing Request-Source"
        body = call.json
        if call.path == "/v1/embeddings" and any(isinstance(i, dict) for i in body.get("input", [])):
            return next(filter(None, map(_jina_item_problem, body["input"])), None)
        return super().validate(call)

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path == "/v1/embeddings" and any(isinstance(i, dict) for i in body["input"]):
            rows = [fake_vector(json.dumps(item, sort_keys=True), body.get("dimensions", 4)) for item in body["input"]]
            return Reply(json={"object": "list", "data": [{"index": i, "embedding": r} for i, r in enumerate(rows)]})
        return super().answer(call)


class FakeVoyage(FakeEmbedRerank):
    results_field = "data"
    input_types = ("document", "query")
    input_type_field = "input_type"
    dtype_field = "output_dtype"
