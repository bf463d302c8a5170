"""The ``watsonxai`` service against loopback IBM IAM and watsonx.ai endpoints."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qs

from providers.harness import SECRET, Call, ProviderSuite, Reply, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi, fake_vector

from sidecar.protocol.service import TaskType
from sidecar.services.watsonxai import WatsonxAiService

IAM_TOKEN = "iam-bearer-token"


class FakeWatsonx(FakeOpenAi):
    key: ClassVar[str] = IAM_TOKEN
    api_key = SECRET

    def side_channel(self, call: Call) -> Reply | None:
        if call.path != "/identity/token":
            return None
        form = parse_qs(call.raw.decode())
        if form.get("grant_type") != ["urn:ibm:params:oauth:grant-type:apikey"] or form.get("apikey") != [self.api_key]:
            return Reply(status=400, json={"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found"})
        return Reply(json={"access_token": IAM_TOKEN, "expires_in": 3600, "token_type": "Bearer"})

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"errors": [{"code": "error", "message": message}], "status_code": status})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.query.get("version") != "2024-05-02":
            return "missing version"
        if body.get("model_id") != "ibm/model" or body.get("project_id") != "proj":
            return "model_id and project_id are required"
        if call.path == "/ml/v1/text/embeddings":
            return None if isinstance(body.get("inputs"), list) else "bad embeddings"
        if call.path == "/ml/v1/text/rerank":
            return None if body["inputs"][0].get("text") and body.get("query") else "bad rerank"
        if call.path in ("/ml/v1/text/chat", "/ml/v1/text/chat_stream"):
            return None if body["messages"][0]["role"] == "user" and "stream" not in body else "bad chat"
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path.endswith("/embeddings"):
            return Reply(json={"model_id": "ibm/model", "results": [{"embedding": fake_vector(t)} for t in body["inputs"]]})
        if call.path.endswith("/rerank"):
            results = [
                {"index": i, "score": 1.0 / (1 + len(item["text"]))} | {"input": {"text": item["text"]}}
                for i, item in enumerate(body["inputs"])
            ]
            results.sort(key=lambda r: -r["score"])
            top_n = ((body.get("parameters") or {}).get("return_options") or {}).get("top_n")
            return Reply(json={"results": results[:top_n]})
        if call.path.endswith("/chat_stream"):
            return self.stream_reply(["Hello", " world"])
        return super().answer(call)


class WatsonxSuite(ProviderSuite):
    service_cls = WatsonxAiService
    fake_cls = FakeWatsonx
    settings = {
        "api_key": SECRET,
        "url": "{url}",
        "api_version": "2024-05-02",
        "model_id": "ibm/model",
        "project_id": "proj",
    }


class TestWatsonxEmbeddings(WatsonxSuite):
    task = TaskType.TEXT_EMBEDDING


class TestWatsonxRerank(WatsonxSuite):
    task = TaskType.RERANK
    task_settings = {"top_n": 2, "return_documents": True}


class TestWatsonxCompletion(WatsonxSuite):
    task = TaskType.COMPLETION
    streams = True


class TestWatsonxChatCompletion(WatsonxSuite):
    task = TaskType.CHAT_COMPLETION
    streams = True


async def test_iam_token_is_cached_and_rerank_body(aiohttp_server: Any) -> None:
    fake = FakeWatsonx()
    await fake.start(aiohttp_server)
    service = make_service(WatsonxAiService, fake)
    settings = {**WatsonxSuite.settings, "url": fake.url}
    endpoint = make_endpoint(service, TaskType.RERANK, settings, {"truncate_input_tokens": 100})
    try:
        docs = await service.rerank(endpoint, "q", ["aaa", "b"], {"top_n": 1, "return_documents": True})
        await service.rerank(endpoint, "q", ["aaa", "b"], {})
    finally:
        await service.close()
    assert len(fake.side_calls) == 1 and fake.problems == []
    assert fake.calls[0].json == {
        "query": "q",
        "inputs": [{"text": "aaa"}, {"text": "b"}],
        "parameters": {"truncate_input_tokens": 100, "return_options": {"inputs": True, "top_n": 1}},
        "model_id": "ibm/model",
        "project_id": "proj",
    }
    assert [(d.index, d.text) for d in docs] == [(1, "b")]
