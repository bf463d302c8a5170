"""The ``deepseek`` service against a loopback DeepSeek API (OpenAI-compatible)."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, ProviderSuite, make_endpoint
from providers.openai_fake import FakeOpenAi

from sidecar.protocol.service import TaskType
from sidecar.services.deepseek import DeepSeekService


class FakeDeepSeek(FakeOpenAi):
    chat_path = "/chat/completions"
    expect_model = "deepseek-chat"


class DeepSeekSuite(ProviderSuite):
    service_cls = DeepSeekService
    fake_cls = FakeDeepSeek
    settings = {"api_key": SECRET, "model_id": "deepseek-chat"}
    streams = True


class TestDeepSeekCompletion(DeepSeekSuite):
    task = TaskType.COMPLETION


class TestDeepSeekChatCompletion(DeepSeekSuite):
    task = TaskType.CHAT_COMPLETION


def test_settings_and_no_rate_limit() -> None:
    parsed = DeepSeekService(None).parse(
        "ds", TaskType.CHAT_COMPLETION, {"api_key": "k", "model_id": "deepseek-chat", "url": "https://x/chat"}, {}
    )
    assert parsed.service_settings == {"model_id": "deepseek-chat", "url": "https://x/chat"}


async def test_url_setting_is_used(aiohttp_server: Any) -> None:
    fake = FakeDeepSeek()
    await fake.start(aiohttp_server)
    service = DeepSeekService(None)
    endpoint = make_endpoint(
        service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "deepseek-chat", "url": f"{fake.url}/chat/completions"}
    )
    try:
        result = await service.complete(endpoint, ["hi"], {})
    finally:
        await service.close()
    assert result[0].result == "Hello world"
    assert fake.calls[0].json["model"] == "deepseek-chat" and fake.problems == []
