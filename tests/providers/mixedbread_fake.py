"""Mixedbread's reranking API on loopback: ``POST /v1/reranking`` with ``{"model", "query",
"input", "top_k"?, "return_input"?}`` answering ``{"data": [{"index", "score", "input",
"object": "rank_result"}], "object": "list", ...}``; bearer auth, ``{"error": {"message"}}``
errors."""

from __future__ import annotations

from .harness import Call, FakeProvider, Reply

PATH = "/v1/reranking"
FIELDS = {"model", "query", "input", "top_k", "return_input"}


class FakeMixedbread(FakeProvider):
    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def validate(self, call: Call) -> str | None:
        if call.method != "POST" or call.path != PATH:
            return f"unknown route {call.method} {call.path}"
        body = call.json
        if set(body) - FIELDS:
            return f"unknown fields {sorted(set(body) - FIELDS)}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model is required"
        if not isinstance(body.get("query"), str):
            return "query must be a string"
        if not isinstance(body.get("input"), list) or not all(isinstance(t, str) for t in body["input"]):
            return "input must be a list of strings"
        top_k = body.get("top_k", 1)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            return "top_k must be a positive integer"
        if not isinstance(body.get("return_input", False), bool):
            return "return_input must be a boolean"
        return None

    def answer(self, call: Call) -> Reply:
        body = call.json
        docs = body["input"]
        returned = body.get("return_input", False)
        top_k = body.get("top_k", len(docs))
        # Shorter documents rank higher: a deterministic stand-in for the model's scores.
        order = sorted(range(len(docs)), key=lambda i: len(docs[i]))[:top_k]
        data = [
            {"index": i, "score": 1.0 / (1 + len(docs[i])), "input": docs[i] if returned else None, "object": "rank_result"}
            for i in order
        ]
        tokens = sum(len(d.split()) for d in docs) + len(body["query"].split())
        return Reply(json={
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
            "model": body["model"],
            "data": data,
            "object": "list",
            "top_k": top_k,
            "return_input": returned,
        })
