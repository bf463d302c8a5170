"""The ``amazonbedrock`` service against a loopback Bedrock runtime that verifies the AWS
Signature V4 of every request and streams Converse answers as binary AWS event-stream frames."""

from __future__ import annotations

from typing import Any

import pytest
from providers import eventstream, harness
from providers.bedrock_fake import ACCESS_KEY, REGION, FakeBedrock
from providers.harness import SECRET, ProviderSuite, Reply, make_endpoint, make_service

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.amazonbedrock import AmazonBedrockService


class BedrockSuite(ProviderSuite):
    service_cls = AmazonBedrockService
    fake_cls = FakeBedrock
    secret_keys = ("access_key", "secret_key")
    required = ("region", "[service_settings] does not contain the required setting [region]")


class TestBedrockTitanEmbeddings(BedrockSuite):
    task = TaskType.TEXT_EMBEDDING
    calls_per_invoke = 2
    settings = {
        "access_key": ACCESS_KEY,
        "secret_key": SECRET,
        "region": REGION,
        "provider": "amazontitan",
        "model": "amazon.titan-embed-text-v2:0",
    }


class TestBedrockCohereEmbeddings(BedrockSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {
        "access_key": ACCESS_KEY,
        "secret_key": SECRET,
        "region": REGION,
        "provider": "cohere",
        "model": "cohere.embed-english-v3",
    }


class TestBedrockCompletion(BedrockSuite):
    task = TaskType.COMPLETION
    settings = {
        "access_key": ACCESS_KEY,
        "secret_key": SECRET,
        "region": REGION,
        "provider": "anthropic",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
    }
    task_settings = {"max_new_tokens": 64, "temperature": 0.5, "top_k": 3}
    streams = True


class TestBedrockChatCompletion(TestBedrockCompletion):
    """Elasticsearch 9.2+: the unified chat stream over Converse Stream."""

    task = TaskType.CHAT_COMPLETION


async def test_chat_completion_body_and_tool_call_events(aiohttp_server: Any) -> None:
    fake = FakeBedrock()
    await fake.start(aiohttp_server)
    fake.queue(Reply(chunks=eventstream.converse_tool_stream("Let me check.", "tooluse_1", "get_weather",
                                                             ['{"city":', ' "Paris"}']),
                     content_type="application/vnd.amazon.eventstream"))
    service = make_service(AmazonBedrockService, fake)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, TestBedrockCompletion.settings,
                             {"max_new_tokens": 64, "top_k": 3})
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "tool_calls": [
                {"id": "tooluse_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "tooluse_0", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.3,
        "stop": ["END"],
    }
    try:
        events = await harness.collect(service.stream(endpoint, request))
    finally:
        await service.close()
    assert fake.problems == []
    call = fake.calls[0]
    assert call.path.endswith("/converse-stream") and call.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert call.json == {
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_0", "name": "get_weather", "input": {"city": "Oslo"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_0", "content": [{"text": "sunny"}]}}]},
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.3, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 3},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather of a city", "inputSchema": {
                "json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
            "toolChoice": {"tool": {"name": "get_weather"}},
        },
    }
    assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert events[1]["choices"][0]["delta"] == {"content": "Let me check."}
    start = events[2]["choices"][0]
    assert start["index"] == 1 and start["delta"]["tool_calls"][0]["id"] == "tooluse_1"
    assert start["delta"]["tool_calls"][0]["function"] == {"name": "get_weather"}
    arguments = "".join(e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for e in events[3:5])
    assert arguments == '{"city": "Paris"}'
    # Elasticsearch names Bedrock's stop reasons its own way.
    assert events[5]["choices"][0]["finish_reason"] == "FinishReasonToolCalls"
    assert events[6]["usage"] == {"completion_tokens": 9, "prompt_tokens": 20, "total_tokens": 29}


async def test_completion_body(aiohttp_server: Any) -> None:
    fake = FakeBedrock()
    await fake.start(aiohttp_server)
    service = make_service(AmazonBedrockService, fake)
    endpoint = make_endpoint(service, TaskType.COMPLETION, TestBedrockCompletion.settings, {"max_new_tokens": 10})
    try:
        await service.complete(endpoint, ["hi"], {"top_p": 0.5})
    finally:
        await service.close()
    assert fake.calls[0].raw_path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert fake.calls[0].json == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 10, "topP": 0.5},
    }


async def test_cohere_input_type_and_titan_one_per_call(aiohttp_server: Any) -> None:
    fake = FakeBedrock()
    await fake.start(aiohttp_server)
    service = make_service(AmazonBedrockService, fake)
    cohere = make_endpoint(service, TaskType.TEXT_EMBEDDING, TestBedrockCohereEmbeddings.settings)
    titan = make_endpoint(service, TaskType.TEXT_EMBEDDING, {**TestBedrockTitanEmbeddings.settings, "dimensions": 2})
    try:
        await service.embed(cohere, ["a", "b"], InputType.SEARCH, {})
        result = await service.embed(titan, ["a", "b", "c"], None, {})
    finally:
        await service.close()
    assert fake.calls[0].json == {"texts": ["a", "b"], "input_type": "search_query"}
    assert [c.json["inputText"] for c in fake.calls[1:]] == ["a", "b", "c"]
    assert [len(v) for v in result.vectors] == [2, 2, 2]
    assert titan.service_settings["similarity"] == "cosine" and cohere.service_settings["similarity"] == "dot_product"


