"""The ``alibabacloud-ai-search`` service against a loopback AI Search OpenAPI."""

from __future__ import annotations

from typing import Any

from providers.harness import SECRET, Call, FakeProvider, ProviderSuite, Reply, make_endpoint, make_service
from providers.openai_fake import fake_vector

from sidecar.protocol.service import InputType, TaskType
from sidecar.services.alibabacloud_ai_search import AlibabaCloudAiSearchService

PREFIX = "/v3/openapi/workspaces/default/"


class FakeAlibaba(FakeProvider):
    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"request_id": "r1", "code": "Error", "message": message})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if not call.path.startswith(PREFIX):
            return f"unknown path {call.path}"
        kind, service_id = call.path[len(PREFIX) :].split("/")
        expected = {
            "text-embedding": "ops-text-embedding-001",
            "text-sparse-embedding": "ops-text-sparse-embedding-001",
            "ranker": "ops-bge-reranker-larger",
            "text-generation": "ops-qwen-turbo",
        }
        if expected.get(kind) != service_id:
            return f"bad service {kind}/{service_id}"
        if kind in ("text-embedding", "text-sparse-embedding"):
            return None if body.get("input_type", "document") in ("document", "query") else "bad input_type"
        if kind == "ranker":
            return None if isinstance(body.get("docs"), list) and body.get("query") else "bad ranker body"
        return None if body["messages"][0]["role"] == "user" else "bad messages"

    def answer(self, call: Call) -> Reply:
        body = call.json
        kind = call.path[len(PREFIX) :].split("/")[0]
        if kind == "text-embedding":
            items = [{"index": i, "embedding": fake_vector(t)} for i, t in enumerate(body["input"])]
            return Reply(json={"request_id": "r", "result": {"embeddings": list(reversed(items))}})
        if kind == "text-sparse-embedding":
            items = [
                {"index": i, "embedding": [{"token_id": 6, "weight": 0.1, "token": t.split()[0]}, {"token_id": 9, "weight": 0.0, "token": "x"}]}
                for i, t in enumerate(body["input"])
            ]
            return Reply(json={"result": {"sparse_embeddings": items}})
        if kind == "ranker":
            scores = [{"index": i, "score": 1.0 / (1 + len(d))} for i, d in enumerate(body["docs"])]
            return Reply(json={"result": {"scores": scores}})
        return Reply(json={"request_id": "r", "result": {"text": "Hello world"}})


class AlibabaSuite(ProviderSuite):
    service_cls = AlibabaCloudAiSearchService
    fake_cls = FakeAlibaba
    required = ("service_id", "[service_settings] does not contain the required setting [service_id]")

    def fixed(self, fake: FakeProvider | None = None) -> dict[str, Any]:
        host = fake.url.removeprefix("http://") if fake is not None else "127.0.0.1:9"
        return {**self.settings, "host": host, "http_schema": "http"}


def _settings(service_id: str) -> dict[str, Any]:
    return {"api_key": SECRET, "service_id": service_id, "workspace": "default"}


class TestAlibabaEmbeddings(AlibabaSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = _settings("ops-text-embedding-001")
    task_settings = {"input_type": "ingest"}


class TestAlibabaSparse(AlibabaSuite):
    task = TaskType.SPARSE_EMBEDDING
    settings = _settings("ops-text-sparse-embedding-001")
    task_settings = {"return_token": True}


class TestAlibabaRerank(AlibabaSuite):
    task = TaskType.RERANK
    settings = _settings("ops-bge-reranker-larger")


class TestAlibabaCompletion(AlibabaSuite):
    task = TaskType.COMPLETION
    settings = _settings("ops-qwen-turbo")


async def test_results_follow_input_order_and_sparse_tokens(aiohttp_server: Any) -> None:
    fake = FakeAlibaba()
    await fake.start(aiohttp_server)
    service = make_service(AlibabaCloudAiSearchService, fake)
    host = fake.url.removeprefix("http://")
    dense = make_endpoint(service, TaskType.TEXT_EMBEDDING, {**_settings("ops-text-embedding-001"), "host": host, "http_schema": "http"})
    sparse = make_endpoint(
        service, TaskType.SPARSE_EMBEDDING, {**_settings("ops-text-sparse-embedding-001"), "host": host, "http_schema": "http"}, {"return_token": True}
    )
    try:
        vectors = await service.embed(dense, ["a", "b"], InputType.SEARCH, {})
        tokens = await service.sparse_embed(sparse, ["open search"], None, {})
    finally:
        await service.close()
    assert vectors.vectors == [fake_vector("a"), fake_vector("b")]
    assert fake.calls[0].json == {"input": ["a", "b"], "input_type": "query"}
    assert fake.calls[1].json == {"input": ["open search"], "return_token": True}
    assert tokens[0].tokens == {"open": 0.1}
