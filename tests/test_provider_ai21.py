"""The ``ai21`` service against a loopback AI21 Studio API (OpenAI-shaped chat completions)."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, Call, ProviderSuite, collect, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.protocol.service import TaskType
from sidecar.services.ai21 import Ai21Service


class FakeAi21(FakeOpenAi):
    chat_path = "/studio/v1/chat/completions"
    expect_model = "jamba-large"

    def validate(self, call: Call) -> str | None:
        if "max_completion_tokens" in call.json:
            return "AI21 takes max_tokens"
        return super().validate(call)


class Ai21Suite(ProviderSuite):
    service_cls = Ai21Service
    fake_cls = FakeAi21
    settings = {"api_key": SECRET, "model_id": "jamba-large"}
    streams = True


class TestAi21Completion(Ai21Suite):
    task = TaskType.COMPLETION


class TestAi21ChatCompletion(Ai21Suite):
    task = TaskType.CHAT_COMPLETION


def test_defaults() -> None:
    parsed = Ai21Service(None).parse("a", TaskType.COMPLETION, {"api_key": "k", "model_id": "jamba-mini"}, {})
    assert parsed.service_settings == {"model_id": "jamba-mini", "rate_limit": {"requests_per_minute": 200}}
    assert parsed.secrets == {"api_key": "k"}


async def test_chat_request_body(aiohttp_server: Any) -> None:
    fake = FakeAi21()
    await fake.start(aiohttp_server)
    service = make_service(Ai21Service, fake)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, "model_id": "jamba-large"})
    request = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_completion_tokens": 7,
        "stop": ["\n"],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }
    try:
        events = await collect(service.stream(endpoint, request))
    finally:
        await service.close()
    assert fake.problems == [] and events[-1]["usage"] == {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5}
    body = fake.calls[0].json
    assert body["max_tokens"] == 7 and body["stop"] == ["\n"] and body["tools"][0]["function"]["name"] == "f"
    assert body["stream"] is True and body["n"] == 1
