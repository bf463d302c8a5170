"""The ``mistral`` service against a loopback Mistral API (OpenAI-shaped)."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, ProviderSuite, Reply, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.errors import EsError
from sidecar.protocol.service import TaskType
from sidecar.services.mistral import MistralService


class FakeMistral(FakeOpenAi):
    expect_model = "mistral-embed"

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"object": "error", "message": message, "type": "invalid_request_error"})

    def validate(self, call: Any) -> str | None:
        if call.path == self.embeddings_path and call.json.get("encoding_format") != "float":
            return "encoding_format must be float"
        if call.path == self.chat_path and "max_completion_tokens" in call.json:
            return "Mistral takes max_tokens"
        return super().validate(call)


class MistralSuite(ProviderSuite):
    service_cls = MistralService
    fake_cls = FakeMistral
    settings = {"api_key": SECRET, "model": "mistral-embed"}
    required = ("model", "[service_settings] does not contain the required setting [model]")


class TestMistralEmbeddings(MistralSuite):
    task = TaskType.TEXT_EMBEDDING


class TestMistralCompletion(MistralSuite):
    task = TaskType.COMPLETION
    streams = True


class TestMistralChatCompletion(MistralSuite):
    task = TaskType.CHAT_COMPLETION
    streams = True


def test_docs_example_parses_verbatim() -> None:
    parsed = MistralService(None).parse(
        "mistral-embeddings-test",
        TaskType.TEXT_EMBEDDING,
        {"api_key": "<api_key>", "model": "mistral-embed"},
        {},
    )
    assert parsed.service_settings == {
        "model": "mistral-embed",
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 240},
    }


async def test_422_reads_as_input_validation_error(aiohttp_server: Any) -> None:
    fake = FakeMistral()
    await fake.start(aiohttp_server)
    fake.queue(fake.error(422, "bad input"))
    service = make_service(MistralService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model": "mistral-embed"})
    try:
        with pytest.raises(EsError) as caught:
            await service.embed(endpoint, ["a"], None, {})
    finally:
        await service.close()
    assert caught.value.status == 422
    assert caught.value.reason.startswith("Received an input validation error response for request from inference entity id")
