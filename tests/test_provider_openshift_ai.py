"""The ``openshift_ai`` service against a loopback OpenShift AI model server: OpenAI-shaped
embeddings and chat (no ``stream_options``), and a Cohere/Jina-shaped rerank."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, Call, ProviderSuite, Reply, make_endpoint
from providers.openai_fake import FakeOpenAi
from providers.rerankers_fake import FakeEmbedRerank

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.openshift_ai import OpenShiftAiService

RERANK = "/v1/rerank"


class FakeOpenShiftAi(FakeOpenAi):
    stream_usage = False
    results_field = "results"

    def validate(self, call: Call) -> str | None:
        if call.path == RERANK:
            body = call.json
            ok = isinstance(body.get("query"), str) and isinstance(body.get("documents"), list)
            return None if ok else "bad rerank"
        if call.path == self.chat_path and "max_completion_tokens" in call.json:
            return "OpenShift AI is sent max_tokens"
        return super().validate(call)

    def answer(self, call: Call) -> Reply:
        if call.path == RERANK:
            return FakeEmbedRerank.answer(self, call)  # type: ignore[arg-type]
        return super().answer(call)


class OpenShiftSuite(ProviderSuite):
    service_cls = OpenShiftAiService
    fake_cls = FakeOpenShiftAi
    required = ("url", "[service_settings] does not contain the required setting [url]")


class TestOpenShiftEmbeddings(OpenShiftSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "url": "{url}/v1/embeddings", "model_id": "granite-embedding"}


class TestOpenShiftRerank(OpenShiftSuite):
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "url": "{url}" + RERANK}
    task_settings = {"top_n": 2, "return_documents": True}


class TestOpenShiftCompletion(OpenShiftSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "url": "{url}/v1/chat/completions", "model_id": "granite"}
    streams = True


class TestOpenShiftChatCompletion(OpenShiftSuite):
    task = TaskType.CHAT_COMPLETION
    settings = {"api_key": SECRET, "url": "{url}/v1/chat/completions"}
    streams = True


def test_defaults() -> None:
    parsed = OpenShiftAiService(None).parse(
        "os", TaskType.TEXT_EMBEDDING, {"api_key": "k", "url": "https://m.apps.example.com/v1/embeddings"}, {}
    )
    assert parsed.service_settings == {
        "url": "https://m.apps.example.com/v1/embeddings",
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 3000},
    }


def test_dimensions_set_by_user_is_not_a_request_setting() -> None:
    with pytest.raises(EsError) as caught:
        OpenShiftAiService(None).parse(
            "os", TaskType.TEXT_EMBEDDING, {"api_key": "k", "url": "https://h/v1/embeddings", "dimensions_set_by_user": True}, {}
        )
    assert "[service_settings] does not allow the setting [dimensions_set_by_user]" in caught.value.reason


async def test_bodies_sent(aiohttp_server: Any) -> None:
    fake = FakeOpenShiftAi()
    await fake.start(aiohttp_server)
    service = OpenShiftAiService(None)
    embed = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "url": fake.url + "/v1/embeddings", "dimensions": 3}
    )
    rerank = make_endpoint(
        service, TaskType.RERANK, {"api_key": SECRET, "url": fake.url + RERANK, "model_id": "bge-reranker"}, {"top_n": 1}
    )
    try:
        vectors = await service.embed(embed, ["a"], InputType.INGEST, {})
        docs = await service.rerank(rerank, "q", ["long doc", "b"], {"return_documents": True})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"input": ["a"], "dimensions": 3} and len(vectors.vectors[0]) == 3
    assert fake.calls[1].json == {
        "model": "bge-reranker", "query": "q", "documents": ["long doc", "b"], "top_n": 1, "return_documents": True
    }
    assert [(d.index, d.text) for d in docs] == [(1, "b")]
