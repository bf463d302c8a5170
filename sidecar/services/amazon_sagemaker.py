"""Amazon SageMaker: a model deployed on a SageMaker endpoint, called with the SageMaker Runtime
``InvokeEndpoint`` API (Elasticsearch 8.19 and 9.1+).

Elasticsearch's settings: secrets ``access_key`` and ``secret_key``; ``service_settings``
``endpoint_name``, ``region`` and ``api`` (the request/response schema the endpoint speaks;
required), ``target_model``, ``target_container_hostname``, ``inference_component_name``,
``batch_size``; ``task_settings`` ``custom_attributes``, ``enable_explanations``,
``inference_id``, ``session_id``, ``target_variant`` (sent as the runtime's
``X-Amzn-SageMaker-*`` headers).

Schemas (``api``):

* ``openai``: ``text_embedding`` (an OpenAI embeddings body ``{"input", "dimensions"?,
  "user"?}``, answer ``{"data": [{"embedding"}]}``; ``dimensions`` in service settings,
  ``user`` in task settings) and ``completion`` (an OpenAI chat body, answer ``choices``).
* ``elastic``: ``text_embedding`` (``element_type`` ``float``/``byte``/``bit`` required,
  ``similarity``, ``dimensions``), ``sparse_embedding``, ``rerank`` and ``completion``; the body
  is ``{"input", "input_type"?, "query"?, "task_settings"?}`` and the answer is Elasticsearch's own
  inference response (``{"text_embedding": [...]}``, ``{"rerank": [...]}``…). Its task settings
  are only passed per request, never stored.

Both schemas stream ``completion`` and serve ``chat_completion`` through
``InvokeEndpointWithResponseStream`` (``…/invocations-response-stream``): AWS's binary event
stream whose ``PayloadPart`` events carry the model's bytes. ``openai`` endpoints send
Server-Sent Events of ``chat.completion.chunk`` objects (read across part boundaries);
``elastic`` ones one JSON document per part, ``{"completion": [{"delta"}]}`` or, for chat, one
OpenAI-shaped chunk. The chat request goes as OpenAI's chat body (``openai``) or as
Elasticsearch's own unified request (``elastic``).

Failures read as Elasticsearch reports the AWS SDK's exceptions (``SageMakerSchema``): the
runtime's error code picks the status and message (``ValidationError`` → 400 "Received a
validation error from SageMaker for [id]", ``ModelError`` → 424, ``ModelNotReadyException`` →
429, ``ServiceUnavailable`` → 503, ``InternalFailure``/``InternalDependencyException`` → 500,
any other → 500 "Received an error from SageMaker for [id]"), with AWS's message as the cause; a
``ModelStreamError`` or ``InternalStreamFailure`` mid-stream, like a completion stream part
that cannot be parsed, is that generic 500 with the cause attached; an answer that cannot be
read is Elasticsearch's 500 "Failed to translate SageMaker response for [%s]" (sic).

Requests are signed with AWS Signature V4 for the ``sagemaker`` service and go to
``https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{endpoint_name}/invocations``; the
base can be replaced with ``ServiceContext.extras["provider_urls"]["amazon_sagemaker"]`` or
``SIDECAR_PROVIDER_URL_AMAZON_SAGEMAKER``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from ..errors import EsError, status_exception
from ..protocol.registry import register
from ..protocol.service import (
    Completion,
    DenseEmbeddings,
    Endpoint,
    InputType,
    ParsedConfig,
    RankedDoc,
    SparseEmbedding,
    TaskType,
)
from ..protocol.settings import SettingsReader, finish
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.aws import event_stream_messages, sigv4
from ..remote.client import HttpRequest
from ..remote.errors import DEFAULT_POLICY, ErrorPolicy, Redactor, error_message, malformed
from ..remote.openai_style import chat_body, chat_chunk, stream_events, user_messages
from ..remote.responses import MalformedResponse, float_vectors, ranked_docs, require
from ..remote.service import RemoteService
from ..remote.streams import lines_of

TASKS_BY_API = {
    "openai": (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION),
    "elastic": (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION,
                TaskType.CHAT_COMPLETION),
}
ALL_TASKS = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION,
             TaskType.CHAT_COMPLETION)
STREAMING_TASKS = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
T = TypeVar("T")
ELEMENT_TYPES = ("byte", "float", "bit", "bfloat16")
RESULT_KEY = {"float": "text_embedding", "byte": "text_embedding_bytes", "bit": "text_embedding_bits"}
# Task settings → the InvokeEndpoint header that carries each.
HEADERS = {
    "custom_attributes": "X-Amzn-SageMaker-Custom-Attributes",
    "enable_explanations": "X-Amzn-SageMaker-Enable-Explanations",
    "inference_id": "X-Amzn-SageMaker-Inference-Id",
    "session_id": "X-Amzn-SageMaker-Session-Id",
    "target_variant": "X-Amzn-SageMaker-Target-Variant",
}
SERVICE_HEADERS = {
    "target_model": "X-Amzn-SageMaker-Target-Model",
    "target_container_hostname": "X-Amzn-SageMaker-Target-Container-Hostname",
    "inference_component_name": "X-Amzn-SageMaker-Inference-Component",
}
# InvokeEndpointWithResponseStream takes neither a target model nor explanations.
STREAM_HEADERS = ("custom_attributes", "inference_id", "session_id", "target_variant")
STORED_ONLY_PER_REQUEST = (
    "task_settings is only supported during the inference request and cannot be stored in the inference endpoint."
)


# The AWS error codes Elasticsearch names (SageMakerSchema.errorMessageAndStatus): its status,
# its message and the SDK exception it reports as the cause; any other code is the generic one.
AWS_ERRORS = {
    "InternalDependencyException": (500, "Received an internal dependency error", "internal_dependency_exception"),
    "InternalFailure": (500, "Received an internal failure", "internal_failure_exception"),
    "ModelError": (424, "Received a model error", "model_error_exception"),
    "ModelNotReadyException": (429, "Received a model not ready error", "model_not_ready_exception"),
    "ServiceUnavailable": (503, "SageMaker is unavailable", "service_unavailable_exception"),
    "ValidationError": (400, "Received a validation error", "validation_error_exception"),
}
UNKNOWN_AWS_ERROR = (500, "Received an error", "sage_maker_runtime_exception")


def _aws_error(endpoint: Endpoint, status: int, body: bytes, headers: Mapping[str, str]) -> EsError:
    """A failed SageMaker Runtime answer as Elasticsearch reports the AWS SDK's exception."""
    code = (headers.get("x-amzn-ErrorType") or "").split(":")[0]
    message = error_message(body, DEFAULT_POLICY)
    if not code:
        try:
            code = str(orjson.loads(body).get("__type", "")).rpartition("#")[2]
        except (orjson.JSONDecodeError, AttributeError):
            code = ""
    es_status, text, kind = AWS_ERRORS.get(code, UNKNOWN_AWS_ERROR)
    subject = "SageMaker is unavailable" if text.startswith("SageMaker") else f"{text} from SageMaker"
    detail = f"{message or code or 'Unknown error'} (Service: SageMakerRuntime, Status Code: {status}, " \
             f"Request ID: {headers.get('x-amzn-RequestId', '')})"
    return status_exception(es_status, f"{subject} for [{endpoint.inference_id}]",
                            caused_by={"type": kind, "reason": Redactor(endpoint.secrets)(detail)})


