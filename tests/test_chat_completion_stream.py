"""``chat_completion`` through the sidecar's HTTP API for the services that gained it in
Elasticsearch 9.2 (Anthropic, Azure OpenAI, Amazon Bedrock): created and streamed as
Elasticsearch's server-sent ``chat.completion.chunk`` events on a 9.x node, refused as the node
refuses them on 8.19. Each provider is a loopback server speaking its own streaming format."""

from __future__ import annotations

import json
import uuid

import aiohttp
import http_util as http
import pytest
from providers.anthropic_fake import FakeAnthropic
from providers.azure_fake import FakeAzureOpenAi
from providers.bedrock_fake import ACCESS_KEY, REGION, FakeBedrock
from providers.harness import SECRET

from sidecar.testing.process import SidecarProcess

pytestmark = pytest.mark.es

ENDPOINTS = {
    "anthropic": {"service_settings": {"api_key": SECRET, "model_id": "claude-3-5-haiku-latest"},
                  "task_settings": {"max_tokens": 64}},
    "azureopenai": {"service_settings": {"api_key": SECRET, "resource_name": "res", "deployment_id": "my-deployment",
                                         "api_version": "2024-02-01"}},
    "amazonbedrock": {"service_settings": {"access_key": ACCESS_KEY, "secret_key": SECRET, "region": REGION,
                                           "provider": "anthropic", "model": "anthropic.claude-3-haiku-20240307-v1:0"}},
}


def events_of(raw: str) -> list[tuple[str, str]]:
    out = []
    for block in raw.split("\n\n"):
        if block.strip():
            head, _, data = block.lstrip("\ufeff").partition("\ndata: ")
            out.append((head.removeprefix("event: "), data))
    return out


async def test_chat_completion_streams_where_the_node_has_it(es_url, sidecar_env, tmp_path, aiohttp_server):
    fakes = {"anthropic": FakeAnthropic(), "azureopenai": FakeAzureOpenAi(), "amazonbedrock": FakeBedrock()}
    env = dict(sidecar_env)
    for name, fake in fakes.items():
        env[f"SIDECAR_PROVIDER_URL_{name.upper()}"] = await fake.start(aiohttp_server)
    proc = SidecarProcess(es_url, env, tmp_path / "chat.log").start()
    nine = http.node_version(es_url) >= (9, 2)
    try:
        async with aiohttp.ClientSession() as session:
            for name, fake in fakes.items():
                inference_id = f"chat-{name}-{uuid.uuid4().hex[:6]}"
                async with session.put(f"{proc.url}/_inference/chat_completion/{inference_id}",
                                       json={"service": name, **ENDPOINTS[name]}) as resp:
                    created = await resp.json()
                if not nine:
                    assert resp.status == 400, created
                    assert created["error"]["reason"] == f"The [{name}] service does not support task type [chat_completion]"
                    continue
                assert resp.status == 200, created
                assert SECRET not in json.dumps(created)
                body = {"messages": [{"role": "user", "content": "Say hello"}], "max_completion_tokens": 16}
                async with session.post(f"{proc.url}/_inference/chat_completion/{inference_id}/_stream",
                                        json=body) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/event-stream")
                    raw = (await resp.read()).decode("utf-8")
                events = events_of(raw)
                assert all(kind == "message" for kind, _ in events), raw
                assert events[-1][1] == "[DONE]"
                chunks = [json.loads(data) for _, data in events[:-1]]
                text = "".join(c["delta"].get("content", "") for chunk in chunks for c in chunk["choices"])
                assert text == "Hello world", (name, chunks)
                assert fake.problems == [], (name, fake.problems)
                # chat_completion endpoints only stream, as in Elasticsearch.
                async with session.post(f"{proc.url}/_inference/chat_completion/{inference_id}",
                                        json={"input": "x"}) as resp:
                    err = await resp.json()
                assert resp.status == 400 and "can only be used with the" in err["error"]["reason"]
                await session.delete(f"{proc.url}/_inference/{inference_id}")
    finally:
        proc.stop()
