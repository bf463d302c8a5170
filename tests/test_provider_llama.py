"""The ``llama`` service against a loopback Llama Stack server: Hugging Face-shaped embeddings
and OpenAI-shaped chat completions."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, Call, ProviderSuite, Reply, make_endpoint
from providers.openai_fake import FakeOpenAi, fake_vector

from sidecar.errors import EsError
from sidecar.protocol.registry import ServiceContext
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.llama import LlamaService

EMBEDDINGS = "/v1/inference/embeddings"
CHAT = "/v1/openai/v1/chat/completions"


class FakeLlama(FakeOpenAi):
    """Llama Stack: ``{"model_id", "contents"}`` → ``{"embeddings": [...]}``; chat as OpenAI."""

    embeddings_path = EMBEDDINGS
    chat_path = CHAT
    expect_model = "llama3.2:3b"
    require_key = True

    def authorized(self, call: Call) -> bool:
        return not self.require_key or super().authorized(call)

    def validate(self, call: Call) -> str | None:
        if call.path == EMBEDDINGS:
            body = call.json
            if set(body) != {"model_id", "contents"} or not all(isinstance(t, str) for t in body["contents"]):
                return "expected {model_id, contents}"
            return None if body["model_id"] == "all-MiniLM-L6-v2" else "unknown model"
        if call.path == CHAT and "max_completion_tokens" in call.json:
            return "Llama takes max_tokens"
        return super().validate(call)

    def answer(self, call: Call) -> Reply:
        if call.path == EMBEDDINGS:
            return Reply(json={"embeddings": [fake_vector(t, 6) for t in call.json["contents"]]})
        return super().answer(call)


class LlamaSuite(ProviderSuite):
    service_cls = LlamaService
    fake_cls = FakeLlama
    settings = {"api_key": SECRET, "model_id": "llama3.2:3b", "url": "{url}" + CHAT}

    def test_secret_missing(self) -> None:
        # A Llama Stack server may run without authentication: no api_key is no secret.
        parsed = LlamaService(ServiceContext()).parse(
            "x", self.task, {k: v for k, v in self.fixed().items() if k != "api_key"}, {}
        )
        assert parsed.secrets == {}


class TestLlamaEmbeddings(LlamaSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "all-MiniLM-L6-v2", "url": "{url}" + EMBEDDINGS}


class TestLlamaCompletion(LlamaSuite):
    task = TaskType.COMPLETION
    streams = True


class TestLlamaChatCompletion(LlamaSuite):
    task = TaskType.CHAT_COMPLETION
    streams = True


def test_url_is_required_and_defaults_fill_in() -> None:
    service = LlamaService(None)
    with pytest.raises(EsError) as caught:
        service.parse("l", TaskType.TEXT_EMBEDDING, {"model_id": "m"}, {})
    assert "[service_settings] does not contain the required setting [url]" in caught.value.reason
    parsed = service.parse("l", TaskType.TEXT_EMBEDDING, {"model_id": "m", "url": "http://localhost:8321/v1/inference/embeddings"}, {})
    assert parsed.service_settings == {
        "model_id": "m",
        "url": "http://localhost:8321/v1/inference/embeddings",
        "similarity": "cosine",
        "rate_limit": {"requests_per_minute": 3000},
    }


def test_leftover_keys_without_api_key_ask_for_it() -> None:
    with pytest.raises(EsError) as caught:
        LlamaService(None).parse("l", TaskType.COMPLETION, {"model_id": "m", "url": "http://h/x", "bogus": 1}, {})
    assert "[secret_settings] does not contain the required setting [api_key]" in caught.value.reason


async def test_without_a_key_no_authorization_is_sent(aiohttp_server: Any) -> None:
    fake = FakeLlama()
    fake.require_key = False
    await fake.start(aiohttp_server)
    service = LlamaService(None)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"model_id": "all-MiniLM-L6-v2", "url": fake.url + EMBEDDINGS}
    )
    texts = [f"text {i}" for i in range(45)]
    try:
        result = await service.embed(endpoint, texts, InputType.INGEST, {})
        probed = await service.probe_dimensions(endpoint)
    finally:
        await service.close()
    assert fake.problems == [] and all("Authorization" not in c.headers for c in fake.calls)
    assert [len(c.json["contents"]) for c in fake.calls[:3]] == [20, 20, 5]
    assert [list(v) for v in result.vectors] == [fake_vector(t, 6) for t in texts]
    assert probed == (6, "cosine")
