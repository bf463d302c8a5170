"""The ``googlevertexai`` service against loopback Vertex AI (embeddings and Gemini
``generateContent``), Discovery Engine and OAuth token endpoints (a real RSA service-account key
signs the token request)."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from providers.harness import (
    Call,
    FakeProvider,
    ProviderSuite,
    Reply,
    collect,
    events_until_error,
    first_then_close,
    make_endpoint,
    make_service,
    sse,
)
from providers.openai_fake import fake_vector

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.googlevertexai import GoogleVertexAiService

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
ACCESS_TOKEN = "ya29.test-access-token"
GEMINI = "/v1/projects/my-project/locations/global/publishers/google/models/gemini-2.0-flash-001"


def gemini_chunk(text: str, *, finish: str | None = None, usage: bool = False, **part: Any) -> dict[str, Any]:
    """One Gemini response (a streamed chunk or a whole answer)."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text, **part}]}}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.0-flash-001", "responseId": "resp-1"}
    if usage:
        chunk["usageMetadata"] = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}
    return chunk


def account_json(token_uri: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "my-project",
            "private_key_id": "kid-1",
            "private_key": PRIVATE_PEM,
            "client_email": "svc@my-project.iam.gserviceaccount.com",
            "token_uri": token_uri,
        }
    )


