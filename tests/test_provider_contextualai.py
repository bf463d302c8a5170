"""The ``contextualai`` service against a loopback Contextual AI rerank API."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, Call, ProviderSuite, Reply, make_endpoint, make_service
from providers.rerankers_fake import FakeEmbedRerank

from sidecar.protocol.service import TaskType
from sidecar.services.contextualai import ContextualAiService


class FakeContextualAi(FakeEmbedRerank):
    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path != "/v1/rerank":
            return f"unknown path {call.path}"
        if list(body)[:2] != ["query", "model"] or list(body)[-1] != "documents":
            return "fields out of Contextual AI's order"
        if "return_documents" in body:
            return "return_documents is not a Contextual AI field"
        return None

    def answer(self, call: Call) -> Reply:
        reply = super().answer(call)
        for item in reply.json["results"]:
            item.pop("document", None)  # Contextual AI answers scores only
        return reply


class TestContextualAiRerank(ProviderSuite):
    service_cls = ContextualAiService
    fake_cls = FakeContextualAi
    task = TaskType.RERANK
    settings = {"api_key": SECRET, "model_id": "ctxl-rerank-en-v1-instruct"}
    task_settings = {"top_n": 2, "return_documents": True, "instruction": "Prefer short documents"}
    required = ("api_key", "[secret_settings] does not contain the required setting [api_key]")


def test_defaults() -> None:
    parsed = ContextualAiService(None).parse("c", TaskType.RERANK, {"api_key": "k"}, {})
    assert parsed.service_settings == {"rate_limit": {"requests_per_minute": 1000}}


async def test_body_and_documents_from_inputs(aiohttp_server: Any) -> None:
    fake = FakeContextualAi()
    await fake.start(aiohttp_server)
    service = make_service(ContextualAiService, fake)
    endpoint = make_endpoint(
        service, TaskType.RERANK, {"api_key": SECRET, "model_id": "m"}, {"instruction": "recent first", "top_n": 1}
    )
    try:
        docs = await service.rerank(endpoint, "q", ["long doc", "b"], {"return_documents": True})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"query": "q", "model": "m", "top_n": 1, "instruction": "recent first", "documents": ["long doc", "b"]}
    assert [(d.index, d.text) for d in docs] == [(1, "b")]
