"""Remote endpoints through the sidecar's HTTP API, as a user drives them: the docs' create
bodies verbatim (only the URL points at a loopback server speaking the provider's format),
secrets never shown, completion, and server-sent-event streaming."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from providers.harness import SECRET
from providers.hugging_face_fake import FakeHuggingFace
from providers.openai_fake import FakeOpenAi

pytestmark = pytest.mark.es


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def call(session, method, url, body=None):
    async with session.request(method, url, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_openai_embeddings_from_the_docs(sidecar_url, aiohttp_server):
    fake = FakeOpenAi()
    base = await fake.start(aiohttp_server)
    inference_id = uid("openai")
    body = {  # Elastic's docs example, with the URL pointed at the loopback server
        "service": "openai",
        "service_settings": {"api_key": SECRET, "model_id": "text-embedding-ada-002",
                             "url": f"{base}/v1/embeddings"},
    }
    async with aiohttp.ClientSession() as session:
        status, created = await call(session, "PUT", f"{sidecar_url}/_inference/text_embedding/{inference_id}", body)
        assert status == 200, created
        assert "api_key" not in created["service_settings"]
        assert created["service_settings"]["dimensions"] == 4  # learnt from the probe call
        status, got = await call(session, "GET", f"{sidecar_url}/_inference/{inference_id}")
        assert SECRET not in str(got)
        status, result = await call(session, "POST", f"{sidecar_url}/_inference/text_embedding/{inference_id}",
                                    {"input": ["one", "two"]})
        assert status == 200 and [len(r["embedding"]) for r in result["text_embedding"]] == [4, 4]
        assert all(c.headers.get("Authorization") == f"Bearer {SECRET}" for c in fake.calls)
        # A wrong key: the provider's 401 comes back ES-shaped, without the key.
        status, _ = await call(session, "PUT", f"{sidecar_url}/_inference/{inference_id}/_update",
                               {"service_settings": {"api_key": "sk-wrong-key"}})
        assert status == 200
        status, err = await call(session, "POST", f"{sidecar_url}/_inference/{inference_id}", {"input": "x"})
        assert status == 401 and err["error"]["type"] == "status_exception"
        assert "sk-wrong-key" not in str(err) and SECRET not in str(err)
        await call(session, "DELETE", f"{sidecar_url}/_inference/{inference_id}")


async def test_hugging_face_elser_is_usable_but_not_in_the_services_catalogue(sidecar_url, aiohttp_server):
    # As in Elasticsearch (HuggingFaceElserService.hideFromConfigurationApi).
    fake = FakeHuggingFace()
    base = await fake.start(aiohttp_server)
    inference_id = uid("hf-elser")
    async with aiohttp.ClientSession() as session:
        for path in ("/_inference/_services", "/_inference/_services/sparse_embedding"):
            status, listed = await call(session, "GET", sidecar_url + path)
            assert status == 200
            names = {s["service"] for s in listed}
            assert "hugging_face_elser" not in names and "hugging_face" in names, path
        status, created = await call(
            session, "PUT", f"{sidecar_url}/_inference/sparse_embedding/{inference_id}",
            {"service": "hugging_face_elser", "service_settings": {"api_key": SECRET, "url": f"{base}/elser"}},
        )
        assert status == 200, created
        assert created["service"] == "hugging_face_elser"
        status, result = await call(session, "POST", f"{sidecar_url}/_inference/sparse_embedding/{inference_id}",
                                    {"input": "good morning"})
        assert status == 200, result
        assert result["sparse_embedding"][0]["embedding"] == {"hello": 1.5, "good": 0.25}
        assert (await call(session, "DELETE", f"{sidecar_url}/_inference/{inference_id}"))[0] == 200


async def test_completion_and_streaming(sidecar_url, aiohttp_server):
    fake = FakeOpenAi()
    base = await fake.start(aiohttp_server)
    inference_id = uid("chat")
    async with aiohttp.ClientSession() as session:
        status, created = await call(session, "PUT", f"{sidecar_url}/_inference/completion/{inference_id}", {
            "service": "openai", "service_settings": {
                "api_key": SECRET, "model_id": "gpt-4o-mini", "url": f"{base}/v1/chat/completions"}})
        assert status == 200, created
        status, result = await call(session, "POST", f"{sidecar_url}/_inference/completion/{inference_id}",
                                    {"input": "Say hello"})
        assert status == 200 and result == {"completion": [{"result": "Hello world"}]}

        async with session.post(f"{sidecar_url}/_inference/completion/{inference_id}/_stream",
                                json={"input": "Say hello"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            raw = (await resp.read()).decode("utf-8")
        events = [block for block in raw.split("\n\n") if block.strip()]
        assert all(block.lstrip("\ufeff").startswith("event: message\ndata: ") for block in events)
        payloads = [block.split("data: ", 1)[1] for block in events]
        assert payloads[-1] == "[DONE]"
        deltas = "".join(d["delta"] for p in payloads[:-1] for d in __import__("json").loads(p)["completion"])
        assert deltas == "Hello world"

        # A non-streaming task refuses to stream, as Elasticsearch does.
        embed_id = uid("emb")
        await call(session, "PUT", f"{sidecar_url}/_inference/text_embedding/{embed_id}", {
            "service": "openai", "service_settings": {
                "api_key": SECRET, "model_id": "text-embedding-3-small", "url": f"{base}/v1/embeddings"}})
        status, err = await call(session, "POST", f"{sidecar_url}/_inference/{embed_id}/_stream", {"input": "x"})
        assert status == 405 and "Streaming is not allowed" in err["error"]["reason"]
        for i in (inference_id, embed_id):
            await call(session, "DELETE", f"{sidecar_url}/_inference/{i}")


async def test_endpoint_with_secrets_needs_a_key(es_url, sidecar_env, tmp_path, aiohttp_server):
    from sidecar_fixtures import SidecarProcess

    env = {k: v for k, v in sidecar_env.items() if k != "SIDECAR_SECRETS_KEY"}
    proc = SidecarProcess(es_url, env, tmp_path / "nokey.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            status, err = await call(session, "PUT", f"{proc.url}/_inference/text_embedding/{uid('nokey')}", {
                "service": "openai", "service_settings": {"api_key": SECRET, "model_id": "m",
                                                          "url": "http://127.0.0.1:9/v1/embeddings"}})
        assert status == 400 and "no secrets encryption key is configured" in err["error"]["reason"]
    finally:
        proc.stop()
