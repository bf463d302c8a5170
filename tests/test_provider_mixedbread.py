"""The ``mixedbread`` service against a loopback Mixedbread reranking API: Elasticsearch's body
(``input``, ``top_k``, ``return_input``), its ``data``/``score`` answer, and the statuses its
Mixedbread handler retries and names."""

from __future__ import annotations

from typing import Any

import pytest
from providers.harness import SECRET, ProviderSuite, Reply, assert_no_secret, make_endpoint, make_service
from providers.mixedbread_fake import PATH, FakeMixedbread

from sidecar.errors import EsError
from sidecar.protocol.catalogue import catalogue
from sidecar.protocol.service import TaskType
from sidecar.services.mixedbread import MixedbreadService

MODEL = "mixedbread-ai/mxbai-rerank-xsmall-v1"


class TestMixedbreadRerank(ProviderSuite):
    service_cls = MixedbreadService
    fake_cls = FakeMixedbread
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "model_id": MODEL}
    task_settings = {"top_n": 2, "return_documents": True}


def test_defaults_and_settings_errors() -> None:
    service = MixedbreadService(None)
    parsed = service.parse("m", TaskType.RERANK, {"api_key": "k", "model_id": MODEL}, {})
    assert parsed.service_settings == {"model_id": MODEL, "rate_limit": {"requests_per_minute": 100}}
    assert parsed.task_settings == {} and parsed.secrets == {"api_key": "k"}
    with pytest.raises(EsError) as caught:  # Elasticsearch's Mixedbread endpoints have no url
        service.parse("m", TaskType.RERANK, {"api_key": "k", "model_id": MODEL, "url": "http://x"}, {})
    assert caught.value.reason == "Configuration contains settings [{url=http://x}] unknown to the [mixedbread] service"
    with pytest.raises(EsError) as caught:
        service.parse("m", TaskType.RERANK, {"api_key": "k", "model_id": MODEL}, {"top_n": 0})
    assert "[task_settings] Invalid value [0]. [top_n] must be a positive integer" in caught.value.reason
    with pytest.raises(EsError) as caught:
        service.parse("m", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": MODEL}, {})
    assert caught.value.reason == "The [mixedbread] service does not support task type [text_embedding]"


async def test_body_and_documents(aiohttp_server: Any) -> None:
    fake = FakeMixedbread()
    await fake.start(aiohttp_server)
    service = make_service(MixedbreadService, fake)
    endpoint = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "model_id": MODEL}, {"top_n": 1})
    try:
        docs = await service.rerank(endpoint, "q", ["a long document", "short"], {"return_documents": True})
        plain = await service.rerank(endpoint, "q", ["a long document", "short", "mid size"], {"top_n": 3})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].path == PATH
    assert fake.calls[0].json == {"model": MODEL, "query": "q", "input": ["a long document", "short"], "top_k": 1,
                                  "return_input": True}
    assert [(d.index, d.text) for d in docs] == [(1, "short")]
    assert fake.calls[1].json == {"model": MODEL, "query": "q", "input": ["a long document", "short", "mid size"],
                                  "top_k": 3}
    assert [(d.index, d.text) for d in plain] == [(1, None), (2, None), (0, None)]
    assert plain[0].relevance_score == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    ("status", "prefix", "attempts"),
    [
        (503, "Service temporarily down for maintenance or overloaded. Retry later.", 3),
        (422, "Request format is correct but cannot be processed.", 3),
        (502, "Received an unsuccessful status code", 1),
        (402, "Insufficient balance. Top up your account to continue.", 1),
        (403, "Valid credentials but insufficient permissions for this resource.", 1),
        (400, "Received a bad request status code", 1),
        (307, "Received an unsuccessful status code", 1),
    ],
)
async def test_statuses_as_elasticsearch_reads_them(aiohttp_server: Any, status: int, prefix: str, attempts: int) -> None:
    fake = FakeMixedbread()
    await fake.start(aiohttp_server)
    service = make_service(MixedbreadService, fake)
    endpoint = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "model_id": MODEL})
    fake.queue(*(fake.error(status, f"it says {SECRET} no") for _ in range(5)))
    try:
        with pytest.raises(EsError) as caught:
            await service.rerank(endpoint, "q", ["a", "b"], {})
    finally:
        await service.close()
    assert len(fake.calls) == attempts
    expected_status = status if status < 500 else 400
    assert caught.value.status == expected_status
    assert caught.value.reason == (
        f"{prefix} for request from inference entity id [test-id] status [{status}]. "
        "Error message: [it says [REDACTED] no]"
    )
    assert_no_secret(caught.value.to_body())


