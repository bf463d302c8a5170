"""The ``azureopenai`` service against a loopback Azure OpenAI."""

from __future__ import annotations

from typing import Any

import pytest
from providers.azure_fake import FakeAzureOpenAi
from providers.harness import SECRET, ProviderSuite, make_endpoint, make_service

from sidecar.errors import EsError
from sidecar.protocol.service import TaskType
from sidecar.services.azureopenai import AzureOpenAiService

BASE = {"resource_name": "res", "deployment_id": "my-deployment", "api_version": "2024-02-01"}


class AzureSuite(ProviderSuite):
    service_cls = AzureOpenAiService
    fake_cls = FakeAzureOpenAi
    settings = {"api_key": SECRET, **BASE}
    required = ("resource_name", "[service_settings] does not contain the required setting [resource_name]")
    secret_keys = ("api_key", "entra_id")


class TestAzureEmbeddings(AzureSuite):
    task = TaskType.TEXT_EMBEDDING


class TestAzureCompletion(AzureSuite):
    task = TaskType.COMPLETION
    task_settings = {"user": "someone"}
    streams = True


class TestAzureChatCompletion(AzureSuite):
    """Elasticsearch 9.2+: the unified chat completion stream (no ``model``: the deployment
    names it)."""

    task = TaskType.CHAT_COMPLETION
    streams = True


async def test_chat_completion_request_carries_tools_and_content_parts(aiohttp_server: Any) -> None:
    fake = FakeAzureOpenAi()
    await fake.start(aiohttp_server)
    service = make_service(AzureOpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, **BASE})
    request = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "stop": ["\n\n"],
        "temperature": 0.2,
        "max_completion_tokens": 32,
        "model": "ignored-for-azure",
    }
    try:
        events = [event async for event in service.stream(endpoint, request)]
    finally:
        await service.close()
    assert fake.problems == []
    sent = fake.calls[0].json
    assert sent["messages"] == request["messages"] and sent["tools"] == request["tools"]
    assert sent["tool_choice"] == "auto" and sent["stop"] == ["\n\n"] and sent["max_completion_tokens"] == 32
    assert "model" not in sent and sent["stream"] is True and sent["n"] == 1
    assert fake.calls[0].headers["api-key"] == SECRET
    assert events[0]["object"] == "chat.completion.chunk"
    assert events[-1]["usage"] == {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5}


def test_docs_examples_parse_verbatim() -> None:
    service = AzureOpenAiService(None)
    parsed = service.parse(
        "azure_openai_embeddings",
        TaskType.TEXT_EMBEDDING,
        {
            "api_key": "<api_key>",
            "resource_name": "<resource_name>",
            "deployment_id": "<deployment_id>",
            "api_version": "2024-02-01",
        },
        {},
    )
    assert parsed.service_settings == {
        "resource_name": "<resource_name>",
        "deployment_id": "<deployment_id>",
        "api_version": "2024-02-01",
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 1440},
    }
    assert parsed.secrets == {"api_key": "<api_key>"}
    completion = service.parse(
        "azure_openai_completion",
        TaskType.COMPLETION,
        {
            "api_key": "<api_key>",
            "resource_name": "<resource_name>",
            "deployment_id": "<deployment_id>",
            "api_version": "2024-02-01",
        },
        {},
    )
    assert completion.service_settings["rate_limit"] == {"requests_per_minute": 120}


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({}, "[secret_settings] must have either the [api_key] or the [entra_id] key set"),
        ({"api_key": "a", "entra_id": "b"}, "[secret_settings] must have only one of the [api_key] or the [entra_id] key set"),
    ],
)
def test_api_key_xor_entra_id(secrets: dict[str, Any], message: str) -> None:
    with pytest.raises(EsError) as caught:
        AzureOpenAiService(None).parse("x", TaskType.COMPLETION, {**BASE, **secrets}, {})
    assert caught.value.reason == f"Validation Failed: 1: {message};"


async def test_entra_id_bearer_and_dimensions(aiohttp_server: Any) -> None:
    fake = FakeAzureOpenAi()
    fake.entra = True
    await fake.start(aiohttp_server)
    service = make_service(AzureOpenAiService, fake)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {**BASE, "entra_id": SECRET, "dimensions": 2}, {"user": "u"}
    )
    try:
        result = await service.embed(endpoint, ["a"], None, {})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"input": ["a"], "user": "u", "dimensions": 2}
    assert len(result.vectors[0]) == 2
    assert endpoint.secrets == {"entra_id": SECRET}
