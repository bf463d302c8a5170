"""The ``fireworksai`` service against a loopback Fireworks AI embeddings API (OpenAI-shaped)."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, ProviderSuite, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.protocol.service import InputType, TaskType
from sidecar.services.fireworksai import FireworksAiService


class FakeFireworks(FakeOpenAi):
    embeddings_path = "/inference/v1/embeddings"
    expect_model = "nomic-ai/nomic-embed-text-v1.5"


class TestFireworksEmbeddings(ProviderSuite):
    service_cls = FireworksAiService
    fake_cls = FakeFireworks
    task = TaskType.TEXT_EMBEDDING
    settings = {"api_key": SECRET, "model_id": "nomic-ai/nomic-embed-text-v1.5"}
    task_settings = {"user": "u-1"}


def test_defaults() -> None:
    parsed = FireworksAiService(None).parse("f", TaskType.TEXT_EMBEDDING, {"api_key": "k", "model_id": "m"}, {})
    assert parsed.service_settings == {"model_id": "m", "similarity": "cosine", "rate_limit": {"requests_per_minute": 6000}}


async def test_dimensions_only_when_set_and_batches_of_256(aiohttp_server: Any) -> None:
    fake = FakeFireworks()
    await fake.start(aiohttp_server)
    service = make_service(FireworksAiService, fake)
    settings = {"api_key": SECRET, "model_id": "nomic-ai/nomic-embed-text-v1.5"}
    plain = make_endpoint(service, TaskType.TEXT_EMBEDDING, settings)
    sized = make_endpoint(service, TaskType.TEXT_EMBEDDING, {**settings, "dimensions": 3})
    try:
        many = await service.embed(plain, [f"t{i}" for i in range(300)], InputType.INGEST, {})
        small = await service.embed(sized, ["a"], InputType.INGEST, {})
        probed = await service.probe_dimensions(sized)
    finally:
        await service.close()
    assert fake.problems == []
    assert sorted(len(c.json["input"]) for c in fake.calls[:2]) == [44, 256] and "dimensions" not in fake.calls[0].json
    assert len(many.vectors) == 300 and fake.calls[2].json["dimensions"] == 3 and len(small.vectors[0]) == 3
    assert probed == (3, "cosine")
