"""The ``googlevertexai`` service against loopback Vertex AI, Discovery Engine and OAuth
token endpoints (a real RSA service-account key signs the token request)."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from providers.harness import Call, FakeProvider, ProviderSuite, Reply, make_endpoint, make_service
from providers.openai_fake import fake_vector

from sidecar.errors import EsError
from sidecar.services.base import InputType, TaskType
from sidecar.services.googlevertexai import GoogleVertexAiService

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
ACCESS_TOKEN = "ya29.test-access-token"


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
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if call.path.endswith(":predict"):
            predictions = [
                {"embeddings": {"values": fake_vector(i["content"]), "statistics": {"truncated": False}}}
                for i in body["instances"]
            ]
            return Reply(json={"predictions": predictions})
        records = [{"id": r["id"], "score": 1.0 / (1 + len(r["content"])), "content": r["content"]} for r in body["records"]]
        records.sort(key=lambda r: -r["score"])
        return Reply(json={"records": records[: body.get("topN")]})


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
