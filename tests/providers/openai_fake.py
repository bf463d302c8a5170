"""OpenAI's API (and the OpenAI-compatible APIs that copy it): ``/v1/embeddings`` and
``/v1/chat/completions`` (plain and streamed), bearer auth."""

from __future__ import annotations

import hashlib
from typing import Any

from .harness import Call, FakeProvider, Reply, sse


def fake_vector(text: str, dims: int = 4) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 4) for b in digest[:dims]]


class FakeOpenAi(FakeProvider):
    """Checks ``Authorization: Bearer <key>`` and OpenAI's request bodies."""

    embeddings_path = "/v1/embeddings"
    chat_path = "/v1/chat/completions"
    dims = 4
    expect_model: str | None = None
    # Whether streamed requests must carry stream_options.include_usage (some providers are
    # sent none).
    stream_usage = True

    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.method != "POST" or call.headers.get("Content-Type") != "application/json":
            return "expected a JSON POST"
        if call.path == self.embeddings_path:
            if not isinstance(body.get("input"), list) or not all(isinstance(t, str) for t in body["input"]):
                return "'input' must be a list of strings"
            return self.check_model(body)
        if call.path == self.chat_path:
            messages = body.get("messages")
            if not messages or not all(isinstance(m, dict) and "role" in m for m in messages):
                return "'messages' must be a list of messages"
            if body.get("n") != 1 or not isinstance(body.get("stream"), bool):
                return "'n' must be 1 and 'stream' a boolean"
            if body["stream"] and self.stream_usage and body.get("stream_options") != {"include_usage": True}:
                return "streaming requests must ask for usage"
            if not self.stream_usage and "stream_options" in body:
                return "stream_options is not sent to this provider"
            return self.check_model(body)
        return f"unknown path {call.path}"

    def check_model(self, body: dict[str, Any]) -> str | None:
        if self.expect_model is not None and body.get("model") != self.expect_model:
            return f"expected model {self.expect_model}, got {body.get('model')}"
        return None

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path == self.embeddings_path:
            dims = body.get("dimensions", self.dims)
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(text, dims)}
                for i, text in enumerate(body["input"])
            ]
            return Reply(json={"object": "list", "data": data, "model": body.get("model"), "usage": {}})
        if body.get("stream"):
            return self.stream_reply(["Hello", " world"])
        return Reply(
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}
                ],
            }
        )

    def stream_reply(self, parts: list[str]) -> Reply:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events: list[Any] = [chunk({"role": "assistant", "content": parts[0]})]
        events += [chunk({"content": p}) for p in parts[1:]]
        events.append(chunk({}, "stop"))
        events.append(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini",
                "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )
        return Reply(chunks=sse(*events, done=True), content_type="text/event-stream")