POLICY = ErrorPolicy(render=_aws_error)


def _task_settings_configuration() -> dict[str, dict[str, Any]]:
    described = {
        "custom_attributes": ("Custom Attributes",
                              "An opaque informational value forwarded as-is to the model within SageMaker."),
        "enable_explanations": ("Enable Explanations", "JMESPath expression overriding the ClarifyingExplainerConfig "
                                "in the SageMaker Endpoint Configuration."),
        "inference_id": ("Inference ID", "Informational identifying for auditing requests within the SageMaker "
                         "Endpoint."),
        "session_id": ("Session ID", "Creates or reuses an existing Session for SageMaker stateful models."),
        "target_variant": ("Target Variant", "The production variant when calling the SageMaker Endpoint"),
    }
    return {key: cfg.field(label, text, ALL_TASKS) for key, (label, text) in described.items()}


@register
class AmazonSageMakerService(RemoteService):
    name = "amazon_sagemaker"
    display_name = "Amazon SageMaker"
    task_types = ALL_TASKS
    streaming_tasks = STREAMING_TASKS
    secret_keys = ("access_key", "secret_key")
    default_similarity = None
    configuration = cfg.configuration(
        _task_settings_configuration(),
        access_key=cfg.secret(
            "Access Key", "A valid AWS access key that has permissions to use Amazon Bedrock.", ALL_TASKS
        ),
        secret_key=cfg.secret("Secret Key", "A valid AWS secret key that is paired with the access_key.", ALL_TASKS),
        api=cfg.field("API", "The API format that your SageMaker Endpoint expects.", ALL_TASKS, required=True),
        endpoint_name=cfg.field(
            "Endpoint Name", "The name specified when creating the SageMaker Endpoint.", ALL_TASKS, required=True
        ),
        region=cfg.field("Region", "The AWS region that your model or ARN is deployed in.", ALL_TASKS, required=True),
        target_model=cfg.field(
            "Target Model", "The model to request when calling a SageMaker multi-model Endpoint.", ALL_TASKS
        ),
        target_container_hostname=cfg.field(
            "Target Container Hostname",
            "The hostname of the container when calling a SageMaker multi-container Endpoint.",
            ALL_TASKS,
        ),
        batch_size=cfg.field(
            "Batch Size", "The maximum size a single chunk of input can be when chunking input for semantic text.",
            ALL_TASKS, type="int",
        ),
    )

    # -- configuration -----------------------------------------------------------------------
    def parse(
        self,
        inference_id: str,
        task_type: TaskType,
        service_settings: dict[str, Any],
        task_settings: dict[str, Any],
    ) -> ParsedConfig:
        self.check_task_type(task_type)
        ss = SettingsReader(service_settings, common.SERVICE)
        settings = self.read_service_settings(task_type, ss)
        ts = SettingsReader(task_settings, common.TASK)
        task = self._task_settings(settings["api"], task_type, ts, stored=True)
        secret = common.secrets(ss, required=("access_key", "secret_key"))
        finish(self.name, ss, ts)
        return ParsedConfig(common.drop_none(settings), common.drop_none(task), secret)

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        # Per request: the elastic schema passes whatever is left through to the model.
        ts = SettingsReader(task_settings, common.TASK)
        task = self._task_settings(None, task_type, ts, stored=False)
        finish(self.name, ts)
        return common.drop_none(task)

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        out: dict[str, Any] = {
            "endpoint_name": ss.string("endpoint_name", required=True),
            "region": ss.string("region", required=True),
            "api": ss.string("api", required=True),
            "target_model": ss.string("target_model"),
            "target_container_hostname": ss.string("target_container_hostname"),
            "inference_component_name": ss.string("inference_component_name"),
            "batch_size": ss.integer("batch_size", positive=True),
        }
        ss.raise_if_errors()
        api = out["api"]
        if task_type not in TASKS_BY_API.get(api, ()):
            supported = ", ".join(t.value for t in TASKS_BY_API.get(api, ()))
            # Elasticsearch's message names the api and the task the other way round.
            raise EsError(
                405,
                "status_exception",
                f"Task [{api}] is not compatible for service [sagemaker] and api [{task_type.value}]. "
                f"Supported tasks: [[{supported}]]",
            )
        if task_type == TaskType.TEXT_EMBEDDING and api == "openai":
            out["dimensions"] = ss.integer("dimensions", positive=True)
        elif task_type == TaskType.TEXT_EMBEDDING:
            out["dimensions"] = ss.integer("dimensions", positive=True)
            out["dimensions_set_by_user"] = bool(ss.boolean("dimensions_set_by_user"))
            out["similarity"] = common.similarity(ss)
            out["element_type"] = ss.enum("element_type", ELEMENT_TYPES, required=True)
        ss.raise_if_errors()
        return out

    @staticmethod
    def _task_settings(api: str | None, task_type: TaskType, ts: SettingsReader, *, stored: bool) -> dict[str, Any]:
        out: dict[str, Any] = {key: ts.string(key) for key in HEADERS}
        if api == "openai" or (api is None and "user" in ts.values and not stored):
            out["user"] = ts.string("user")
        if api == "elastic" and stored and ts.values:
            ts.values.clear()
            ts.error(STORED_ONLY_PER_REQUEST)
        elif api is None and ts.values:
            out["passthrough"] = dict(ts.values)
            ts.values.clear()
        ts.raise_if_errors()
        return out

    # -- requests ----------------------------------------------------------------------------
    def _request(
        self, endpoint: Endpoint, body: dict[str, Any], task_settings: dict[str, Any], *, stream: bool = False
    ) -> HttpRequest:
        """InvokeEndpoint, or with ``stream`` InvokeEndpointWithResponseStream (its answer is
        an event stream of ``PayloadPart`` events; the model's media type goes in
        ``X-Amzn-SageMaker-Accept``)."""
        settings = endpoint.service_settings
        region = settings["region"]
        base = self.base_url(f"https://runtime.sagemaker.{region}.amazonaws.com")
        action = "invocations-response-stream" if stream else "invocations"
        url = f"{base}/endpoints/{quote(settings['endpoint_name'], safe='')}/{action}"
        effective = self.effective_task_settings(endpoint, task_settings)
        if stream:
            headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Accept": "application/json"}
            named = {key: HEADERS[key] for key in STREAM_HEADERS}
            services = {k: v for k, v in SERVICE_HEADERS.items() if k != "target_model"}
        else:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            named, services = HEADERS, SERVICE_HEADERS
        headers.update({name: settings[key] for key, name in services.items() if settings.get(key)})
        headers.update({name: effective[key] for key, name in named.items() if effective.get(key)})
        return HttpRequest(url, json=body, headers=headers, prepare=sigv4("sagemaker", region, endpoint.secrets),
                           encoded=True)

    def _elastic_body(
        self,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        query: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"input": inputs[0] if len(inputs) == 1 else list(inputs)}
        if input_type is not None:
            body["input_type"] = input_type.value
        if query is not None:
            body["query"] = query
        if task_settings.get("passthrough"):
            body["task_settings"] = task_settings["passthrough"]
        return body

    def _batch_size(self, endpoint: Endpoint) -> int:
        return endpoint.service_settings.get("batch_size") or 256

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = endpoint.service_settings
        effective = self.effective_task_settings(endpoint, task_settings)
        if settings["api"] == "openai":
            context = "Amazon SageMaker OpenAI embeddings response"

            def build(batch: list[str]) -> HttpRequest:
                body: dict[str, Any] = {"input": batch[0] if len(batch) == 1 else batch}
                common.put_set(body, effective, "user")
                common.put_set(body, settings, "dimensions")
                return self._request(endpoint, body, task_settings)

            def parse(obj: Any) -> list[list[float]]:
                data = sorted(require(obj, "data", list, context), key=lambda item: item.get("index", 0))
                return float_vectors([require(item, "embedding", list, context) for item in data], context)

            element_type = "float"
        else:
            element_type = settings.get("element_type", "float")
            key = RESULT_KEY.get(element_type, "text_embedding")
            context = "Amazon SageMaker Elastic embeddings response"

            def build(batch: list[str]) -> HttpRequest:
                return self._request(endpoint, self._elastic_body(batch, input_type, effective), task_settings)

            def parse(obj: Any) -> list[list[float]]:
                _only(obj, key, context)
                rows = [require(item, "embedding", list, context) for item in require(obj, key, list, context)]
                vectors = float_vectors(rows, context)
                if element_type != "float" and any(not -128 <= v <= 127 for row in vectors for v in row):
                    raise MalformedResponse(f"Value out of range for a byte in {context}")
                return vectors

        return await _translated(endpoint, self.embed_batches(
            endpoint, inputs, build, parse, timeout=timeout, element_type=element_type,
            batch_size=self._batch_size(endpoint), policy=POLICY,
        ))

    async def sparse_embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[SparseEmbedding]:
        effective = self.effective_task_settings(endpoint, task_settings)
        context = "Amazon SageMaker Elastic sparse embeddings response"

        def build(batch: list[str]) -> HttpRequest:
            return self._request(endpoint, self._elastic_body(batch, input_type, effective), task_settings)

        def parse(obj: Any) -> list[SparseEmbedding]:
            _only(obj, "sparse_embedding", context)
            out = []
            for item in require(obj, "sparse_embedding", list, context):
                tokens = require(item, "embedding", dict, context)
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in tokens.values()):
                    raise MalformedResponse(f"Expected numeric token weights in {context}")
                out.append(SparseEmbedding({k: float(v) for k, v in tokens.items()}, bool(item.get("is_truncated"))))
            return out

        pairs = await _translated(endpoint, self.run_batches(endpoint, inputs, build, parse, timeout=timeout,
                                                             batch_size=self._batch_size(endpoint), policy=POLICY))
        return [embedding for embedding, _ in pairs]

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        effective = self.effective_task_settings(endpoint, task_settings)
        body = self._elastic_body(inputs, None, effective, query=query)
        context = "Amazon SageMaker Elastic rerank response"
        top_n = effective.get("top_n")

        def parse(obj: Any) -> list[RankedDoc]:
            _only(obj, "rerank", context)
            items = require(obj, "rerank", list, context)
            with_text = bool(effective.get("return_documents", True))
            return ranked_docs(items, inputs, context, with_text=with_text, text_of=lambda item: item.get("text"),
                               top_n=top_n)

        return await _translated(endpoint, self.call(endpoint, self._request(endpoint, body, task_settings), parse,
                                                     timeout=timeout, policy=POLICY))

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        effective = self.effective_task_settings(endpoint, task_settings)
        parse: Callable[[Any], list[Completion]]
        if endpoint.service_settings["api"] == "openai":
            body: dict[str, Any] = {
                "messages": [{"content": text, "role": "user"} for text in inputs],
                "n": 1,
                "stream": False,
            }
            common.put_set(body, effective, "user")
            context = "Amazon SageMaker OpenAI chat completions response"

            def parse(obj: Any) -> list[Completion]:
                choices = require(obj, "choices", list, context)
                message = require(require(choices, 0, dict, context), "message", dict, context)
                return [Completion(require(message, "content", str, context))]
        else:
            body = self._elastic_body(inputs, None, effective)
            context = "Amazon SageMaker Elastic completion response"

            def parse(obj: Any) -> list[Completion]:
                _only(obj, "completion", context)
                return [Completion(require(item, "result", str, context))
                        for item in require(obj, "completion", list, context)]

        return await _translated(endpoint, self.call(endpoint, self._request(endpoint, body, task_settings), parse,
                                                     timeout=timeout, policy=POLICY))

    # -- streaming ---------------------------------------------------------------------------
    def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        if endpoint.service_settings["api"] == "openai":
            body = chat_body({"messages": user_messages(inputs)}, model=None, stream=True,
                             user=task_settings.get("user"))
        else:
            body = self._elastic_body(inputs, None, task_settings)
        return self._stream(endpoint, self._request(endpoint, body, task_settings, stream=True), timeout, chat=False)

    def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        if endpoint.service_settings["api"] == "openai":
            # The unified request as OpenAI's chat body; the endpoint's model needs no name.
            body = chat_body(request, model=None, stream=True, user=endpoint.task_settings.get("user"))
        else:
            body = dict(request)  # the elastic schema takes Elasticsearch's own request
        upstream = self._request(endpoint, body, {}, stream=True)
        return self._stream(endpoint, upstream, timeout, chat=True)

    async def _stream(
        self, endpoint: Endpoint, request: HttpRequest, timeout: float | None, *, chat: bool
    ) -> AsyncIterator[dict[str, Any]]:
        events = self._events(endpoint, request, timeout, chat=chat)
        async with contextlib.aclosing(events):
            try:
                async for event in events:
                    yield event
            except EsError as exc:
                # A completion stream that cannot be read is the generic SageMaker failure.
                if chat or exc.type != "illegal_state_exception":
                    raise
                raise _stream_error(endpoint, "x_content_parse_exception", exc.reason) from None

    async def _events(
        self, endpoint: Endpoint, request: HttpRequest, timeout: float | None, *, chat: bool
    ) -> AsyncIterator[dict[str, Any]]:
        chunks = self.http.stream_chunks(endpoint, request, timeout=timeout, policy=POLICY,
                                         default_rpm=self.rpm(endpoint.task_type))
        parts = _payload_parts(endpoint, event_stream_messages(endpoint, chunks))
        if endpoint.service_settings["api"] == "openai":
            # The model's Server-Sent Events, as OpenAI streams them, cut into payload parts.
            events = stream_events(endpoint, lines_of(parts), chat=chat)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
            return
        async with contextlib.aclosing(parts):
            async for part in parts:
                if chat:
                    yield _elastic_chat_chunk(endpoint, part)
                    continue
                deltas = _elastic_deltas(endpoint, part)
                if deltas:
                    yield {"completion": [{"delta": d} for d in deltas]}

