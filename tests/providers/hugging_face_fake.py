"""A Hugging Face Inference Endpoint: feature extraction at ``/embed``, ELSER at ``/elser``,
text-embeddings-inference rerank at ``/rerank`` and an OpenAI-compatible chat route."""

from __future__ import annotations

from .harness import Call, Reply
from .openai_fake import FakeOpenAi, fake_vector


class FakeHuggingFace(FakeOpenAi):
    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"error": message})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path in ("/embed", "/elser"):
            if set(body) != {"inputs"} or not all(isinstance(t, str) for t in body["inputs"]):
                return "expected exactly {'inputs': [str]}"
            return None
        if call.path == "/rerank":
            if not isinstance(body.get("query"), str) or not isinstance(body.get("texts"), list):
                return "expected query and texts"
            return None if set(body) <= {"query", "texts", "return_text", "top_n"} else "unexpected field"
        if call.path == "/v1/chat/completions" and "max_completion_tokens" in body:
            return "text-generation-inference takes max_tokens"
        return super().validate(call)

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path == "/embed":
            return Reply(json=[fake_vector(t, 3) for t in body["inputs"]])
        if call.path == "/elser":
            return Reply(json=[{"hello": 1.5, t.split()[0]: 0.25} for t in body["inputs"]])
        if call.path == "/rerank":
            ranked = [
                {"index": i, "score": 1.0 / (1 + len(t))} | ({"text": t} if body.get("return_text") else {})
                for i, t in enumerate(body["texts"])
            ]
            return Reply(json=sorted(ranked, key=lambda r: -r["score"]))
        return super().answer(call)
