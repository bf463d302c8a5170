"""The ``groq`` service against a loopback Groq API (OpenAI-compatible, under ``/openai/v1``)."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, ProviderSuite, collect, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.errors import EsError
from sidecar.protocol.registry import ServiceContext
from sidecar.protocol.service import TaskType
from sidecar.services.groq import GroqService


class FakeGroq(FakeOpenAi):
    chat_path = "/openai/v1/chat/completions"
    expect_model = "llama-3.3-70b-versatile"

    def validate(self, call: Any) -> str | None:
        if "max_tokens" in call.json:
            return "Groq is sent max_completion_tokens"
        return super().validate(call)


class TestGroqChatCompletion(ProviderSuite):
    service_cls = GroqService
    fake_cls = FakeGroq
    task = TaskType.CHAT_COMPLETION
    settings = {"api_key": SECRET, "model_id": "llama-3.3-70b-versatile"}
    streams = True


def test_defaults_and_docs_example() -> None:
    parsed = GroqService(None).parse(
        "groq-chat", TaskType.CHAT_COMPLETION, {"api_key": "k", "model_id": "llama-3.3-70b-versatile"}, {}
    )
    assert parsed.service_settings == {"model_id": "llama-3.3-70b-versatile", "rate_limit": {"requests_per_minute": 1000}}
    assert parsed.secrets == {"api_key": "k"} and parsed.task_settings == {}


def test_completion_is_not_a_groq_task() -> None:
    with pytest.raises(EsError) as caught:
        GroqService(None).parse("g", TaskType.COMPLETION, {"api_key": "k", "model_id": "m"}, {})
    assert caught.value.reason == "The [groq] service does not support task type [completion]"


def test_header_values_must_be_strings() -> None:
    with pytest.raises(EsError) as caught:
        GroqService(ServiceContext()).parse(
            "g", TaskType.CHAT_COMPLETION, {"api_key": "k", "model_id": "m"}, {"headers": {"key": 1}}
        )
    assert caught.value.status == 400
    assert "Map field [headers] has an entry that is not valid, [key => 1]. Value type of [1] is not one of [String]." in (
        caught.value.reason
    )


async def test_url_organization_user_headers_and_request_model(aiohttp_server: Any) -> None:
    fake = FakeGroq()
    fake.expect_model = "openai/gpt-oss-20b"
    await fake.start(aiohttp_server)
    service = GroqService(None)
    endpoint = make_endpoint(
        service,
        TaskType.CHAT_COMPLETION,
        {"api_key": SECRET, "model_id": "llama", "url": f"{fake.url}/openai/v1/chat/completions", "organization_id": "org-1"},
        {"user": "u-7", "headers": {"X-Trace": "t1"}},
    )
    request = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5}
    try:
        events = await collect(service.stream(endpoint, request))
    finally:
        await service.close()
    assert fake.problems == [] and events
    call = fake.calls[0]
    assert call.headers["Groq-Organization"] == "org-1" and call.headers["X-Trace"] == "t1"
    assert call.json["user"] == "u-7" and call.json["max_completion_tokens"] == 5 and call.json["model"] == "openai/gpt-oss-20b"
    assert endpoint.task_settings == {"user": "u-7", "headers": {"X-Trace": "t1"}}


async def test_rate_limit_is_reported_with_openai_headers(aiohttp_server: Any) -> None:
    fake = FakeGroq()
    await fake.start(aiohttp_server)
    limited = fake.error(429, "slow down")
    limited.headers.update({"x-ratelimit-limit-requests": "30", "x-ratelimit-remaining-requests": "0"})
    fake.queue(*(limited for _ in range(3)))
    service = make_service(GroqService, fake)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, "model_id": "llama-3.3-70b-versatile"})
    try:
        with pytest.raises(EsError) as caught:
            await collect(service.stream(endpoint, {"messages": [{"role": "user", "content": "hi"}]}))
    finally:
        await service.close()
    assert caught.value.status == 429
    assert "Request limit [30], remaining requests [0]" in caught.value.reason and SECRET not in caught.value.reason
