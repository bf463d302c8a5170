"""The ``jinaai`` service against a loopback Jina AI API."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, ProviderSuite, make_endpoint, make_service
from providers.rerankers_fake import FakeJina

from sidecar.protocol.service import InputType, TaskType
from sidecar.services.jinaai import JinaAiService


class JinaSuite(ProviderSuite):
    service_cls = JinaAiService
    fake_cls = FakeJina


class TestJinaEmbeddings(JinaSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "jina-embeddings-v3"}
    task_settings = {"input_type": "ingest"}


class TestJinaRerank(JinaSuite):
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "model_id": "jina-reranker-v2-base-multilingual"}
    task_settings = {"top_n": 2, "return_documents": True}


async def test_requests_and_bit_embeddings(aiohttp_server: Any) -> None:
    fake = FakeJina()
    await fake.start(aiohttp_server)
    service = make_service(JinaAiService, fake)
    bits = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m", "embedding_type": "binary"}
    )
    rerank = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "model_id": "r"}, {"top_n": 1})
    try:
        result = await service.embed(bits, ["a"], InputType.SEARCH, {})
        probed = await service.probe_dimensions(bits)
        docs = await service.rerank(rerank, "q", ["long doc", "b"], {"return_documents": True})
    finally:
        await service.close()
    assert bits.service_settings["embedding_type"] == "bit"
    assert fake.calls[0].json == {"input": ["a"], "model": "m", "embedding_type": "binary", "task": "retrieval.query"}
    assert result.element_type == "bit" and probed == (16, "dot_product")
    assert fake.calls[2].json == {"model": "r", "query": "q", "documents": ["long doc", "b"], "top_n": 1, "return_documents": True}
    assert [(d.index, d.text) for d in docs] == [(1, "b")]
