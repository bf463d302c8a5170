"""The ``jinaai`` service against a loopback Jina AI API."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, ProviderSuite, make_endpoint, make_service
from providers.rerankers_fake import FakeJina

from sidecar.errors import EsError
from sidecar.protocol.embedding import parse_embedding_request
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.jinaai import JinaAiService


class JinaSuite(ProviderSuite):
    service_cls = JinaAiService
    fake_cls = FakeJina


class TestJinaEmbeddings(JinaSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "jina-embeddings-v3"}
    task_settings = {"input_type": "ingest"}


class TestJinaMultimodalEmbedding(JinaSuite):
    """Elasticsearch 9.4+: the ``embedding`` task (the suite sends texts)."""

    task = TaskType.EMBEDDING
    settings = {"api_key": SECRET, "model_id": "jina-clip-v2"}

    def check_result(self, result: Any) -> None:
        assert len(result.vectors) == 2 and len(result.vectors[0]) == 4


IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


async def test_embedding_sends_texts_images_and_groups(aiohttp_server: Any) -> None:
    fake = FakeJina()
    await fake.start(aiohttp_server)
    service = make_service(JinaAiService, fake)
    multimodal = make_endpoint(service, TaskType.EMBEDDING, {"api_key": SECRET, "model_id": "jina-clip-v2",
                                                              "dimensions": 4})
    text_only = make_endpoint(service, TaskType.EMBEDDING, {"api_key": SECRET, "model_id": "jina-embeddings-v3",
                                                             "multimodal_model": False})
    groups = parse_embedding_request({"input": [
        "a caption",
        {"content": {"type": "image", "value": IMAGE}},
        {"content": [{"type": "text", "value": "a caption"}, {"type": "image", "value": IMAGE}]},
    ]}).groups
    try:
        result = await service.embed_contents(multimodal, groups, InputType.SEARCH, {})
        plain = await service.embed_contents(text_only, groups[:1], None, {})
        with pytest.raises(EsError) as caught:
            await service.embed_contents(text_only, groups[1:2], None, {})
    finally:
        await service.close()
    assert fake.problems == []
    assert multimodal.service_settings["multimodal_model"] is True
    assert fake.calls[0].json == {
        "input": [{"text": "a caption"}, {"image": IMAGE}, {"content": [{"text": "a caption"}, {"image": IMAGE}]}],
        "model": "jina-clip-v2",
        "embedding_type": "float",
        "task": "retrieval.query",
    }
    assert len(result.vectors) == 3 and result.vectors[0] != result.vectors[1]
    assert fake.calls[1].json["input"] == ["a caption"] and len(plain.vectors) == 1
    assert (caught.value.status, caught.value.reason) == (400, "Non-text input provided for text-only model")
    assert len(fake.calls) == 2  # the refused image never left


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