async def test_retried_status_then_success(aiohttp_server: Any) -> None:
    fake = FakeMixedbread()
    await fake.start(aiohttp_server)
    service = make_service(MixedbreadService, fake)
    endpoint = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "model_id": MODEL})
    fake.queue(fake.error(503, "overloaded"), Reply(status=422, json={"error": {"message": "busy"}}))
    try:
        docs = await service.rerank(endpoint, "q", ["bb", "a"], {})
    finally:
        await service.close()
    assert len(fake.calls) == 3 and fake.problems == []
    assert [d.index for d in docs] == [1, 0]


async def test_not_found_names_the_url(aiohttp_server: Any) -> None:
    fake = FakeMixedbread()
    await fake.start(aiohttp_server)
    service = make_service(MixedbreadService, fake)
    endpoint = make_endpoint(service, TaskType.RERANK, {"api_key": SECRET, "model_id": MODEL})
    fake.queue(Reply(status=404, json={"detail": "Not Found"}))
    try:
        with pytest.raises(EsError) as caught:
            await service.rerank(endpoint, "q", ["a"], {})
    finally:
        await service.close()
    assert caught.value.status == 404
    assert caught.value.reason == (
        f"Resource not found at [{fake.url}{PATH}] for request from inference entity id [test-id] status [404]"
    )


@pytest.mark.parametrize("version", [(8, 19, 21), (9, 5, 3)])
def test_left_out_of_services(version: tuple[int, ...]) -> None:
    # No released Elasticsearch lists Mixedbread (added for 9.4, removed before it shipped).
    assert all(entry["service"] != "mixedbread" for entry in catalogue([MixedbreadService(None)], version))


# -- through the sidecar, with the official client ---------------------------------------------------


@pytest.mark.es
async def test_official_client_against_the_sidecar(es_url: str, sidecar_env: dict[str, str], tmp_path: Any,
                                                   aiohttp_server: Any) -> None:
    import asyncio
    import json
    import uuid

    from elasticsearch import BadRequestError, Elasticsearch, NotFoundError
    from sidecar_fixtures import SidecarProcess

    fake = FakeMixedbread()
    await fake.start(aiohttp_server)
    env = {**sidecar_env, "SIDECAR_PROVIDER_URL_MIXEDBREAD": fake.url}
    proc = SidecarProcess(es_url, env, tmp_path / "mixedbread.log").start()
    inference_id = f"mixedbread-{uuid.uuid4().hex[:8]}"
    config = {"service": "mixedbread", "service_settings": {"api_key": SECRET, "model_id": MODEL},
              "task_settings": {"return_documents": True}}

    def run() -> tuple[int, ...]:
        client = Elasticsearch(proc.url)
        version = tuple(int(p) for p in client.info()["version"]["number"].split(".")[:3])
        if version < (9, 4):
            with pytest.raises(BadRequestError):
                client.inference.put(task_type="rerank", inference_id=inference_id, inference_config=config)
            with pytest.raises(NotFoundError):
                client.inference.get(inference_id=inference_id)
            return version
        created = client.inference.put(task_type="rerank", inference_id=inference_id, inference_config=config)
        assert created["service_settings"] == {"model_id": MODEL, "rate_limit": {"requests_per_minute": 100}}
        assert SECRET not in json.dumps(client.inference.get(inference_id=inference_id).body)
        result = client.inference.inference(inference_id=inference_id, query="q", input=["long text", "tiny"],
                                            task_settings={"top_n": 1})
        assert result["rerank"] == [{"index": 1, "relevance_score": pytest.approx(0.2), "text": "tiny"}]
        services = {s["service"] for s in client.perform_request("GET", "/_inference/_services").body}
        assert "mixedbread" not in services
        client.inference.delete(inference_id=inference_id)
        return version

    try:
        version = await asyncio.to_thread(run)
    finally:
        proc.stop()
    assert fake.problems == []
    if version >= (9, 4):
        assert fake.calls[0].json == {"model": MODEL, "query": "q", "input": ["long text", "tiny"], "top_k": 1,
                                      "return_input": True}
        assert fake.calls[0].headers["Authorization"] == f"Bearer {SECRET}"
