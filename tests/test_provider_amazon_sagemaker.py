"""The ``amazon_sagemaker`` service against a loopback SageMaker Runtime that verifies the AWS
Signature V4 of every request, in both of Elasticsearch's schemas (``openai`` and ``elastic``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from providers.harness import (
    SECRET,
    ProviderSuite,
    Reply,
    collect,
    events_until_error,
    make_endpoint,
    make_service,
)
from providers.sagemaker_fake import (
    ACCESS_KEY,
    EVENT_STREAM,
    REGION,
    FakeSageMaker,
    chunk,
    model_stream_error,
    payload_part,
)

from sidecar.errors import EsError
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.amazon_sagemaker import AmazonSageMakerService

COMPAT = "application/vnd.elasticsearch+json; compatible-with=8"
AWS = {"access_key": ACCESS_KEY, "secret_key": SECRET, "region": REGION}


class SageMakerSuite(ProviderSuite):
    service_cls = AmazonSageMakerService
    fake_cls = FakeSageMaker
    required = ("endpoint_name", "[service_settings] does not contain the required setting [endpoint_name]")
    secret_keys = ("access_key", "secret_key")

    # SageMaker's failures read as Elasticsearch reports the AWS SDK's exceptions.
    async def test_server_errors_exhaust_retries(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(*(fake.error(500, f"upstream exploded near {SECRET}") for _ in range(5)))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        assert len(fake.calls) == 3
        assert caught.value.to_body()["error"] == {
            "root_cause": [caught.value.to_cause()], "type": "status_exception",
            "reason": "Received an internal failure from SageMaker for [test-id]",
            "caused_by": {"type": "internal_failure_exception",
                          "reason": "upstream exploded near [REDACTED] (Service: SageMakerRuntime, Status Code: 500, "
                                    "Request ID: req-0001)"}}
        assert caught.value.status == 500

    async def test_authentication_error(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.key = "some-other-key"
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        assert len(fake.calls) == 1
        # A code Elasticsearch does not name: its generic SageMaker error.
        assert (caught.value.status, caught.value.reason) == (500, "Received an error from SageMaker for [test-id]")
        assert caught.value.extra["caused_by"]["type"] == "sage_maker_runtime_exception"
        assert caught.value.extra["caused_by"]["reason"].startswith("Incorrect API key provided (Service: SageMakerRuntime")

    async def test_malformed_json(self, aiohttp_server: Any) -> None:
        if self.task == TaskType.CHAT_COMPLETION:
            return await super().test_malformed_json(aiohttp_server)
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(Reply(body=b"{this is not json"))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        # Elasticsearch's own words, the placeholder it never fills included.
        assert (caught.value.status, caught.value.type, caught.value.reason) == (
            500, "status_exception", "Failed to translate SageMaker response for [%s]")
        assert "inference entity id [test-id]" in caught.value.extra["caused_by"]["reason"]

    def cut_stream_reply(self) -> Reply:
        full = FakeSageMaker().stream_reply(["Hello", " world"], self.settings["endpoint_name"],
                                            chat=self.task == TaskType.CHAT_COMPLETION)
        return Reply(chunks=full.chunks[:-1], cut=True, content_type=EVENT_STREAM)


class TestOpenAiEmbeddings(SageMakerSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {**AWS, "api": "openai", "endpoint_name": "openai-e5"}
    task_settings = {"user": "me"}


class TestOpenAiCompletion(SageMakerSuite):
    task = TaskType.COMPLETION
    settings = {**AWS, "api": "openai", "endpoint_name": "openai-chat-llama"}
    streams = True


class TestOpenAiChatCompletion(SageMakerSuite):
    task = TaskType.CHAT_COMPLETION
    settings = {**AWS, "api": "openai", "endpoint_name": "openai-chat-llama"}
    task_settings = {"user": "me"}
    streams = True


class ElasticSuite(SageMakerSuite):
    def test_unknown_task_setting(self) -> None:
        # The elastic schema passes task settings through per request and never stores them.
        with pytest.raises(EsError) as caught:
            self.service_cls(None).parse("x", self.task, self.fixed(), {"bogus": "x"})
        assert "task_settings is only supported during the inference request" in caught.value.reason


class TestElasticEmbeddings(ElasticSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = {**AWS, "api": "elastic", "endpoint_name": "elastic-e5", "element_type": "float"}


class TestElasticSparse(ElasticSuite):
    task = TaskType.SPARSE_EMBEDDING
    settings = {**AWS, "api": "elastic", "endpoint_name": "elastic-sparse-elser"}


class TestElasticRerank(ElasticSuite):
    task = TaskType.RERANK
    settings = {**AWS, "api": "elastic", "endpoint_name": "elastic-rerank-bge"}


class TestElasticCompletion(ElasticSuite):
    task = TaskType.COMPLETION
    settings = {**AWS, "api": "elastic", "endpoint_name": "elastic-completion-llm"}
    streams = True


class TestElasticChatCompletion(ElasticSuite):
    task = TaskType.CHAT_COMPLETION
    settings = {**AWS, "api": "elastic", "endpoint_name": "elastic-completion-llm"}
    streams = True


async def started(aiohttp_server: Any) -> tuple[FakeSageMaker, AmazonSageMakerService]:
    fake = FakeSageMaker()
    await fake.start(aiohttp_server)
    return fake, make_service(AmazonSageMakerService, fake)


async def test_invoke_endpoint_headers_and_openai_body(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {
        **AWS, "api": "openai", "endpoint_name": "openai-multi", "target_model": "model-a.tar.gz",
        "inference_component_name": "ic-1", "dimensions": 3,
    }, {"custom_attributes": "trace=1", "session_id": "s-9", "user": "me"})
    try:
        one = await service.embed(endpoint, ["only"], InputType.SEARCH, {})
        two = await service.embed(endpoint, ["a", "b"], InputType.INGEST, {"target_variant": "blue"})
    finally:
        await service.close()
    assert fake.problems == []
    first, second = fake.calls
    assert first.raw_path == "/endpoints/openai-multi/invocations"
    assert first.json == {"input": "only", "user": "me", "dimensions": 3}  # one text goes as a string
    assert second.json["input"] == ["a", "b"]
    assert first.headers["X-Amzn-SageMaker-Target-Model"] == "model-a.tar.gz"
    assert first.headers["X-Amzn-SageMaker-Inference-Component"] == "ic-1"
    assert first.headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=1"
    assert first.headers["X-Amzn-SageMaker-Session-Id"] == "s-9"
    assert "X-Amzn-SageMaker-Target-Variant" not in first.headers
    assert second.headers["X-Amzn-SageMaker-Target-Variant"] == "blue"
    assert [len(v) for v in one.vectors + two.vectors] == [3, 3, 3]


async def test_elastic_input_type_query_and_passthrough_task_settings(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    embed = make_endpoint(service, TaskType.TEXT_EMBEDDING,
                          {**AWS, "api": "elastic", "endpoint_name": "elastic-e5", "element_type": "float"})
    complete = make_endpoint(service, TaskType.COMPLETION,
                             {**AWS, "api": "elastic", "endpoint_name": "elastic-completion-llm"})
    rerank = make_endpoint(service, TaskType.RERANK, {**AWS, "api": "elastic", "endpoint_name": "elastic-rerank-x"})
    try:
        search = await service.embed(embed, ["q"], InputType.SEARCH, {})
        override = service.parse_task_settings(TaskType.COMPLETION, {"tone": "warm", "session_id": "s"})
        done = await service.complete(complete, ["hi"], override)
        ranked = await service.rerank(rerank, "q", ["aaaa", "b", "cc"], {"top_n": 2})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"input": "q", "input_type": "search"} and search.vectors[0][0] == 1.0
    assert fake.calls[1].json == {"input": "hi", "task_settings": {"tone": "warm"}}
    assert fake.calls[1].headers["X-Amzn-SageMaker-Session-Id"] == "s"
    assert done[0].result == "Hello world (warm)"
    assert fake.calls[2].json == {"input": ["aaaa", "b", "cc"], "query": "q"}
    assert [(d.index, d.text) for d in ranked] == [(1, "b"), (2, "cc")]


async def test_elastic_byte_embeddings(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING,
                             {**AWS, "api": "elastic", "endpoint_name": "elastic-bytes", "element_type": "byte"})
    try:
        result = await service.embed(endpoint, ["a", "b"], InputType.INGEST, {})
        probed = await service.probe_dimensions(endpoint)
    finally:
        await service.close()
    assert result.element_type == "byte" and all(isinstance(v, int) for v in result.vectors[0])
    assert probed[0] == 4


@pytest.mark.parametrize(
    ("task", "settings", "task_settings", "status", "reason"),
    [
        (TaskType.RERANK, {"api": "openai"}, {}, 405,
         "Task [openai] is not compatible for service [sagemaker] and api [rerank]. Supported tasks: "
         "[[text_embedding, completion, chat_completion]]"),
        (TaskType.TEXT_EMBEDDING, {"api": "elastic"}, {}, 400,
         "Validation Failed: 1: [service_settings] does not contain the required setting [element_type];"),
        (TaskType.COMPLETION, {"api": "elastic"}, {"tone": "warm"}, 400,
         "Validation Failed: 1: task_settings is only supported during the inference request and cannot be "
         "stored in the inference endpoint.;"),
        (TaskType.COMPLETION, {"api": "openai", "rate_limit": {"requests_per_minute": 5}}, {}, 400,
         "Configuration contains settings [{rate_limit={requests_per_minute=5}}] unknown to the "
         "[amazon_sagemaker] service"),
        (TaskType.COMPLETION, {"api": "openai", "batch_size": 0}, {}, 400,
         "Validation Failed: 1: [service_settings] Invalid value [0]. [batch_size] must be a positive integer;"),
    ],
)
def test_settings_errors(task: TaskType, settings: dict[str, Any], task_settings: dict[str, Any], status: int,
                         reason: str) -> None:
    with pytest.raises(EsError) as caught:
        AmazonSageMakerService(None).parse("x", task, {**AWS, "endpoint_name": "e", **settings}, task_settings)
    assert (caught.value.status, caught.value.reason) == (status, reason)
    assert SECRET not in caught.value.reason


def test_listed_with_its_settings() -> None:
    entry = AmazonSageMakerService(None).describe()
    assert entry["name"] == "Amazon SageMaker"
    assert entry["task_types"] == ["text_embedding", "sparse_embedding", "rerank", "completion", "chat_completion"]
    assert entry["configurations"]["secret_key"]["sensitive"] is True
    assert entry["configurations"]["api"]["required"] is True
    assert entry["configurations"]["batch_size"]["type"] == "int"


@pytest.mark.parametrize(("status", "code", "es_status", "reason"), [
    (400, "ValidationError", 400, "Received a validation error from SageMaker for [test-id]"),
    (424, "ModelError", 424, "Received a model error from SageMaker for [test-id]"),
    (404, "ValidationError", 400, "Received a validation error from SageMaker for [test-id]"),
    (400, "ThrottlingException", 500, "Received an error from SageMaker for [test-id]"),
])
async def test_aws_errors_read_as_elasticsearch_reports_them(aiohttp_server: Any, status: int, code: str,
                                                             es_status: int, reason: str) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {**AWS, "api": "openai", "endpoint_name": "openai-chat-x"})
    fake.queue(Reply(status=status, json={"message": "Received client error (400) from primary"},
                     headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sagemaker/"}))
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert (caught.value.status, caught.value.type, caught.value.reason) == (es_status, "status_exception", reason)
    assert caught.value.extra["caused_by"]["reason"].startswith("Received client error (400) from primary")


async def test_a_stream_that_cannot_start_reads_the_same(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.CHAT_COMPLETION, {**AWS, "api": "openai", "endpoint_name": "openai-x"})
    fake.queue(fake.error(424, "model crashed"))
    received, error = await events_until_error(service, endpoint, {"messages": [{"role": "user", "content": "x"}]})
    assert received == [] and (error.status, error.reason) == (424, "Received a model error from SageMaker for [test-id]")


# -- InvokeEndpointWithResponseStream ---------------------------------------------------------------


async def test_openai_stream_request_and_headers(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {
        **AWS, "api": "openai", "endpoint_name": "openai-chat-multi", "target_model": "m.tar.gz",
        "target_container_hostname": "c-1",
    }, {"user": "me", "session_id": "s-1", "enable_explanations": "`true`"})
    chat = make_endpoint(service, TaskType.CHAT_COMPLETION, {**AWS, "api": "openai", "endpoint_name": "openai-chat-x"})
    try:
        events = await collect(service.stream(endpoint, {"input": ["Say", "hello"]}))
        chunks = await collect(service.stream(chat, {
            "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hello"}],
            "max_completion_tokens": 16, "temperature": 0.5,
        }))
    finally:
        await service.close()
    assert fake.problems == []
    first, second = fake.calls
    assert first.raw_path == "/endpoints/openai-chat-multi/invocations-response-stream"
    assert first.json == {"messages": [{"content": "Say", "role": "user"}, {"content": "hello", "role": "user"}],
                          "n": 1, "stream": True, "stream_options": {"include_usage": True}, "user": "me"}
    assert first.headers["X-Amzn-SageMaker-Session-Id"] == "s-1"
    assert first.headers["X-Amzn-SageMaker-Target-Container-Hostname"] == "c-1"
    assert [e["completion"][0]["delta"] for e in events] == ["Hello", " world"]
    assert second.json["max_completion_tokens"] == 16 and second.json["messages"][0]["role"] == "system"
    assert chunks[-1]["usage"] == {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_openai_events_split_across_payload_parts(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {**AWS, "api": "openai", "endpoint_name": "openai-chat-x"})
    raw = b"".join(f"data: {json.dumps(chunk(t))}\n\n".encode() for t in ["Elastic", " is", " fun"]) + b"data: [DONE]\n\n"
    fake.queue(Reply(chunks=[payload_part(raw[i:i + 7]) for i in range(0, len(raw), 7)], content_type=EVENT_STREAM))
    try:
        events = await collect(service.stream(endpoint, {"input": "x"}))
    finally:
        await service.close()
    assert "".join(e["completion"][0]["delta"] for e in events) == "Elastic is fun"


async def test_elastic_stream_passes_task_settings_and_chat_request(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    completion = make_endpoint(service, TaskType.COMPLETION,
                               {**AWS, "api": "elastic", "endpoint_name": "elastic-completion-x"})
    chat = make_endpoint(service, TaskType.CHAT_COMPLETION,
                         {**AWS, "api": "elastic", "endpoint_name": "elastic-completion-x"})
    request = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
               "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
               "tool_choice": "auto", "max_completion_tokens": 5}
    try:
        events = await collect(service.stream(completion, {"input": "hi", "task_settings": {"tone": "warm"}}))
        chunks = await collect(service.stream(chat, request))
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"input": "hi", "task_settings": {"tone": "warm"}}
    assert "".join(e["completion"][0]["delta"] for e in events) == "Hello world (warm)"
    assert fake.calls[1].json == request
    assert "".join(c["delta"].get("content", "") for e in chunks for c in e["choices"]) == "Hello world"


@pytest.mark.parametrize("api", ["openai", "elastic"])
async def test_model_stream_error_mid_way(aiohttp_server: Any, api: str) -> None:
    fake, service = await started(aiohttp_server)
    name = f"{api}-chat-x" if api == "openai" else "elastic-completion-x"
    endpoint = make_endpoint(service, TaskType.COMPLETION, {**AWS, "api": api, "endpoint_name": name})
    good = FakeSageMaker().stream_reply(["Hello"], name).chunks or []
    fake.queue(Reply(chunks=[good[0], model_stream_error(f"model died holding {SECRET}")], content_type=EVENT_STREAM))
    received, error = await events_until_error(service, endpoint, {"input": "x"})
    assert [e["completion"][0]["delta"] for e in received] == ["Hello"]
    assert (error.status, error.type, error.reason) == (
        500, "status_exception", "Received an error from SageMaker for [test-id]")
    assert error.extra["caused_by"] == {"type": "model_stream_error_exception", "reason": "model died holding [REDACTED]"}


async def test_elastic_stream_with_an_unknown_field_fails(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION,
                             {**AWS, "api": "elastic", "endpoint_name": "elastic-completion-x"})
    fake.queue(Reply(chunks=[payload_part(b'{"completion": {"delta": "Hi"}}'),
                             payload_part(b'{"completion": [{"delta": "x"}], "usage": {}}')], content_type=EVENT_STREAM))
    received, error = await events_until_error(service, endpoint, {"input": "x"})
    assert received == [{"completion": [{"delta": "Hi"}]}]  # one object instead of an array is accepted
    assert (error.status, error.reason) == (500, "Received an error from SageMaker for [test-id]")
    assert error.extra["caused_by"]["type"] == "x_content_parse_exception"
    assert "Unknown field [usage]" in error.extra["caused_by"]["reason"]


async def test_openai_stream_that_is_not_json_fails_as_elasticsearch_does(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {**AWS, "api": "openai", "endpoint_name": "openai-chat-x"})
    fake.queue(Reply(chunks=[payload_part(b"data: {not json\n\n")], content_type=EVENT_STREAM))
    received, error = await events_until_error(service, endpoint, {"input": "x"})
    assert received == [] and (error.status, error.reason) == (500, "Received an error from SageMaker for [test-id]")
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION, {**AWS, "api": "elastic", "endpoint_name": "elastic-c"})
    fake.queue(Reply(chunks=[b"this is not an event stream at all"], content_type=EVENT_STREAM))
    received, error = await events_until_error(service, endpoint, {"input": "x"})
    assert received == [] and (error.status, error.reason) == (500, "Received an error from SageMaker for [test-id]")


def test_embeddings_do_not_stream() -> None:
    service = AmazonSageMakerService(None)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, {**AWS, "api": "openai", "endpoint_name": "e"})
    with pytest.raises(EsError) as caught:
        service.stream(endpoint, {"input": "x"})
    # Elasticsearch refuses it before the schema is looked at (BaseTransportInferenceAction).
    assert (caught.value.status, caught.value.reason) == (
        405, "Streaming is not allowed for service [amazon_sagemaker] and task [text_embedding]. "
        "Supported tasks: [completion,chat_completion]")


# -- through the sidecar, with the official client ---------------------------------------------------


@pytest.mark.es
async def test_official_client_against_the_sidecar(es_url: str, sidecar_env: dict[str, str], tmp_path: Any,
                                                   aiohttp_server: Any) -> None:
    import asyncio
    import json
    import uuid

    from elasticsearch import Elasticsearch
    from sidecar_fixtures import SidecarProcess

    fake = FakeSageMaker()
    await fake.start(aiohttp_server)
    env = {**sidecar_env, "SIDECAR_PROVIDER_URL_AMAZON_SAGEMAKER": fake.url}
    proc = SidecarProcess(es_url, env, tmp_path / "sagemaker.log").start()
    inference_id = f"sagemaker-{uuid.uuid4().hex[:8]}"

    def run() -> None:
        client = Elasticsearch(proc.url)
        created = client.inference.put(task_type="text_embedding", inference_id=inference_id, inference_config={
            "service": "amazon_sagemaker",
            "service_settings": {**AWS, "api": "elastic", "endpoint_name": "elastic-e5", "element_type": "float",
                                 "similarity": "cosine"},
        })
        assert created["service_settings"]["dimensions"] == 4
        assert SECRET not in json.dumps(client.inference.get(inference_id=inference_id).body)
        result = client.inference.inference(inference_id=inference_id, input=["a", "b"], input_type="search")
        assert [e["embedding"][0] for e in result["text_embedding"]] == [1.0, 1.0]
        services = {s["service"]: s for s in client.perform_request("GET", "/_inference/_services").body}
        assert services["amazon_sagemaker"]["configurations"]["endpoint_name"]["required"] is True
        assert "chat_completion" in services["amazon_sagemaker"]["task_types"]
        client.inference.delete(inference_id=inference_id)
        # Streaming through InvokeEndpointWithResponseStream, the answer as Elasticsearch's SSE.
        client.inference.put_amazonsagemaker(
            task_type="completion", amazonsagemaker_inference_id=inference_id, service="amazon_sagemaker",
            service_settings={**AWS, "api": "openai", "endpoint_name": "openai-chat-llama"},
        )
        streamed = client.perform_request("POST", f"/_inference/completion/{inference_id}/_stream",
                                          headers={"content-type": COMPAT, "accept": COMPAT},
                                          body={"input": "Say hello"}).body
        raw = streamed.decode() if isinstance(streamed, bytes) else str(streamed)
        datas = [line.removeprefix("data: ") for line in raw.splitlines() if line.startswith("data: ")]
        assert datas[-1] == "[DONE]", raw
        assert "".join(d["delta"] for data in datas[:-1] for d in json.loads(data)["completion"]) == "Hello world"
        client.inference.delete(inference_id=inference_id)
        # chat_completion on an elastic-schema endpoint: the unified request goes through as it is.
        client.inference.put_amazonsagemaker(
            task_type="chat_completion", amazonsagemaker_inference_id=inference_id, service="amazon_sagemaker",
            service_settings={**AWS, "api": "elastic", "endpoint_name": "elastic-completion-chat"},
        )
        chat = {"messages": [{"role": "user", "content": "Say hello"}], "max_completion_tokens": 8}
        streamed = client.perform_request("POST", f"/_inference/chat_completion/{inference_id}/_stream",
                                          headers={"content-type": COMPAT, "accept": COMPAT}, body=chat).body
        raw = streamed.decode() if isinstance(streamed, bytes) else str(streamed)
        datas = [line.removeprefix("data: ") for line in raw.splitlines() if line.startswith("data: ")]
        assert datas[-1] == "[DONE]", raw
        chunks = [json.loads(data) for data in datas[:-1]]
        assert "".join(c["delta"].get("content", "") for chunk in chunks for c in chunk["choices"]) == "Hello world"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        client.inference.delete(inference_id=inference_id)

    try:
        await asyncio.to_thread(run)
    finally:
        proc.stop()
    assert fake.problems == []