def _only(obj: Any, key: str, context: str) -> None:
    """The elastic schema's answers hold exactly one known field (Elasticsearch's parser fails
    on unknown fields)."""
    if isinstance(obj, dict):
        unknown = [k for k in obj if k != key]
        if unknown:
            raise MalformedResponse(f"Unknown field [{unknown[0]}] in {context}")



async def _translated(endpoint: Endpoint, call: Awaitable[T]) -> T:
    """``call``, with an answer that cannot be read reported as Elasticsearch's
    ``SageMakerSchema.response`` reports it (its message keeps the ``[%s]`` it never fills)."""
    try:
        return await call
    except EsError as exc:
        if exc.type != "illegal_state_exception":
            raise
        raise status_exception(500, "Failed to translate SageMaker response for [%s]",
                               caused_by={"type": exc.type, "reason": exc.reason}) from None

def _stream_error(endpoint: Endpoint, kind: str, detail: str) -> EsError:
    """How Elasticsearch ends a completion stream that failed after it started: the SDK's
    exception (or the parser's) is not one it names, so it is the generic SageMaker 500."""
    return status_exception(500, f"Received an error from SageMaker for [{endpoint.inference_id}]",
                            caused_by={"type": kind, "reason": Redactor(endpoint.secrets)(detail)})