def test_provider_validation() -> None:
    service = AmazonBedrockService(None)
    with pytest.raises(EsError) as caught:
        service.parse(
            "b", TaskType.TEXT_EMBEDDING, {**TestBedrockCompletion.settings, "provider": "anthropic"}, {}
        )
    assert "The [text_embedding] task type for provider [anthropic] is not available" in caught.value.reason
    with pytest.raises(EsError) as caught:
        service.parse("b", TaskType.COMPLETION, {**TestBedrockCompletion.settings, "provider": "openai"}, {})
    assert (
        "[provider] must be one of [ai21labs, amazontitan, anthropic, cohere, meta, mistral]" in caught.value.reason
    )
    assert SECRET not in caught.value.reason


# -- Converse Stream -------------------------------------------------------------------------------


async def _streaming(aiohttp_server: Any) -> tuple[FakeBedrock, Any, Any]:
    fake = FakeBedrock()
    await fake.start(aiohttp_server)
    service = make_service(AmazonBedrockService, fake)
    endpoint = make_endpoint(service, TaskType.COMPLETION, TestBedrockCompletion.settings, {"max_new_tokens": 10})
    return fake, service, endpoint


async def test_stream_request_and_frames_split_anywhere(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _streaming(aiohttp_server)
    raw = b"".join(eventstream.converse_stream(["Elastic", " is", " fun"]))
    fake.queue(Reply(chunks=[raw[i : i + 7] for i in range(0, len(raw), 7)], content_type="application/vnd.amazon.eventstream"))
    try:
        events = await harness.collect(service.stream(endpoint, {"input": ["hi"], "task_settings": {"temperature": 0.1}}))
    finally:
        await service.close()
    assert events == [{"completion": [{"delta": "Elastic"}]}, {"completion": [{"delta": " is"}]}, {"completion": [{"delta": " fun"}]}]
    call = fake.calls[0]
    assert call.raw_path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    assert call.json == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 10, "temperature": 0.1},
    }


async def test_stream_exception_mid_way(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _streaming(aiohttp_server)
    frames = eventstream.converse_stream(["Hello"])[:2]
    frames.append(eventstream.exception("throttlingException", f"Too many tokens, please wait ({SECRET})"))
    fake.queue(Reply(chunks=frames, content_type="application/vnd.amazon.eventstream"))
    received, err = await harness.events_until_error(service, endpoint, {"input": "hi"})
    assert received == [{"completion": [{"delta": "Hello"}]}]
    assert (err.status, err.type) == (500, "throttling_exception")
    assert err.reason.startswith("Too many tokens, please wait") and SECRET not in err.reason


async def test_stream_model_error_names_the_exception(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _streaming(aiohttp_server)
    fake.queue(
        Reply(
            chunks=[eventstream.exception("modelStreamErrorException", "The model failed")],
            content_type="application/vnd.amazon.eventstream",
        )
    )
    received, err = await harness.events_until_error(service, endpoint, {"input": "hi"})
    assert received == [] and (err.type, err.reason) == ("model_stream_error_exception", "The model failed")


async def test_stream_corrupt_frame_is_a_clear_error(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _streaming(aiohttp_server)
    good = eventstream.converse_stream(["Hello"])
    broken = bytearray(good[2])
    broken[-5] ^= 0xFF  # payload byte: the message checksum no longer matches
    fake.queue(Reply(chunks=[good[0], good[1], bytes(broken)], content_type="application/vnd.amazon.eventstream"))
    received, err = await harness.events_until_error(service, endpoint, {"input": "hi"})
    assert received == [{"completion": [{"delta": "Hello"}]}]
    assert err.status == 500 and "invalid event stream" in err.reason


async def test_stream_http_error_before_start(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _streaming(aiohttp_server)
    fake.queue(Reply(status=400, json={"message": "Malformed input request"}))
    received, err = await harness.events_until_error(service, endpoint, {"input": "hi"})
    assert received == [] and err.status == 400 and "Malformed input request" in err.reason


async def test_stream_cancel_closes_upstream(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _streaming(aiohttp_server)
    frames = eventstream.converse_stream(["Hello"] + [" more"] * 200)
    fake.queue(Reply(chunks=frames, content_type="application/vnd.amazon.eventstream"))
    first = await harness.first_then_close(fake, service, endpoint, {"input": "hi"})
    assert first == {"completion": [{"delta": "Hello"}]} and fake.disconnects == 1


def test_embeddings_do_not_stream() -> None:
    service = AmazonBedrockService(None)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, TestBedrockTitanEmbeddings.settings)
    with pytest.raises(EsError) as caught:
        service.stream(endpoint, {"input": "hi"})
    assert caught.value.status == 405
    assert caught.value.reason == (
        "Streaming is not allowed for service [amazonbedrock] and task [text_embedding]. "
        "Supported tasks: [completion,chat_completion]"
    )
