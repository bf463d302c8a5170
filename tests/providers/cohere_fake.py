"""Cohere's v2 API: ``/v2/embed``, ``/v2/rerank``, ``/v2/chat`` (plain and SSE-streamed)."""

from __future__ import annotations

from typing import Any

from .harness import Call, FakeProvider, Reply, sse
from .openai_fake import fake_vector


class FakeCohere(FakeProvider):
    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"message": message})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.headers.get("Request-Source") != "unspecified:elasticsearch":
            return "missing Request-Source header"
        if not body.get("model"):
            return "model is required"
        if call.path == "/v2/embed":
            if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
                return "invalid input_type"
            if not isinstance(body.get("embedding_types"), list) or len(body["texts"]) > 96:
                return "invalid request: total number of texts must be at most 96"
            if body.get("truncate", "END") not in ("NONE", "START", "END"):
                return "invalid truncate"
            return None
        if call.path == "/v2/rerank":
            return None if isinstance(body.get("query"), str) and isinstance(body.get("documents"), list) else "bad rerank"
        if call.path == "/v2/chat":
            return None if body["messages"][0]["role"] == "user" else "bad chat"
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path == "/v2/embed":
            embeddings: dict[str, Any] = {}
            for kind in body["embedding_types"]:
                if kind == "float":
                    embeddings["float"] = [fake_vector(t) for t in body["texts"]]
                elif kind == "int8":
                    embeddings["int8"] = [[int(v * 100) - 50 for v in fake_vector(t)] for t in body["texts"]]
                else:
                    embeddings["binary"] = [[-12, 77] for _ in body["texts"]]
            return Reply(
                json={"id": "e1", "embeddings": embeddings, "texts": body["texts"], "response_type": "embeddings_by_type"}
            )
        if call.path == "/v2/rerank":
            scores = [1.0 / (1 + len(d)) + (0.5 if d.endswith("b") else 0) for d in body["documents"]]
            order = sorted(range(len(scores)), key=lambda i: -scores[i])[: body.get("top_n")]
            return Reply(json={"id": "r1", "results": [{"index": i, "relevance_score": scores[i]} for i in order]})
        if body.get("stream"):
            return self.stream_reply(["Hello", " world"])
        return Reply(
            json={
                "id": "c1",
                "finish_reason": "COMPLETE",
                "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello world"}]},
            }
        )

    def stream_reply(self, parts: list[str]) -> Reply:
        events: list[Any] = [{"type": "message-start", "id": "c1", "delta": {"message": {"role": "assistant"}}}]
        events += [{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}} for p in parts]
        events += [{"type": "content-end", "index": 0}, {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}]
        chunks = [c for e in events for c in sse(e, event=e["type"])]
        return Reply(chunks=chunks, content_type="text/event-stream")
