"""The ``googleaistudio`` service against a loopback Gemini API."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import (
    SECRET,
    Call,
    FakeProvider,
    ProviderSuite,
    Reply,
    make_endpoint,
    make_service,
    sse,
)
from providers.openai_fake import fake_vector

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.googleaistudio import GoogleAiStudioService


class FakeGemini(FakeProvider):
    """``/v1/models/{model}:{method}?key=…`` — Google AI Studio and, with a different path and
    bearer auth, Vertex AI's Gemini."""

    def authorized(self, call: Call) -> bool:
        return call.query.get("key") == self.key

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"error": {"code": status, "message": message, "status": "ERROR"}})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path.endswith(":batchEmbedContents"):
            model = call.path.split("/")[-1].split(":")[0]
            for item in body["requests"]:
                if item["model"] != f"models/{model}" or not item["content"]["parts"][0]["text"]:
                    return "bad embed request"
                if item.get("taskType", "RETRIEVAL_DOCUMENT") not in ("RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "CLASSIFICATION", "CLUSTERING"):
                    return "bad taskType"
            return None
        if call.path.endswith(("generateContent", "streamGenerateContent")):
            if body.get("generationConfig") != {"candidateCount": 1} or body["contents"][0]["role"] != "user":
                return "bad generateContent request"
            if call.path.endswith("streamGenerateContent") and call.query.get("alt") != "sse":
                return "streaming needs alt=sse"
            return None
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        if call.path.endswith(":batchEmbedContents"):
            items = call.json["requests"]
            dims = items[0].get("outputDimensionality", 4)
            return Reply(json={"embeddings": [{"values": fake_vector(i["content"]["parts"][0]["text"], dims)} for i in items]})
        if call.path.endswith("streamGenerateContent"):
            return self.stream_reply(["Hello", " world"])
        return Reply(json={"candidates": [{"content": {"parts": [{"text": "Hello world"}], "role": "model"}}]})

    def stream_reply(self, parts: list[str]) -> Reply:
        events = [{"candidates": [{"content": {"parts": [{"text": p}], "role": "model"}, "index": 0}]} for p in parts]
        events.append({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP"}]})
        return Reply(chunks=sse(*events), content_type="text/event-stream")


class GeminiSuite(ProviderSuite):
    service_cls = GoogleAiStudioService
    fake_cls = FakeGemini


class TestGoogleAiStudioEmbeddings(GeminiSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "text-embedding-004"}


class TestGoogleAiStudioCompletion(GeminiSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "model_id": "gemini-1.5-flash"}
    streams = True


async def test_embedding_request_and_key_never_in_errors(aiohttp_server: Any) -> None:
    fake = FakeGemini()
    await fake.start(aiohttp_server)
    fake.queue(fake.error(404, "model not found"))
    service = make_service(GoogleAiStudioService, fake)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "text-embedding-004", "dimensions": 3}
    )
    try:
        with pytest.raises(EsError) as caught:
            await service.embed(endpoint, ["a"], None, {})
        result = await service.embed(endpoint, ["a", "b"], InputType.SEARCH, {})
    finally:
        await service.close()
    message = caught.value.reason
    assert SECRET not in message and message.startswith(f"Resource not found at [{fake.url}/v1/models/")
    assert fake.calls[1].json["requests"][0] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 3,
        "taskType": "RETRIEVAL_QUERY",
    }
    assert [len(v) for v in result.vectors] == [3, 3]


def test_settings_shown() -> None:
    parsed = GoogleAiStudioService(None).parse(
        "g", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "text-embedding-004"}, {}
    )
    assert parsed.service_settings == {
        "model_id": "text-embedding-004",
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 360},
    }