class FakeVertex(FakeProvider):
    key: ClassVar[str] = ACCESS_TOKEN

    def authorized(self, call: Call) -> bool:
        return call.headers.get("Authorization") == f"Bearer {self.key}"

    def side_channel(self, call: Call) -> Reply | None:
        if call.path != "/token":
            return None
        form = parse_qs(call.raw.decode())
        claims = jwt.decode(form["assertion"][0], certs=PUBLIC_PEM, audience=f"{self.url}/token")
        if form["grant_type"] != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            self.problems.append("bad grant type")
        if claims["iss"] != "svc@my-project.iam.gserviceaccount.com" or "cloud-platform" not in claims["scope"]:
            self.problems.append("bad claims")
        return Reply(json={"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"error": {"code": status, "message": message, "status": "ERROR"}})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path.endswith(":predict"):
            if call.path != "/v1/projects/my-project/locations/us-central1/publishers/google/models/text-embedding-004:predict":
                return "bad predict path"
            return None if all("content" in i for i in body["instances"]) else "bad instances"
        if call.path.endswith(":rank"):
            if call.path != "/v1/projects/my-project/locations/global/rankingConfigs/default_ranking_config:rank":
                return "bad rank path"
            return None if body["records"][0]["id"] == "0" and "query" in body else "bad rank body"
        if call.path in (f"{GEMINI}:generateContent", f"{GEMINI}:streamGenerateContent"):
            if call.path.endswith(":streamGenerateContent") and call.query != {"alt": "sse"}:
                return "streaming needs alt=sse"
            contents = body["contents"]
            ok = contents and all(c["role"] in ("user", "model") and isinstance(c["parts"], list) for c in contents)
            return None if ok else "bad contents"
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path.endswith(":streamGenerateContent"):
            return self.stream_reply(["Hello", " world"])
        if call.path.endswith(":generateContent"):
            return Reply(json=gemini_chunk("Hello world", finish="STOP", usage=True))
        if call.path.endswith(":predict"):
            predictions = [
                {"embeddings": {"values": fake_vector(i["content"]), "statistics": {"truncated": False}}}
                for i in body["instances"]
            ]
            return Reply(json={"predictions": predictions})
        records = [{"id": r["id"], "score": 1.0 / (1 + len(r["content"])), "content": r["content"]} for r in body["records"]]
        records.sort(key=lambda r: -r["score"])
        return Reply(json={"records": records[: body.get("topN")]})


    def stream_reply(self, texts: list[str]) -> Reply:
        chunks = [gemini_chunk(t) for t in texts] + [gemini_chunk("", finish="STOP", usage=True)]
        return Reply(chunks=sse(*chunks), content_type="text/event-stream")


class VertexSuite(ProviderSuite):
    service_cls = GoogleVertexAiService
    fake_cls = FakeVertex
    secret_keys = ("service_account_json",)
    required = ("project_id", "[service_settings] does not contain the required setting [project_id]")

    def fixed(self, fake: FakeProvider | None = None) -> dict[str, Any]:
        url = fake.url if fake is not None else "http://127.0.0.1:9"
        return {**self.settings, "service_account_json": account_json(f"{url}/token")}


class TestVertexEmbeddings(VertexSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {"location": "us-central1", "project_id": "my-project", "model_id": "text-embedding-004"}
    task_settings = {"auto_truncate": True}


class TestVertexRerank(VertexSuite):
    task = TaskType.RERANK
    settings = {"project_id": "my-project", "model_id": "semantic-ranker-512@latest"}
    task_settings = {"top_n": 2}


class TestVertexCompletion(VertexSuite):
    task = TaskType.COMPLETION
    settings = {"location": "us-central1", "project_id": "my-project", "model_id": "gemini-2.0-flash-001"}
    streams = True


class TestVertexChatCompletion(VertexSuite):
    task = TaskType.CHAT_COMPLETION
    settings = TestVertexCompletion.settings
    streams = True


async def test_token_is_fetched_once_and_requests_carry_it(aiohttp_server: Any) -> None:
    fake = FakeVertex()
    await fake.start(aiohttp_server)
    service = make_service(GoogleVertexAiService, fake)
    endpoint = make_endpoint(
        service,
        TaskType.TEXT_EMBEDDING,
        {**TestVertexEmbeddings.settings, "service_account_json": account_json(f"{fake.url}/token")},
        {"input_type": "search"},
    )
    try:
        await service.embed(endpoint, ["a"], None, {})
        await service.embed(endpoint, ["b"], InputType.INGEST, {})
    finally:
        await service.close()
    assert fake.problems == [] and len(fake.side_calls) == 1
    assert fake.calls[0].json == {"instances": [{"content": "a", "task_type": "RETRIEVAL_QUERY"}]}
    assert fake.calls[1].json == {"instances": [{"content": "b", "task_type": "RETRIEVAL_DOCUMENT"}]}
    assert "service_account_json" not in endpoint.service_settings


async def test_rerank_body(aiohttp_server: Any) -> None:
    fake = FakeVertex()
    await fake.start(aiohttp_server)
    service = make_service(GoogleVertexAiService, fake)
    endpoint = make_endpoint(
        service,
        TaskType.RERANK,
        {"project_id": "my-project", "service_account_json": account_json(f"{fake.url}/token")},
        {"top_n": 2},
    )
    try:
        docs = await service.rerank(endpoint, "q", ["aaa", "b", "cc"], {"return_documents": True})
    finally:
        await service.close()
    assert fake.calls[0].json == {
        "query": "q",
        "records": [{"id": "0", "content": "aaa"}, {"id": "1", "content": "b"}, {"id": "2", "content": "cc"}],
        "topN": 2,
        "ignoreRecordDetailsInResponse": False,
    }
    assert [(d.index, d.text) for d in docs] == [(1, "b"), (2, "cc")]


async def test_bad_service_account_json() -> None:
    service = GoogleVertexAiService(None)
    endpoint = make_endpoint(
        service, TaskType.RERANK, {"project_id": "p", "service_account_json": '{"private_key": "x"'}
    )
    with pytest.raises(EsError) as caught:
        await service.rerank(endpoint, "q", ["a"], {})
    await service.close()
    assert caught.value.status == 400 and "service_account_json" in caught.value.reason
    assert "private_key" not in caught.value.reason.split(":")[0]


def test_settings_shown() -> None:
    parsed = GoogleVertexAiService(None).parse(
        "v",
        TaskType.TEXT_EMBEDDING,
        {"location": "l", "project_id": "p", "model_id": "m", "service_account_json": "{}"},
        {},
    )
    assert parsed.service_settings == {
        "location": "l",
        "project_id": "p",
        "model_id": "m",
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 30000},
    }
    assert parsed.secrets == {"service_account_json": "{}"}


# -- completion and chat completion (Gemini) -----------------------------------------------------


async def _gemini(aiohttp_server: Any, task: TaskType) -> tuple[FakeVertex, Any, Any]:
    fake = FakeVertex()
    await fake.start(aiohttp_server)
    service = make_service(GoogleVertexAiService, fake)
    settings = {**TestVertexCompletion.settings, "service_account_json": account_json(f"{fake.url}/token")}
    return fake, service, make_endpoint(service, task, settings)


def test_completion_settings_and_services_entry() -> None:
    service = GoogleVertexAiService(None)
    parsed = service.parse(
        "v", TaskType.CHAT_COMPLETION, {**TestVertexCompletion.settings, "service_account_json": "{}"}, {}
    )
    assert parsed.service_settings == {
        "project_id": "my-project",
        "location": "us-central1",
        "model_id": "gemini-2.0-flash-001",
        "rate_limit": {"requests_per_minute": 1000},
    }
    with pytest.raises(EsError) as caught:
        service.parse("v", TaskType.COMPLETION, {**TestVertexCompletion.settings, "service_account_json": "{}"}, {"top_n": 1})
    assert caught.value.reason == "Configuration contains settings [{top_n=1}] unknown to the [googlevertexai] service"
    described = service.describe()
    assert described["task_types"] == ["text_embedding", "rerank", "completion", "chat_completion"]
    assert described["configurations"]["location"]["supported_task_types"] == [
        "text_embedding",
        "completion",
        "chat_completion",
    ]


async def test_completion_body_and_candidates(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _gemini(aiohttp_server, TaskType.COMPLETION)
    two = gemini_chunk("first")
    two["candidates"].append({"content": {"role": "model", "parts": [{"text": "sec"}, {"text": "ond"}]}, "index": 1})
    fake.queue(Reply(json=two))
    try:
        results = await service.complete(endpoint, ["hi", "there"], {})
    finally:
        await service.close()
    assert [r.result for r in results] == ["first", "second"]
    assert fake.calls[0].path == f"{GEMINI}:generateContent" and fake.calls[0].query == {}
    assert fake.calls[0].json == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "user", "parts": [{"text": "there"}]}]
    }


