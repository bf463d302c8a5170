"""The ``cohere`` service against a loopback Cohere (v2 API)."""

from __future__ import annotations

from typing import Any

import pytest
from providers.cohere_fake import FakeCohere
from providers.harness import SECRET, ProviderSuite, make_endpoint, make_service

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.cohere import CohereService


class CohereSuite(ProviderSuite):
    service_cls = CohereService
    fake_cls = FakeCohere
    required = ("model_id", "The [service_settings.model_id] field is required for the Cohere V2 API.")


class TestCohereEmbeddings(CohereSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "embed-english-v3.0"}
    task_settings = {"input_type": "ingest", "truncate": "end"}


class TestCohereRerank(CohereSuite):
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "model_id": "rerank-english-v3.0"}
    task_settings = {"top_n": 2, "return_documents": True}


class TestCohereCompletion(CohereSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "model_id": "command-r"}
    streams = True


def test_docs_byte_embeddings_example() -> None:
    parsed = CohereService(None).parse(
        "cohere-embeddings",
        TaskType.TEXT_EMBEDDING,
        {"api_key": "<api_key>", "model_id": "embed-english-light-v3.0", "embedding_type": "byte"},
        {},
    )
    assert parsed.service_settings == {
        "similarity": "dot_product",
        "model_id": "embed-english-light-v3.0",
        "rate_limit": {"requests_per_minute": 10000},
        "embedding_type": "byte",
    }
    assert parsed.secrets == {"api_key": "<api_key>"}


def test_docs_rerank_example() -> None:
    parsed = CohereService(None).parse(
        "cohere-rerank",
        TaskType.RERANK,
        {"api_key": "<API-KEY>", "model_id": "rerank-english-v3.0"},
        {"top_n": 10, "return_documents": True},
    )
    assert parsed.service_settings == {"model_id": "rerank-english-v3.0", "rate_limit": {"requests_per_minute": 10000}}
    assert parsed.task_settings == {"return_documents": True, "top_n": 10}


@pytest.mark.parametrize(
    ("task_settings", "message"),
    [
        (
            {"input_type": "foo"},
            "[task_settings] Invalid value [foo] received. [input_type] must be one of "
            "[classification, clustering, ingest, search]",
        ),
        ({"truncate": "middle"}, "[truncate] must be one of [end, none, start]"),
    ],
)
def test_invalid_task_settings(task_settings: dict[str, Any], message: str) -> None:
    with pytest.raises(EsError) as caught:
        CohereService(None).parse("x", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m"}, task_settings)
    assert message in caught.value.reason


def test_invalid_embedding_type() -> None:
    with pytest.raises(EsError) as caught:
        CohereService(None).parse(
            "x", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m", "embedding_type": "half"}, {}
        )
    assert "[embedding_type] must be one of [binary, bit, byte, float, int8]" in caught.value.reason


@pytest.mark.parametrize(
    ("embedding_type", "wire", "element_type", "dims"),
    [("int8", "int8", "byte", 4), ("binary", "binary", "bit", 16), ("float", "float", "float", 4)],
)
async def test_embedding_types(aiohttp_server: Any, embedding_type: str, wire: str, element_type: str, dims: int) -> None:
    fake = FakeCohere()
    await fake.start(aiohttp_server)
    service = make_service(CohereService, fake)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m", "embedding_type": embedding_type}
    )
    try:
        result = await service.embed(endpoint, ["a"], InputType.SEARCH, {})
        probed = await service.probe_dimensions(endpoint)
    finally:
        await service.close()
    assert endpoint.service_settings["embedding_type"] == element_type
    assert fake.calls[0].json["embedding_types"] == [wire]
    assert fake.calls[0].json["input_type"] == "search_query"
    assert result.element_type == element_type
    assert probed == (dims, "dot_product")


async def test_request_input_type_wins_and_batches_of_96(aiohttp_server: Any) -> None:
    fake = FakeCohere()
    await fake.start(aiohttp_server)
    service = make_service(CohereService, fake)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m"}, {"input_type": "classification"}
    )
    try:
        await service.embed(endpoint, ["x"] * 200, None, {})
        await service.embed(endpoint, ["x"], InputType.CLUSTERING, {})
    finally:
        await service.close()
    assert fake.problems == []
    assert sorted(len(c.json["texts"]) for c in fake.calls[:3]) == [8, 96, 96]
    assert fake.calls[0].json["input_type"] == "classification"
    assert fake.calls[-1].json["input_type"] == "clustering"


async def test_rerank_request_and_documents(aiohttp_server: Any) -> None:
    fake = FakeCohere()
    await fake.start(aiohttp_server)
    service = make_service(CohereService, fake)
    endpoint = make_endpoint(
        service, TaskType.RERANK, {"api_key": SECRET, "model_id": "rerank-v3.5"}, {"top_n": 2, "return_documents": True}
    )
    try:
        docs = await service.rerank(endpoint, "q", ["aaaa", "b", "cc"], {"top_n": 3})
    finally:
        await service.close()
    assert fake.calls[0].json == {
        "model": "rerank-v3.5",
        "query": "q",
        "documents": ["aaaa", "b", "cc"],
        "return_documents": True,
        "top_n": 3,
    }
    assert [d.index for d in docs] == [1, 2, 0]
    assert [d.text for d in docs] == ["b", "cc", "aaaa"]


async def test_texts_array_too_large(aiohttp_server: Any) -> None:
    fake = FakeCohere()
    await fake.start(aiohttp_server)
    fake.queue(fake.error(400, "invalid request: total number of texts must be at most 96 - received 97"))
    service = make_service(CohereService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "model_id": "m"})
    try:
        with pytest.raises(EsError) as caught:
            await service.embed(endpoint, ["a"], None, {})
    finally:
        await service.close()
    assert caught.value.reason.startswith("Received a texts array too large response for request")
    assert len(fake.calls) == 1
