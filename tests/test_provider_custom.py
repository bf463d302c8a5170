"""The ``custom`` service, configured only through its endpoint, against a loopback model server
(Infinity/OpenAI-style embeddings, an Alibaba-shaped sparse route, a Cohere reranker and an
OpenAI chat route), and through the sidecar with the official client."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch
from providers.custom_fake import FakeModelServer
from providers.harness import SECRET, ProviderSuite, Reply, assert_no_secret, make_endpoint, make_service

from sidecar.errors import EsError
from sidecar.protocol.registry import ServiceContext
from sidecar.protocol.service import InputType, TaskType
from sidecar.services.custom import CustomService

AUTH = {"Authorization": "Bearer ${api_key}"}
SECRETS = {"api_key": SECRET}

EMBEDDINGS: dict[str, Any] = {
    "url": "{url}/embeddings",
    "headers": AUTH,
    "secret_parameters": SECRETS,
    "request": '{"model": ${model}, "input": ${input}, "input_type": ${input_type}}',
    "input_type": {"translation": {"ingest": "document", "search": "query"}, "default": "document"},
    "response": {"json_parser": {"text_embeddings": "$.data[*].embedding"}},
}
SPARSE: dict[str, Any] = {
    "url": "{url}/sparse",
    "headers": AUTH,
    "secret_parameters": SECRETS,
    "request": '{"texts": ${input}}',
    "response": {"json_parser": {
        "token_path": "$.result.sparse_embeddings[*].embedding[*].token_id",
        "weight_path": "$.result.sparse_embeddings[*].embedding[*].weight",
    }},
}
RERANK: dict[str, Any] = {
    "url": "{url}/v2/rerank",
    "headers": {**AUTH, "Request-Source": "unspecified:elasticsearch"},
    "secret_parameters": SECRETS,
    "request": '{"model": "rerank-v3.5", "query": ${query}, "documents": ${input}}',
    "response": {"json_parser": {
        "relevance_score": "$.results[*].relevance_score",
        "reranked_index": "$.results[*].index",
    }},
}
COMPLETION: dict[str, Any] = {
    "url": "{url}/v1/chat/completions",
    "headers": AUTH,
    "secret_parameters": SECRETS,
    "request": '{"model": "gpt-4o-mini", "n": 1, "stream": false, "messages": [{"role": "user", "content": ${input}}]}',
    "response": {"json_parser": {"completion_result": "$.choices[*].message.content"}},
}


class CustomSuite(ProviderSuite):
    service_cls = CustomService
    fake_cls = FakeModelServer
    required = ("url", "[service_settings] does not contain the required setting [url]")
    secret_keys = ("secret_parameters",)

    def test_secret_missing(self) -> None:
        # Without secret_parameters the header template cannot be filled: refused at creation.
        service = self.service_cls(ServiceContext())
        settings = {k: v for k, v in self.fixed().items() if k != "secret_parameters"}
        with pytest.raises(EsError) as caught:
            service.parse("x", self.task, settings, dict(self.task_settings))
        assert caught.value.reason == (
            "Validation Failed: 1: Failed to validate model configuration: Found placeholder [${api_key}] in field "
            "[header.Authorization] after replacement call, please check that all templates have a corresponding "
            "field definition.;"
        )

    async def test_server_errors_exhaust_retries(self, aiohttp_server: Any) -> None:
        # Elasticsearch's CustomResponseHandler does not retry a server error.
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(*(fake.error(500, "upstream exploded") for _ in range(3)))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        assert len(fake.calls) == 1
        assert caught.value.status == 400
        assert caught.value.reason == (
            "Received a server error status code for request from inference entity id [test-id] status [500]. "
            "Error message: [upstream exploded]"
        )

    async def test_unexpected_shape(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(Reply(json={"unexpected": True}))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        body = caught.value.to_body()["error"]
        assert caught.value.status == 400 and body["reason"] == (
            "Failed to parse custom model response, please check that the response parser path matches the "
            "response format."
        )
        assert body["caused_by"]["type"] == "illegal_argument_exception"
        assert body["caused_by"]["reason"].startswith("Unable to find field [")


class TestCustomEmbeddings(CustomSuite):
    task = TaskType.TEXT_EMBEDDING
    settings = EMBEDDINGS
    task_settings = {"parameters": {"model": "bge-small-en"}}


class TestCustomSparse(CustomSuite):
    task = TaskType.SPARSE_EMBEDDING
    settings = SPARSE


class TestCustomRerank(CustomSuite):
    task = TaskType.RERANK
    settings = RERANK


class TestCustomCompletion(CustomSuite):
    task = TaskType.COMPLETION
    settings = COMPLETION


def fixed(settings: dict[str, Any], url: str) -> dict[str, Any]:
    return {k: (v.replace("{url}", url) if isinstance(v, str) else v) for k, v in settings.items()}


async def started(aiohttp_server: Any) -> tuple[FakeModelServer, CustomService]:
    fake = FakeModelServer()
    await fake.start(aiohttp_server)
    return fake, make_service(CustomService, fake)


# -- what goes over the wire ----------------------------------------------------------------------


async def test_embedding_request_input_types_and_batches(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(
        service, TaskType.TEXT_EMBEDDING, fixed({**EMBEDDINGS, "batch_size": 4}, fake.url),
        {"parameters": {"model": "bge-small-en"}},
    )
    try:
        ingest = await service.embed(endpoint, [f"text {i}" for i in range(10)], InputType.INGEST, {})
        search = await service.embed(endpoint, ["q"], InputType.SEARCH, {"parameters": {"model": "bge-large"}})
        unspecified = await service.embed(endpoint, ["q"], None, {})
    finally:
        await service.close()
    assert fake.problems == []
    assert sorted(len(c.json["input"]) for c in fake.calls[:3]) == [2, 4, 4]
    assert {c.json["input_type"] for c in fake.calls[:3]} == {"document"}
    assert [v[0] for v in ingest.vectors] == [0.0] * 10 and len(ingest.vectors[0]) == 4
    assert fake.calls[3].json == {"model": "bge-large", "input": ["q"], "input_type": "query"}
    assert search.vectors[0][0] == 1.0
    assert fake.calls[4].json["input_type"] == "document" and unspecified.vectors[0][0] == 0.0
    assert all(c.headers["Authorization"] == f"Bearer {SECRET}" for c in fake.calls)


async def test_url_query_parameters_and_headers_are_templates(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    settings = fixed({
        **EMBEDDINGS,
        "url": "{url}/${route}",
        "query_parameters": [["api-version", "${version}"], ["tag", "a b&c"]],
        "headers": {**AUTH, "X-Tenant": "${tenant}"},
    }, fake.url)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, settings, {
        "parameters": {"model": "m", "route": "embeddings", "version": "2024-10-21", "tenant": "acme", "dims": 3},
    })
    try:
        await service.embed(endpoint, ["x"], InputType.INGEST, {})
    finally:
        await service.close()
    call = fake.calls[0]
    assert call.path == "/embeddings" and call.query == {"api-version": "2024-10-21", "tag": "a b&c"}
    assert call.headers["X-Tenant"] == "acme" and call.headers["Content-Type"] == "application/json"
    assert endpoint.service_settings["query_parameters"] == [["api-version", "${version}"], ["tag", "a b&c"]]


async def test_byte_embeddings(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    settings = fixed({**EMBEDDINGS, "response": {"json_parser": {
        "text_embeddings": "$.data[*].embedding", "embedding_type": "byte"}}}, fake.url)
    endpoint = make_endpoint(service, TaskType.TEXT_EMBEDDING, settings, {"parameters": {"model": "m"}})
    fake.queue(Reply(json={"data": [{"embedding": [1, -2, 127]}, {"embedding": [-128, 0, 5]}]}),
               Reply(json={"data": [{"embedding": [1, 300, 2]}]}))
    try:
        result = await service.embed(endpoint, ["a", "b"], InputType.INGEST, {})
        with pytest.raises(EsError) as caught:
            await service.embed(endpoint, ["a"], InputType.INGEST, {})
    finally:
        await service.close()
    assert result.element_type == "byte" and result.vectors == [[1, -2, 127], [-128, 0, 5]]
    assert caught.value.to_body()["error"]["caused_by"]["reason"] == (
        "Failed to parse text embedding entry [0], error: Failed to parse list entry [1], error: "
        "Value [300] is out of range for a byte"
    )


async def test_sparse_tokens_and_weights(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.SPARSE_EMBEDDING, fixed(SPARSE, fake.url))
    try:
        result = await service.sparse_embed(endpoint, ["hello big world", "bye"], InputType.INGEST, {})
    finally:
        await service.close()
    assert [len(r.tokens) for r in result] == [3, 1]
    assert sorted(result[0].tokens.values(), reverse=True) == [1.0, 0.5, 0.333]
    assert all(key.isdigit() for key in result[0].tokens)  # token ids become strings


async def test_rerank_top_n_and_return_documents(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    settings = fixed({
        **RERANK,
        "request": '{"model": "rerank-v3.5", "query": ${query}, "documents": ${input}, "top_n": ${top_n}, '
                   '"return_documents": ${return_documents}}',
    }, fake.url)
    # The templates are checked with test inputs that carry no top_n: a default must be given.
    with pytest.raises(EsError) as caught:
        make_endpoint(service, TaskType.RERANK, settings)
    assert "Found placeholder [${top_n}] in field [request]" in caught.value.reason
    endpoint = make_endpoint(service, TaskType.RERANK, settings,
                             {"parameters": {"top_n": 3, "return_documents": False}})
    try:
        docs = await service.rerank(endpoint, "q", ["aaaa", "b", "cc"], {"top_n": 2, "return_documents": True})
    finally:
        await service.close()
    assert fake.problems == []
    assert fake.calls[0].json == {"model": "rerank-v3.5", "query": "q", "documents": ["aaaa", "b", "cc"],
                                  "top_n": 2, "return_documents": True}
    assert [d.index for d in docs] == [1, 2]


async def test_a_path_that_does_not_match(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    settings = fixed({**COMPLETION, "response": {"json_parser": {"completion_result": "$.result.text"}}}, fake.url)
    endpoint = make_endpoint(service, TaskType.COMPLETION, settings)
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["hi"], {})
    finally:
        await service.close()
    assert caught.value.to_body()["error"]["caused_by"] == {
        "type": "illegal_argument_exception", "reason": "Unable to find field [result] in map"}


async def test_a_placeholder_left_at_request_time(aiohttp_server: Any) -> None:
    fake, service = await started(aiohttp_server)
    endpoint = make_endpoint(service, TaskType.COMPLETION, fixed(
        {**COMPLETION, "request": '{"model": ${model}, "n": 1, "stream": false, "messages": '
                                  '[{"role": "user", "content": ${input}}]}'}, fake.url),
        {"parameters": {"model": "gpt-4o-mini"}})
    endpoint.task_settings = {}  # as if the stored parameters had been removed
    with pytest.raises(EsError) as caught:
        await service.complete(endpoint, ["hi"], {})
    await service.close()
    body = caught.value.to_body()["error"]
    assert body["reason"] == "Failed to construct the custom service request" and caught.value.status == 400
    assert body["caused_by"]["reason"].startswith("Found placeholder [${model}] in field [request]")
    assert fake.calls == []


# -- validation -------------------------------------------------------------------------------------

BASE = {"url": "http://127.0.0.1:9/x", "request": "{}", "response": {"json_parser": {"completion_result": "$.r"}}}


@pytest.mark.parametrize(
    ("settings", "task_settings", "reason"),
    [
        ({**BASE, "response": {"json_parser": {"completion_result": "$.r", "extra": "x"}}}, {},
         "Configuration contains unknown settings [{extra=x}] while parsing field [json_parser] for settings "
         "[custom_service_settings]"),
        ({**BASE, "response": {"json_parser": {"completion_result": "$.r"}, "error_parser": {"path": "$.e"}}}, {},
         "Configuration contains unknown settings [{error_parser={path=$.e}}] while parsing field [response] for "
         "settings [custom_service_settings]"),
        ({**BASE, "response": {"json_parser": {}}}, {},
         "Validation Failed: 1: [service_settings.response] Invalid value empty map. [json_parser] must be a "
         "non-empty map;"),
        ({**BASE, "response": {"json_parser": {"text": "$.r"}}}, {},
         "Validation Failed: 1: [service_settings.response.json_parser] does not contain the required setting "
         "[completion_result];"),
        ({k: v for k, v in BASE.items() if k != "request"}, {},
         "Validation Failed: 1: [service_settings] does not contain the required setting [request];"),
        ({**BASE, "headers": {"X-Key": 5}}, {},
         "Validation Failed: 1: Map field [headers] has an entry that is not valid, [X-Key => 5]. Value type of "
         "[5] is not one of [String].;"),
        ({**BASE, "secret_parameters": {"key": 5}}, {},
         "Validation Failed: 1: Map field [secret_parameters] has an entry that is not valid. Value type is not "
         "one of [String].;"),
        ({**BASE, "query_parameters": [["a"]]}, {},
         "Validation Failed: 1: [service_settings] failed to parse tuple list entry [0] for setting "
         "[query_parameters], the tuple list size must be two, but was [1];"),
        ({**BASE, "batch_size": 0}, {},
         "Validation Failed: 1: [service_settings] Invalid value [0]. [batch_size] must be a positive integer;"),
        ({**BASE, "input_type": {"translation": {"ingest": ""}}}, {},
         "Validation Failed: 1: Input type translation value for key [ingest] must be a String that is not null "
         "and not empty, received: [String].;"),
        ({**BASE, "input_type": {"translation": {}, "fallback": "x"}}, {},
         "Configuration contains unknown settings [{fallback=x}] while parsing field [input_type] for settings "
         "[input_type_translator]"),
        ({**BASE, "url": "http://h/${path}"}, {},
         "Validation Failed: 1: Failed to validate model configuration: Found placeholder [${path}] in field [url] "
         "after replacement call, please check that all templates have a corresponding field definition.;"),
        (BASE, {"parameters": {"p": {"a": 1}}},
         "Validation Failed: 1: Map field [parameters] has an entry that is not valid, [p => {a=1}]. Value type of "
         "[{a=1}] is not one of [Boolean, Double, Float, Integer, String].;"),
        ({**BASE, "model": "m"}, {}, "Configuration contains settings [{model=m}] unknown to the [custom] service"),
    ],
)
def test_validation_errors(settings: dict[str, Any], task_settings: dict[str, Any], reason: str) -> None:
    with pytest.raises(EsError) as caught:
        CustomService(None).parse("x", TaskType.COMPLETION, json.loads(json.dumps(settings)), task_settings)
    assert caught.value.status == 400
    assert caught.value.reason == reason


def test_stored_settings_shape() -> None:
    parsed = CustomService(None).parse("x", TaskType.TEXT_EMBEDDING, {
        **EMBEDDINGS, "url": "http://h/embeddings", "similarity": "cosine",
        "input_type": {"translation": {"search": "query", "ingest": "document"}},
    }, {"parameters": {"model": "m", "drop": None}})
    assert parsed.service_settings == {
        "similarity": "cosine",
        "url": "http://h/embeddings",
        "headers": AUTH,
        "request": EMBEDDINGS["request"],
        "response": {"json_parser": {"text_embeddings": "$.data[*].embedding", "embedding_type": "float"}},
        "input_type": {"translation": {"ingest": "document", "search": "query"}, "default": ""},
        "rate_limit": {"requests_per_minute": 10000},
        "batch_size": 10,
    }
    assert parsed.task_settings == {"parameters": {"model": "m"}}
    assert parsed.secrets == {"secret_parameters": SECRETS}
    assert_no_secret(parsed.service_settings)


def test_left_out_of_the_services_catalogue() -> None:
    service = CustomService(None)
    assert service.hidden_from_catalogue and service.describe()["configurations"] == {}


# -- through the sidecar, with the official client ---------------------------------------------------


@pytest.mark.es
async def test_official_client_against_the_sidecar(sidecar_url: str, aiohttp_server: Any) -> None:
    import asyncio

    fake = FakeModelServer()
    await fake.start(aiohttp_server)
    suffix = uuid.uuid4().hex[:8]
    ids = {task: f"custom-{task}-{suffix}" for task in ("text_embedding", "rerank", "completion")}
    configs = {
        "text_embedding": (fixed(EMBEDDINGS, fake.url), {"parameters": {"model": "bge-small-en"}}),
        "rerank": (fixed(RERANK, fake.url), {}),
        "completion": (fixed(COMPLETION, fake.url), {}),
    }

    def run() -> None:
        client = Elasticsearch(sidecar_url)
        try:
            for task, inference_id in ids.items():
                settings, task_settings = configs[task]
                created = client.inference.put(task_type=task, inference_id=inference_id, inference_config={
                    "service": "custom", "service_settings": settings, "task_settings": task_settings})
                assert created["service"] == "custom" and "secret_parameters" not in created["service_settings"]
                got = client.inference.get(inference_id=inference_id)
                assert SECRET not in json.dumps(got.body)
            assert client.inference.get(inference_id=ids["text_embedding"])["endpoints"][0]["service_settings"][
                "dimensions"] == 4
            embedded = client.inference.inference(inference_id=ids["text_embedding"], input=["one", "two"],
                                                  input_type="search")
            assert [e["embedding"][0] for e in embedded["text_embedding"]] == [1.0, 1.0]
            ranked = client.inference.inference(inference_id=ids["rerank"], query="q", input=["aaaa", "b", "cc"])
            assert [d["index"] for d in ranked["rerank"]] == [1, 2, 0]
            completed = client.inference.inference(inference_id=ids["completion"], input="Say hello")
            assert completed["completion"] == [{"result": "Hello world"}]
            services = client.perform_request("GET", "/_inference/_services").body
            assert "custom" not in {s["service"] for s in services}
            with pytest.raises(BadRequestError) as caught:
                client.inference.put(task_type="completion", inference_id=f"custom-bad-{suffix}", inference_config={
                    "service": "custom", "service_settings": {**configs["completion"][0], "request": "${nope}"}})
            assert caught.value.body["error"]["type"] == "validation_exception"
            assert "Found placeholder [${nope}] in field [request]" in caught.value.body["error"]["reason"]
        finally:
            for inference_id in ids.values():
                client.options(ignore_status=404).inference.delete(inference_id=inference_id)

    await asyncio.to_thread(run)
    assert fake.problems == []


@pytest.mark.es
async def test_update_rotates_secret_parameters_and_merges_parameters(sidecar_url: str, aiohttp_server: Any) -> None:
    import asyncio

    from elasticsearch import ApiError

    fake = FakeModelServer()
    await fake.start(aiohttp_server)
    inference_id = f"custom-update-{uuid.uuid4().hex[:8]}"
    rotated = "sk-rotated-secret-9911"

    def run() -> None:
        client = Elasticsearch(sidecar_url)
        try:
            client.inference.put(task_type="text_embedding", inference_id=inference_id, inference_config={
                "service": "custom", "service_settings": fixed(EMBEDDINGS, fake.url),
                "task_settings": {"parameters": {"model": "bge-small-en", "tier": "free"}}})
            fake.key = rotated  # the server's key changes: the stored one no longer works
            with pytest.raises(ApiError) as refused:
                client.inference.inference(inference_id=inference_id, input=["one"])
            assert refused.value.meta.status == 401
            # A value that is not a string is refused and nothing changes.
            with pytest.raises(BadRequestError) as bad:
                client.inference.update(inference_id=inference_id, inference_config={
                    "service_settings": {"secret_parameters": {"api_key": 7}}})
            assert bad.value.body["error"]["reason"] == (
                "Validation Failed: 1: Map field [secret_parameters] has an entry that is not valid. "
                "Value type is not one of [String].;")
            updated = client.inference.update(inference_id=inference_id, inference_config={
                "service_settings": {"secret_parameters": {"api_key": rotated}},
                "task_settings": {"parameters": {"tier": "paid", "region": "eu"}}})
            assert rotated not in json.dumps(updated.body) and "secret_parameters" not in updated["service_settings"]
            # Parameters merge key by key, the update's values winning.
            assert updated["task_settings"] == {"parameters": {"model": "bge-small-en", "tier": "paid", "region": "eu"}}
            got = client.inference.get(inference_id=inference_id)["endpoints"][0]
            assert got["task_settings"] == updated["task_settings"]
            embedded = client.inference.inference(inference_id=inference_id, input=["one", "two"])
            assert len(embedded["text_embedding"]) == 2
        finally:
            client.options(ignore_status=404).inference.delete(inference_id=inference_id)

    await asyncio.to_thread(run)
    assert fake.problems == []
    assert fake.calls[-1].headers["Authorization"] == f"Bearer {rotated}"
    assert fake.calls[-1].json["model"] == "bge-small-en"


@pytest.mark.parametrize("secret_parameters", [SECRET, [SECRET], {"api_key": 7}])
def test_update_refuses_bad_secret_parameters_without_echoing_them(secret_parameters: Any) -> None:
    service = CustomService(None)
    endpoint = make_endpoint(service, TaskType.COMPLETION, fixed(COMPLETION, "http://127.0.0.1:9"))
    with pytest.raises(EsError) as caught:
        service.update_secrets(endpoint, {"secret_parameters": secret_parameters})
    assert caught.value.status == 400 and caught.value.reason.startswith("Validation Failed: 1: ")
    assert_no_secret(caught.value.to_body())
    with pytest.raises(EsError) as created:  # creating an endpoint reads it the same way
        service.parse("x", TaskType.COMPLETION, {**fixed(COMPLETION, "http://127.0.0.1:9"),
                                                 "secret_parameters": secret_parameters}, {})
    assert created.value.reason == caught.value.reason


def test_update_merges_parameters_over_the_stored_ones() -> None:
    service = CustomService(None)
    endpoint = make_endpoint(service, TaskType.COMPLETION, fixed(COMPLETION, "http://127.0.0.1:9"),
                             {"parameters": {"model": "a", "temperature": 0.1}})
    assert service.merge_task_settings(endpoint, {"parameters": {"temperature": 0.7, "top_k": 3, "model": None}}) == {
        "parameters": {"model": "a", "temperature": 0.7, "top_k": 3}}
    assert service.merge_task_settings(endpoint, {}) == {"parameters": {"model": "a", "temperature": 0.1}}
    with pytest.raises(EsError) as caught:
        service.merge_task_settings(endpoint, {"parameters": {"stop": ["x"]}})
    assert caught.value.reason == (
        "Validation Failed: 1: Map field [parameters] has an entry that is not valid, [stop => [x]]. "
        "Value type of [[x]] is not one of [Boolean, Double, Float, Integer, String].;")