async def test_chat_request_translation(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _gemini(aiohttp_server, TaskType.CHAT_COMPLETION)
    request = {
        "model": "gemini-2.0-flash-001",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
                ],
            },
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        ],
        "max_completion_tokens": 50,
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
    }
    try:
        events = await collect(service.stream(endpoint, request))
    finally:
        await service.close()
    assert fake.problems == [] and events
    assert fake.calls[0].json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
            {"role": "model", "parts": [{"text": "sunny"}]},
        ],
        "generationConfig": {"stopSequences": ["END"], "temperature": 0.2, "maxOutputTokens": 50, "topP": 0.9},
        "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather", "parameters": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


async def test_chat_chunks_as_elasticsearch_emits_them(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _gemini(aiohttp_server, TaskType.CHAT_COMPLETION)
    call = {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}
    last = gemini_chunk("", finish="STOP", usage=True)
    last["candidates"][0]["content"]["parts"] = [call]
    fake.queue(Reply(chunks=sse(gemini_chunk("Hel"), last), content_type="text/event-stream"))
    try:
        events = await collect(service.stream(endpoint, {"messages": [{"role": "user", "content": "hi"}]}))
    finally:
        await service.close()
    assert events == [
        {
            "id": "resp-1",
            "choices": [{"delta": {"content": "Hel", "role": "model"}, "index": 0}],
            "model": "gemini-2.0-flash-001",
            "object": "chat.completion.chunk",
        },
        {
            "id": "resp-1",
            "choices": [
                {
                    "delta": {
                        "role": "model",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "weather",
                                "function": {"arguments": '{"city":"Paris"}', "name": "weather"},
                                "type": "function",
                            }
                        ],
                    },
                    "finish_reason": "STOP",
                    "index": 0,
                }
            ],
            "model": "gemini-2.0-flash-001",
            "object": "chat.completion.chunk",
            "usage": {"completion_tokens": 2, "prompt_tokens": 4, "total_tokens": 6},
        },
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"messages": [{"role": "developer", "content": "x"}]}, "Role [developer] not supported by Google VertexAI ChatCompletion. Supported roles: [user, assistant]"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "text": "x"}]}]}, "Type [image] not supported by Google VertexAI ChatCompletion. Supported types: [text]"),
        ({"tool_choice": "required"}, "Tool choice value [required] not supported by Google VertexAI ChatCompletion. Supported values: [auto]"),
        ({"tool_choice": {"type": "other", "function": {"name": "f"}}}, "Tool choice type [other] not supported by Google VertexAI ChatCompletion. Supported types: [function]"),
        ({"tools": [{"type": "other", "function": {"name": "f"}}]}, "Tool type [other] not supported by Google VertexAI ChatCompletion. Supported types: [function]"),
        ({"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "x"}]}, "System message cannot be empty for Google Vertex AI"),
    ],
)
def test_chat_requests_gemini_cannot_take(change: dict[str, Any], message: str) -> None:
    service = GoogleVertexAiService(None)
    endpoint = make_endpoint(
        service, TaskType.CHAT_COMPLETION, {**TestVertexCompletion.settings, "service_account_json": "{}"}
    )
    with pytest.raises(EsError) as caught:
        service.stream(endpoint, {"messages": [{"role": "user", "content": "hi"}], **change})
    assert (caught.value.status, caught.value.reason) == (400, message)


async def test_error_event_mid_stream(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _gemini(aiohttp_server, TaskType.COMPLETION)
    error = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    fake.queue(Reply(chunks=sse(gemini_chunk("Hello"), error), content_type="text/event-stream"))
    received, err = await events_until_error(service, endpoint, {"input": "hi"})
    assert received == [{"completion": [{"delta": "Hello"}]}]
    assert err.status == 500 and "Resource exhausted" in err.reason


async def test_stream_cancel_closes_upstream(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _gemini(aiohttp_server, TaskType.CHAT_COMPLETION)
    fake.queue(fake.stream_reply(["Hello"] + [" more"] * 200))
    first = await first_then_close(fake, service, endpoint, {"messages": [{"role": "user", "content": "hi"}]})
    assert first["choices"][0]["delta"]["content"] == "Hello" and fake.disconnects == 1
