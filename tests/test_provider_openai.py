"""The ``openai`` service against a loopback OpenAI."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, ProviderSuite, Reply, collect, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.openai import OpenAiService


class OpenAiSuite(ProviderSuite):
    service_cls = OpenAiService
    fake_cls = FakeOpenAi
    settings = {"api_key": SECRET, "model_id": "text-embedding-3-small"}


class TestOpenAiEmbeddings(OpenAiSuite):
    task = TaskType.TEXT_EMBEDDING


class TestOpenAiCompletion(OpenAiSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "model_id": "gpt-4o-mini"}
    task_settings = {"user": "u1"}
    streams = True


class TestOpenAiChatCompletion(OpenAiSuite):
    task = TaskType.CHAT_COMPLETION
    settings = {"api_key": SECRET, "model_id": "gpt-4o-mini"}
    streams = True


def test_docs_example_parses_verbatim() -> None:
    # Elastic's docs: PUT _inference/text_embedding/openai-embeddings
    service = OpenAiService(None)
    parsed = service.parse(
        "openai-embeddings",
        TaskType.TEXT_EMBEDDING,
        {"api_key": "<api_key>", "model_id": "text-embedding-ada-002"},
        {},
    )
    assert parsed.service_settings == {
        "model_id": "text-embedding-ada-002",
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 3000},
    }
    assert parsed.secrets == {"api_key": "<api_key>"}
    assert parsed.task_settings == {}


def test_completion_defaults_and_options() -> None:
    service = OpenAiService(None)
    parsed = service.parse(
        "c",
        TaskType.COMPLETION,
        {
            "api_key": "k",
            "model_id": "gpt-4o",
            "organization_id": "org-1",
            "url": "https://example.com/v1/chat/completions",
            "rate_limit": {"requests_per_minute": 20},
        },
        {"user": "me"},
    )
    assert parsed.service_settings == {
        "model_id": "gpt-4o",
        "url": "https://example.com/v1/chat/completions",
        "organization_id": "org-1",
        "rate_limit": {"requests_per_minute": 20},
    }
    assert parsed.task_settings == {"user": "me"}
    assert OpenAiService(None).parse("c", TaskType.COMPLETION, {"api_key": "k", "model_id": "m"}, {}).service_settings[
        "rate_limit"
    ] == {"requests_per_minute": 500}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dimensions": 0}, "[service_settings] Invalid value [0]. [dimensions] must be a positive integer"),
        ({"dimensions": "x"}, "field [dimensions] is not of the expected type"),
        ({"similarity": "foo"}, "[similarity] must be one of [cosine, dot_product, l2_norm]"),
        ({"rate_limit": {"requests_per_minute": 0}}, "[requests_per_minute] must be a positive long"),
        ({"url": "not a url"}, "[service_settings] Invalid url [not a url] received for field [url]"),
        ({"api_key": ""}, "[secret_settings] Invalid value empty string. [api_key] must be a non-empty string"),
    ],
)
def test_invalid_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(EsError) as caught:
        OpenAiService(None).parse(
            "x", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m", **settings}, {}
        )
    assert caught.value.type == "validation_exception"
    assert message in caught.value.reason


def test_unknown_rate_limit_key() -> None:
    with pytest.raises(EsError) as caught:
        OpenAiService(None).parse(
            "x", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m", "rate_limit": {"rpm": 3}}, {}
        )
    assert caught.value.reason == "Configuration contains settings [{rpm=3}] unknown to the [openai] service"


async def test_embedding_request_carries_user_dimensions_and_org(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(
        service,
        TaskType.TEXT_EMBEDDING,
        {"api_key": SECRET, "model_id": "text-embedding-3-small", "dimensions": 3, "organization_id": "org-7"},
        {"user": "alice"},
    )
    try:
        result = await service.embed(endpoint, ["a", "b"], InputType.SEARCH, {"user": "bob"})
        dims, similarity = await service.probe_dimensions(endpoint)
    finally:
        await service.close()
    call = fake.calls[0]
    assert call.json == {"input": ["a", "b"], "model": "text-embedding-3-small", "user": "bob", "dimensions": 3}
    assert call.headers["OpenAI-Organization"] == "org-7"
    assert [len(v) for v in result.vectors] == [3, 3]
    assert (dims, similarity) == (3, "dot_product")


async def test_dimensions_only_sent_when_set_by_user(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "ada"})
    endpoint.service_settings["dimensions"] = 4  # what the endpoint layer stores after probing
    try:
        await service.embed(endpoint, ["a"], None, {})
    finally:
        await service.close()
    assert "dimensions" not in fake.calls[0].json


async def test_dimension_mismatch_on_probe(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    fake.queue(Reply(json={"data": [{"index": 0, "embedding": [0.1, 0.2]}]}))
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m", "dimensions": 3})
    try:
        with pytest.raises(EsError) as caught:
            await service.probe_dimensions(endpoint)
    finally:
        await service.close()
    assert caught.value.reason.startswith("The retrieved embeddings size [2] does not match the size specified")


async def test_large_input_lists_are_split_and_kept_in_order(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m"})
    texts = [f"text {i}" for i in range(5000)]
    try:
        result = await service.embed(endpoint, texts, None, {})
    finally:
        await service.close()
    assert sorted(len(c.json["input"]) for c in fake.calls) == [904, 2048, 2048]
    from providers.openai_fake import fake_vector

    assert result.vectors[4321] == fake_vector("text 4321")


async def test_content_too_large_is_retried_with_halved_inputs(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    fake.queue(fake.error(400, "This model's maximum context length is 8192 tokens. Please reduce your prompt; or completion length."))
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m"})
    try:
        result = await service.embed(endpoint, ["abcdefgh", "x"], None, {})
    finally:
        await service.close()
    assert fake.calls[1].json["input"] == ["abcd", "x"]
    assert result.truncated == [True, False]


async def test_chat_request_body_and_chunks(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, "model_id": "gpt-4o-mini"})
    request = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_completion_tokens": 10,
        "stop": ["\n"],
        "temperature": 0.5,
        "top_p": 0.9,
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }
    try:
        events = await collect(service.stream(endpoint, request))
    finally:
        await service.close()
    body = fake.calls[0].json
    assert body == {
        "messages": request["messages"],
        "stop": ["\n"],
        "temperature": 0.5,
        "tool_choice": request["tool_choice"],
        "tools": request["tools"],
        "top_p": 0.9,
        "max_completion_tokens": 10,
        "model": "gpt-4o",
        "n": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert events[0] == {
        "id": "chatcmpl-1",
        "choices": [{"delta": {"content": "Hello", "role": "assistant"}, "index": 0}],
        "model": "gpt-4o-mini",
        "object": "chat.completion.chunk",
    }
    assert events[-1]["choices"] == [] and events[-1]["usage"] == {
        "completion_tokens": 2,
        "prompt_tokens": 3,
        "total_tokens": 5,
    }


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({}, "Required [messages]"),
        ({"messages": [{"content": "x"}]}, "[Message] Required [role]"),
        ({"messages": [{"role": "user"}], "temperature": "hot"}, "[temperature] must be a number"),
        ({"messages": [{"role": "user"}], "bogus": 1}, "unknown field [bogus]"),
        ({"messages": [{"role": "user"}], "tools": [{"type": "function"}]}, "[Tool] Required [function]"),
    ],
)
def test_chat_request_validation(request_body: dict[str, Any], message: str) -> None:
    service = OpenAiService(None)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {"api_key": "k", "model_id": "m"})
    with pytest.raises(EsError) as caught:
        service.stream(endpoint, request_body)
    assert caught.value.status == 400 and message in caught.value.reason


def test_stream_refused_for_embeddings() -> None:
    service = OpenAiService(None)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m"})
    with pytest.raises(EsError) as caught:
        service.stream(endpoint, {"input": "x"})
    assert caught.value.status == 405
    assert caught.value.reason == (
        "Streaming is not allowed for service [openai] and task [text_embedding]. "
        "Supported tasks: [completion,chat_completion]"
    )


async def test_rate_limit_error_reports_openai_headers(aiohttp_server: Any) -> None:
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    limited = [fake.error(429, "slow down") for _ in range(3)]
    for reply in limited:
        reply.headers.update({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"})
    fake.queue(*limited)
    service = make_service(OpenAiService, fake)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "m"})
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert caught.value.status == 429
    assert caught.value.reason == (
        "Received a rate limit status code. Token limit [unknown], remaining tokens [unknown]. "
        "Request limit [60], remaining requests [0] for request from inference entity id [test-id] "
        "status [429]. Error message: [slow down]"
    )
