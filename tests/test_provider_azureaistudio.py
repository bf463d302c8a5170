"""The ``azureaistudio`` service against a loopback Azure AI Studio deployment."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, Call, ProviderSuite, Reply, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.errors import EsError
from sidecar.protocol.service import TaskType
from sidecar.services.azureaistudio import AzureAiStudioService


class FakeAiStudio(FakeOpenAi):
    """Pay-as-you-go (``token``) deployments: ``Authorization: <key>`` for non-OpenAI models;
    ``/score`` is a realtime deployment with a bearer token."""

    def authorized(self, call: Call) -> bool:
        if call.path == "/score":
            return call.headers.get("Authorization") == f"Bearer {self.key}"
        return call.headers.get("Authorization") == self.key

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path == "/v1/embeddings":
            return None if isinstance(body.get("input"), list) and "model" not in body else "bad embeddings"
        if call.path == "/v1/chat/completions":
            if set(body) - {"messages", "parameters", "stream"}:
                return f"unexpected fields {sorted(body)}"
            return None if body["messages"][0]["role"] == "user" else "bad messages"
        if call.path == "/v1/rerank":
            if set(body) - {"documents", "query", "return_documents", "top_n"} or "model" in body:
                return f"unexpected fields {sorted(body)}"
            return None if isinstance(body["query"], str) and isinstance(body["documents"], list) else "bad rerank"
        if call.path == "/score":
            if set(body) - {"input_data", "stream"} or body.get("stream", True) is not True:
                return f"unexpected fields {sorted(body)}"
            return None if body["input_data"]["input_string"][0]["role"] == "user" else "bad realtime body"
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        if call.path == "/v1/rerank":  # Cohere's rerank answer
            body = call.json
            words = set(body["query"].split())
            scored = sorted(
                ((len(words & set(d.split())) / (1 + len(d)), i) for i, d in enumerate(body["documents"])), reverse=True
            )[: body.get("top_n") or None]
            results = [
                {"index": i, "relevance_score": score,
                 **({"document": {"text": body["documents"][i]}} if body.get("return_documents") else {})}
                for score, i in scored
            ]
            return Reply(json={"id": "r-1", "results": results, "meta": {"billed_units": {"search_units": 1}}})
        if call.path == "/score":
            if call.json.get("stream"):
                return self.stream_reply(["Hello", " world"])
            return Reply(json={"output": "Hello world"})
        return super().answer(call)


class AiStudioSuite(ProviderSuite):
    service_cls = AzureAiStudioService
    fake_cls = FakeAiStudio
    required = ("target", "[service_settings] does not contain the required setting [target]")


class TestAiStudioEmbeddings(AiStudioSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "target": "{url}", "provider": "cohere", "endpoint_type": "token"}
    task_settings = {"user": "u"}


class TestAiStudioRerank(AiStudioSuite):
    """Elasticsearch 9.2+: Cohere rerank deployments (token endpoints)."""

    task = TaskType.RERANK
    settings = {"api_key": SECRET, "target": "{url}", "provider": "cohere", "endpoint_type": "token"}
    task_settings = {"return_documents": True}


async def test_rerank_body_top_n_and_documents(aiohttp_server: Any) -> None:
    fake = FakeAiStudio()
    await fake.start(aiohttp_server)
    service = make_service(AzureAiStudioService, fake)
    endpoint = make_endpoint(service, TaskType.RERANK, {**TestAiStudioRerank.settings, "target": fake.url},
                             {"top_n": 5})
    docs = ["the cat sat", "a dog ran", "cat and dog play"]
    try:
        ranked = await service.rerank(endpoint, "cat dog", docs, {"return_documents": True, "top_n": 2})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"documents": docs, "query": "cat dog", "return_documents": True, "top_n": 2}
    assert fake.calls[0].headers["Authorization"] == SECRET
    assert [d.index for d in ranked] == [2, 1] and ranked[0].text == "cat and dog play"
    assert ranked[0].relevance_score > ranked[1].relevance_score


@pytest.mark.parametrize(("provider", "endpoint_type", "message"), [
    ("openai", "token", "The [rerank] task type for provider [openai] is not available"),
    ("cohere", "realtime", "The [realtime] endpoint type with [rerank] task type for provider [cohere] is not available"),
])
def test_rerank_needs_a_cohere_token_deployment(provider: str, endpoint_type: str, message: str) -> None:
    with pytest.raises(EsError) as caught:
        AzureAiStudioService(None).parse("x", TaskType.RERANK, {
            "api_key": "k", "target": "http://x", "provider": provider, "endpoint_type": endpoint_type}, {})
    assert message in caught.value.reason


class TestAiStudioCompletion(AiStudioSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "target": "{url}", "provider": "mistral", "endpoint_type": "token"}
    task_settings = {"max_new_tokens": 32, "temperature": 0.3}
    streams = True


class TestAiStudioRealtimeCompletion(AiStudioSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "target": "{url}/score", "provider": "databricks", "endpoint_type": "realtime"}
    streams = True


async def _realtime(aiohttp_server: Any, task_settings: dict[str, Any]) -> tuple[FakeAiStudio, Any, Any]:
    fake = FakeAiStudio()
    await fake.start(aiohttp_server)
    service = make_service(AzureAiStudioService, fake)
    settings = {"api_key": SECRET, "target": f"{fake.url}/score", "provider": "meta", "endpoint_type": "realtime"}
    return fake, service, make_endpoint(service, TaskType.COMPLETION, settings, task_settings)


async def test_completion_parameters(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _realtime(aiohttp_server, {"do_sample": True, "max_new_tokens": 8})
    try:
        assert (await service.complete(endpoint, ["hi"], {"top_p": 0.5}))[0].result == "Hello world"
    finally:
        await service.close()
    assert fake.calls[0].json == {
        "input_data": {
            "input_string": [{"content": "hi", "role": "user"}],
            "parameters": {"top_p": 0.5, "do_sample": True, "max_new_tokens": 8},
        }
    }


async def test_realtime_stream_body(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _realtime(aiohttp_server, {"max_new_tokens": 8})
    try:
        events = [e async for e in service.stream(endpoint, {"input": ["hi", "there"]})]
    finally:
        await service.close()
    assert "".join(d["delta"] for e in events for d in e["completion"]) == "Hello world"
    assert fake.problems == []
    assert fake.calls[0].json == {
        "input_data": {
            "input_string": [{"content": "hi", "role": "user"}, {"content": "there", "role": "user"}],
            "parameters": {"max_new_tokens": 8},
        },
        "stream": True,
    }


@pytest.mark.parametrize(
    ("task", "settings", "message"),
    [
        (TaskType.TEXT_EMBEDDING, {"provider": "mistral", "endpoint_type": "token"}, "The [text_embedding] task type for provider [mistral] is not available"),
        (TaskType.COMPLETION, {"provider": "openai", "endpoint_type": "realtime"}, "The [realtime] endpoint type with [completion] task type for provider [openai] is not available"),
    ],
)
def test_provider_capabilities(task: TaskType, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(EsError) as caught:
        AzureAiStudioService(None).parse("x", task, {"api_key": "k", "target": "https://t", **settings}, {})
    assert message in caught.value.reason


def test_temperature_bounds() -> None:
    with pytest.raises(EsError) as caught:
        AzureAiStudioService(None).parse(
            "x",
            TaskType.COMPLETION,
            {"api_key": "k", "target": "https://t", "provider": "mistral", "endpoint_type": "token"},
            {"temperature": 3.0},
        )
    assert "[task_settings] Invalid value [3.0]. [temperature] must be a less than or equal to [2.0]" in caught.value.reason