async def _payload_parts(endpoint: Endpoint, messages: AsyncIterator[tuple[dict[str, Any], bytes]]) -> AsyncIterator[bytes]:
    """The model's own bytes out of an InvokeEndpointWithResponseStream answer: the payload of
    each ``PayloadPart`` event, in order. A ``ModelStreamError`` or ``InternalStreamFailure``
    ends the stream with Elasticsearch's error for an AWS failure it has no name for."""
    async with contextlib.aclosing(messages):
        async for headers, payload in messages:
            if headers.get(":message-type", "event") != "event":
                name = str(headers.get(":exception-type") or headers.get(":error-code") or "SageMakerRuntime")
                try:
                    message = orjson.loads(payload).get("Message")
                except (orjson.JSONDecodeError, AttributeError):
                    message = None
                kind = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.removesuffix("Exception")).lower()
                raise _stream_error(endpoint, f"{kind}_exception", str(message or name))
            if headers.get(":event-type") == "PayloadPart":
                yield payload


def _elastic_deltas(endpoint: Endpoint, part: bytes) -> list[str]:
    """One payload part of the elastic schema's streamed completion: ``{"completion": [{"delta":
    text}, ...]}`` (or one object instead of the array); nothing else may be in it."""
    context = "Amazon SageMaker Elastic streamed completion"
    try:
        obj = orjson.loads(part)
        _only(obj, "completion", context)
        items = require(obj, "completion", (list, dict), context)
        items = [items] if isinstance(items, dict) else items
        deltas = [require(item, "delta", str, context) for item in items]
        for item in items:
            _only(item, "delta", context)
        return deltas
    except (orjson.JSONDecodeError, MalformedResponse) as exc:
        raise _stream_error(endpoint, "x_content_parse_exception", str(exc)) from None


def _elastic_chat_chunk(endpoint: Endpoint, part: bytes) -> dict[str, Any]:
    """One payload part of the elastic schema's chat completion: one OpenAI-shaped chunk."""
    try:
        return chat_chunk(orjson.loads(part))
    except (orjson.JSONDecodeError, MalformedResponse) as exc:
        raise malformed(endpoint, exc) from None
