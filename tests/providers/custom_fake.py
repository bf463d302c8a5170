"""A self-hosted model server of the kinds users reach through the ``custom`` service, on one
loopback port: an Infinity/OpenAI-style embeddings route (``/embeddings``, with an optional
``input_type`` of ``query`` or ``document``), a sparse route shaped like Alibaba's
(``/sparse``), a Cohere v2 reranker (``/v2/rerank``) and an OpenAI chat route
(``/v1/chat/completions``). Bearer auth everywhere."""

from __future__ import annotations

import zlib

from .cohere_fake import FakeCohere
from .harness import Call, FakeProvider, Reply
from .openai_fake import FakeOpenAi, fake_vector


class FakeModelServer(FakeProvider):
    def __init__(self) -> None:
        super().__init__()
        self.cohere = FakeCohere()
        self.openai = FakeOpenAi()

    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.headers.get("Content-Type") != "application/json":
            return "expected application/json"
        if call.path == "/embeddings":
            if not isinstance(body.get("input"), list) or not all(isinstance(t, str) for t in body["input"]):
                return "'input' must be a list of strings"
            if body.get("input_type", "document") not in ("query", "document"):
                return f"unknown input_type {body.get('input_type')!r}"
            return None if body.get("model") else "model is required"
        if call.path == "/sparse":
            return None if isinstance(body.get("texts"), list) else "'texts' must be a list"
        if call.path == "/v2/rerank":
            return self.cohere.validate(call)
        if call.path == "/v1/chat/completions":
            return self.openai.validate(call)
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path == "/embeddings":
            query = body.get("input_type") == "query"
            data = [
                {"object": "embedding", "index": i, "embedding": [(1.0 if query else 0.0), *fake_vector(text, 3)]}
                for i, text in enumerate(body["input"])
            ]
            return Reply(json={"object": "list", "data": data, "model": body["model"], "usage": {}})
        if call.path == "/sparse":
            embeddings = [
                {"embedding": [{"token_id": zlib.crc32(word.encode()) % 30000, "weight": round(1.0 / (1 + i), 3)}
                               for i, word in enumerate(text.split())]}
                for text in body["texts"]
            ]
            return Reply(json={"request_id": "r1", "result": {"sparse_embeddings": embeddings}})
        if call.path == "/v2/rerank":
            return self.cohere.answer(call)
        return self.openai.answer(call)
