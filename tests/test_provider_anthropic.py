"""The ``anthropic`` service against a loopback Anthropic Messages API."""

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

from sidecar.errors import EsError
from sidecar.protocol.service import TaskType
from sidecar.services.anthropic import AnthropicService


class FakeAnthropic(FakeProvider):
    def authorized(self, call: Call) -> bool:
        return call.headers.get("x-api-key") == self.key

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"type": "error", "error": {"type": "api_error", "message": message}})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path != "/v1/messages" or call.headers.get("anthropic-version") != "2023-06-01":
            return "expected /v1/messages with anthropic-version"
        if not isinstance(body.get("max_tokens"), int) or not body.get("model"):
            return "max_tokens and model are required"
        if body["messages"][0]["role"] != "user":
            return "bad messages"
        return None

    def answer(self, call: Call) -> Reply:
        if call.json.get("stream"):
            return self.stream_reply(["Hello", " world"])
        return Reply(
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "Hello world"}],
                "stop_reason": "end_turn",
            }
        )

    def stream_reply(self, parts: list[str]) -> Reply:
        events: list[Any] = [
            {"type": "message_start", "message": {"id": "msg_1", "content": []}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ]
        events += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in parts
        ]
        events += [{"type": "content_block_stop", "index": 0}, {"type": "message_stop"}]
        return Reply(chunks=[c for e in events for c in sse(e, event=e["type"])], content_type="text/event-stream")


class TestAnthropicCompletion(ProviderSuite):
    service_cls = AnthropicService
    fake_cls = FakeAnthropic
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "model_id": "claude-3-5-haiku-latest"}
    task_settings = {"max_tokens": 64, "temperature": 0.2}
    streams = True


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
