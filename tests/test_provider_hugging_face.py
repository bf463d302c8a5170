"""The ``hugging_face`` and ``hugging_face_elser`` services against a loopback endpoint."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, ProviderSuite, Reply, make_endpoint, make_service
from providers.hugging_face_fake import FakeHuggingFace

from sidecar.protocol.service import TaskType
from sidecar.services.hugging_face import HuggingFaceService
from sidecar.services.hugging_face_elser import HuggingFaceElserService

URL_REQUIRED = ("url", "[service_settings] does not contain the required setting [url]")


class HuggingFaceSuite(ProviderSuite):
    service_cls = HuggingFaceService
    fake_cls = FakeHuggingFace
    required = URL_REQUIRED


class TestHuggingFaceEmbeddings(HuggingFaceSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "url": "{url}/embed"}


class TestHuggingFaceSparse(HuggingFaceSuite):
    task = TaskType.SPARSE_EMBEDDING
    settings = {"api_key": SECRET, "url": "{url}/elser"}


class TestHuggingFaceRerank(HuggingFaceSuite):
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "url": "{url}/rerank"}
    task_settings = {"return_documents": True, "top_n": 2}


class TestHuggingFaceCompletion(HuggingFaceSuite):
    task = TaskType.COMPLETION
    settings = {"api_key": SECRET, "url": "{url}/v1/chat/completions", "model_id": "tgi"}
    streams = True


class TestHuggingFaceChatCompletion(HuggingFaceSuite):
    task = TaskType.CHAT_COMPLETION
    settings = {"api_key": SECRET, "url": "{url}/v1/chat/completions"}
    streams = True


class TestHuggingFaceElser(ProviderSuite):
    service_cls = HuggingFaceElserService
    fake_cls = FakeHuggingFace
    required = URL_REQUIRED
    task = TaskType.SPARSE_EMBEDDING
    settings = {"api_key": SECRET, "url": "{url}/elser"}


def test_docs_example_parses_verbatim() -> None:
    parsed = HuggingFaceService(None).parse(
        "hugging-face-embeddings",
        TaskType.TEXT_EMBEDDING,
        {"api_key": "<access_token>", "url": "<url_endpoint>".replace("<url_endpoint>", "https://x.endpoints.huggingface.cloud")},
        {},
    )
    assert parsed.service_settings == {
        "url": "https://x.endpoints.huggingface.cloud",
        "similarity": "cosine",
        "rate_limit": {"requests_per_minute": 3000},
    }
    elser = HuggingFaceElserService(None).parse(
        "hf-elser", TaskType.SPARSE_EMBEDDING, {"api_key": "k", "url": "https://e.cloud"}, {}
    )
    assert elser.service_settings == {
        "url": "https://e.cloud",
        "max_input_tokens": 512,
        "rate_limit": {"requests_per_minute": 3000},
    }


async def test_sparse_results_and_truncation(aiohttp_server: Any) -> None:
    fake = FakeHuggingFace()
    await fake.start(aiohttp_server)
    fake.queue(fake.error(413, "Payload Too Large"))
    service = make_service(HuggingFaceElserService, fake)
    endpoint = make_endpoint(service, TaskType.SPARSE_EMBEDDING, {"api_key": SECRET, "url": f"{fake.url}/elser"})
    try:
        result = await service.sparse_embed(endpoint, ["port of call", "sky"], None, {})
    finally:
        await service.close()
    assert fake.calls[1].json == {"inputs": ["port o", "s"]}
    assert [r.tokens for r in result] == [{"hello": 1.5, "port": 0.25}, {"hello": 1.5, "s": 0.25}]
    assert [r.is_truncated for r in result] == [True, True]


async def test_rerank_body_and_top_n(aiohttp_server: Any) -> None:
    fake = FakeHuggingFace()
    await fake.start(aiohttp_server)
    service = make_service(HuggingFaceService, fake)
    endpoint = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "url": f"{fake.url}/rerank"}, {"top_n": 2})
    try:
        docs = await service.rerank(endpoint, "q", ["ccc", "a", "bb"], {"return_documents": True})
    finally:
        await service.close()
    assert fake.calls[0].json == {"texts": ["ccc", "a", "bb"], "query": "q", "return_text": True, "top_n": 2}
    assert [(d.index, d.text) for d in docs] == [(1, "a"), (2, "bb")]


async def test_chat_sends_max_tokens_and_optional_model(aiohttp_server: Any) -> None:
    fake = FakeHuggingFace()
    await fake.start(aiohttp_server)
    service = make_service(HuggingFaceService, fake)
    endpoint = make_endpoint(
        service, TaskType.CHAT_COMPLETION, {"api_key": SECRET, "url": f"{fake.url}/v1/chat/completions"}
    )
    try:
        request = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5, "model": "x"}
        [event async for event in service.stream(endpoint, request)]
    finally:
        await service.close()
    body = fake.calls[0].json
    assert body["max_tokens"] == 5 and "model" not in body and fake.problems == []


async def test_embeddings_object_form(aiohttp_server: Any) -> None:
    fake = FakeHuggingFace()
    await fake.start(aiohttp_server)
    fake.queue(Reply(json={"embeddings": [[0.5, 0.25]]}))
    service = make_service(HuggingFaceService, fake)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {"api_key": SECRET, "url": f"{fake.url}/embed"})
    try:
        assert await service.probe_dimensions(endpoint) == (2, "cosine")
    finally:
        await service.close()
