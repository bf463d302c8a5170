"""The ``nvidia`` service against a loopback NVIDIA API: OpenAI-shaped embeddings (with
``input_type``) and chat (no ``stream_options``), and NVIDIA's ``rankings`` rerank."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, Call, ProviderSuite, Reply, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.nvidia import NvidiaService

RERANK = "/v1/retrieval/nvidia/reranking"


class FakeNvidia(FakeOpenAi):
    stream_usage = False

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path == RERANK:
            if not isinstance(body.get("query"), dict) or not all(isinstance(p.get("text"), str) for p in body["passages"]):
                return "expected {model, query: {text}, passages: [{text}]}"
            return None
        if call.path == self.embeddings_path and body.get("input_type") not in ("passage", "query"):
            return "input_type must be passage or query"
        if call.path == self.embeddings_path and body.get("truncate", "NONE") not in ("NONE", "START", "END"):
            return "truncate must be NONE, START or END"
        if call.path == self.chat_path and "max_completion_tokens" in body:
            return "NVIDIA is sent max_tokens"
        return super().validate(call)

    def answer(self, call: Call) -> Reply:
        if call.path == RERANK:
            passages = call.json["passages"]
            order = sorted(range(len(passages)), key=lambda i: len(passages[i]["text"]))
            return Reply(json={"rankings": [{"index": i, "logit": 5.0 - len(passages[i]["text"])} for i in order]})
        return super().answer(call)


class NvidiaSuite(ProviderSuite):
    service_cls = NvidiaService
    fake_cls = FakeNvidia


class TestNvidiaEmbeddings(NvidiaSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "nvidia/llama-3.2-nv-embedqa-1b-v2"}
    task_settings = {"input_type": "ingest", "truncate": "end"}


class TestNvidiaRerank(NvidiaSuite):
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "model_id": "nvidia/llama-3.2-nv-rerankqa-1b-v2"}


class TestNvidiaCompletion(NvidiaSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "model_id": "meta/llama-3.1-8b-instruct"}
    streams = True


class TestNvidiaChatCompletion(NvidiaSuite):
    task = TaskType.CHAT_COMPLETION
    settings = {"api_key": SECRET, "model_id": "meta/llama-3.1-8b-instruct"}
    streams = True


def test_defaults_and_task_setting_errors() -> None:
    service = NvidiaService(None)
    parsed = service.parse("n", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m"}, {})
    assert parsed.service_settings == {"model_id": "m", "similarity": "dot_product", "rate_limit": {"requests_per_minute": 3000}}
    with pytest.raises(EsError) as caught:
        service.parse("n", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m"}, {"truncate": "middle"})
    assert "[task_settings] Invalid value [middle] received. [truncate] must be one of [end, none, start]" in (
        caught.value.reason
    )


async def test_bodies_and_input_types(aiohttp_server: Any) -> None:
    fake = FakeNvidia()
    await fake.start(aiohttp_server)
    service = make_service(NvidiaService, fake)
    embed = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "e"}, {"truncate": "start"})
    rerank = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "model_id": "r"})
    try:
        await service.embed(embed, ["a"], InputType.SEARCH, {})
        await service.embed(embed, ["b"], None, {"input_type": "search"})
        docs = await service.rerank(rerank, "q", ["long passage", "p"], {})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"input": ["a"], "model": "e", "input_type": "query", "truncate": "START"}
    assert fake.calls[1].json["input_type"] == "query"
    assert fake.calls[2].path == RERANK
    assert fake.calls[2].json == {"model": "r", "query": {"text": "q"}, "passages": [{"text": "long passage"}, {"text": "p"}]}
    assert [(d.index, d.relevance_score, d.text) for d in docs] == [(1, 4.0, None), (0, -7.0, None)]
