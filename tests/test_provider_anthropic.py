"""The ``anthropic`` service against a loopback Anthropic Messages API."""

from __future__ import annotations

from typing import Any

import pytest
from providers.anthropic_fake import FakeAnthropic
from providers.harness import SECRET, ProviderSuite, collect, make_endpoint, make_service

from sidecar.errors import EsError
from sidecar.protocol.service import TaskType
from sidecar.services.anthropic import AnthropicService


class TestAnthropicCompletion(ProviderSuite):
    service_cls = AnthropicService
    fake_cls = FakeAnthropic
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "model_id": "claude-3-5-haiku-latest"}
    task_settings = {"max_tokens": 64, "temperature": 0.2}
    streams = True


class TestAnthropicChatCompletion(TestAnthropicCompletion):
    """Elasticsearch 9.2+: the unified chat stream, translated to and from the Messages API."""

    task = TaskType.CHAT_COMPLETION


def test_max_tokens_required_on_create_but_not_in_override() -> None:
    service = AnthropicService(None)
    with pytest.raises(EsError) as caught:
        service.parse("a", TaskType.COMPLETION, {"api_key": "k", "model_id": "m"}, {})
    assert "[task_settings] does not contain the required setting [max_tokens]" in caught.value.reason
    assert service.parse_task_settings(TaskType.COMPLETION, {"top_k": 3}) == {"top_k": 3}
    assert service.parse_task_settings_override(TaskType.COMPLETION, {"top_k": 3}) == {"top_k": 3}
    parsed = service.parse("a", TaskType.COMPLETION, {"api_key": "k", "model_id": "m"}, {"max_tokens": 1024})
    assert parsed.service_settings == {"model_id": "m", "rate_limit": {"requests_per_minute": 50}}
    assert parsed.task_settings == {"max_tokens": 1024}


async def test_request_body_and_overrides(aiohttp_server: Any) -> None:
    fake = FakeAnthropic()
    await fake.start(aiohttp_server)
    service = make_service(AnthropicService, fake)
    endpoint = make_endpoint(
        service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "claude"}, {"max_tokens": 10, "top_p": 0.5}
    )
    try:
        await service.complete(endpoint, ["hi"], {"temperature": 1.0})
    finally:
        await service.close()
    assert fake.calls[0].json == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "claude",
        "max_tokens": 10,
        "temperature": 1.0,
        "top_p": 0.5,
    }


async def test_overloaded_529_is_retried(aiohttp_server: Any) -> None:
    fake = FakeAnthropic()
    await fake.start(aiohttp_server)
    fake.queue(fake.error(529, "Overloaded"))
    service = make_service(AnthropicService, fake)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "c"}, {"max_tokens": 5})
    try:
        assert (await service.complete(endpoint, ["x"], {}))[0].result == "Hello world"
    finally:
        await service.close()
    assert len(fake.calls) == 2


async def test_chat_completion_translates_request_and_tool_calls(aiohttp_server: Any) -> None:
    fake = FakeAnthropic()
    fake.tool_call = ("get_weather", {"location": "Paris"})
    await fake.start(aiohttp_server)
    service = make_service(AnthropicService, fake)
    endpoint = make_endpoint(
        service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, "model_id": "claude"}, {"max_tokens": 10, "top_k": 4}
    )
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city", "strict": True,
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        }}],
        "tool_choice": "required",
        "stop": ["END"],
        "temperature": 0.1,
        "max_completion_tokens": 99,
    }
    try:
        events = await collect(service.stream(endpoint, request))
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {
        "model": "claude",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}],
        "stop_sequences": ["END"],
        "temperature": 0.1,
        "top_k": 4,
        "tool_choice": {"type": "any"},
        "tools": [{"name": "get_weather", "description": "Weather of a city", "input_schema": {
            "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
        "stream": True,
        "max_tokens": 99,
    }
    first = events[0]
    assert first["id"] == "msg_1" and first["model"] == "claude-3-5-haiku-20241022"
    assert first["choices"][0]["delta"] == {"role": "assistant"}
    assert first["usage"] == {"completion_tokens": 1, "prompt_tokens": 13, "total_tokens": 14}
    calls = [c for e in events for ch in e["choices"] for c in ch["delta"].get("tool_calls", [])]
    assert calls[0]["index"] == 0 and calls[0]["id"] == "toolu_1"
    assert calls[0]["function"] == {"arguments": "", "name": "get_weather"}
    assert "".join(c["function"]["arguments"] for c in calls) == '{"location": "Paris"}'
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1]["usage"] == {"completion_tokens": 7, "prompt_tokens": 0, "total_tokens": 7}


def test_chat_completion_refuses_tool_choice_anthropic_lacks() -> None:
    service = AnthropicService(None)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, "model_id": "c"}, {"max_tokens": 5})
    with pytest.raises(EsError) as caught:
        service.stream(endpoint, {"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"})
    assert caught.value.status == 400
    assert caught.value.reason == "Unsupported tool_choice value [sometimes] for the Anthropic chat completion API."
