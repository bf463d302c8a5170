"""The ``voyageai`` service against a loopback Voyage AI API."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, ProviderSuite, make_endpoint, make_service
from providers.rerankers_fake import FakeVoyage

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.voyageai import VoyageAiService


class VoyageSuite(ProviderSuite):
    service_cls = VoyageAiService
    fake_cls = FakeVoyage


class TestVoyageEmbeddings(VoyageSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "voyage-3"}
    task_settings = {"input_type": "ingest", "truncation": True}


class TestVoyageRerank(VoyageSuite):
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "model_id": "rerank-2"}
    task_settings = {"top_k": 2, "return_documents": True}


async def test_embedding_request_fields(aiohttp_server: Any) -> None:
    fake = FakeVoyage()
    await fake.start(aiohttp_server)
    service = make_service(VoyageAiService, fake)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "voyage-3", "dimensions": 3, "embedding_type": "int8"}
    )
    try:
        result = await service.embed(endpoint, ["a"], InputType.SEARCH, {})
    finally:
        await service.close()
    assert fake.calls[0].json == {
        "input": ["a"],
        "model": "voyage-3",
        "input_type": "query",
        "output_dimension": 3,
        "output_dtype": "int8",
    }
    assert result.element_type == "byte" and endpoint.service_settings["embedding_type"] == "byte"


def test_input_type_values() -> None:
    with pytest.raises(EsError) as caught:
        VoyageAiService(None).parse(
            "v", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m"}, {"input_type": "clustering"}
        )
    assert "[input_type] must be one of [ingest, search]" in caught.value.reason
