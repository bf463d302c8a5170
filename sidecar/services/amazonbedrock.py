"""Amazon Bedrock: ``text_embedding`` (InvokeModel), ``completion`` (Converse API; streamed
with the Converse Stream API) and, from Elasticsearch 9.2, ``chat_completion`` (Converse Stream).

Elasticsearch's settings: secrets ``access_key`` and ``secret_key``; ``service_settings``
``region``, ``provider``, ``model`` (all required), embeddings ``dimensions``, ``similarity``,
``max_input_tokens``; ``rate_limit`` (240 a minute). Completion ``task_settings``:
``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``.

Providers: ``amazontitan`` and ``cohere`` embed; ``anthropic``, ``ai21labs``, ``amazontitan``,
``cohere``, ``meta`` and ``mistral`` complete. Requests are signed with AWS Signature V4
(botocore's signer) for the ``bedrock`` service and go to
``https://bedrock-runtime.{region}.amazonaws.com/model/{model}/{invoke|converse|converse-stream}``;
that base can be replaced with ``ServiceContext.extras["provider_urls"]["amazonbedrock"]`` or
``SIDECAR_PROVIDER_URL_AMAZONBEDROCK``.

A streamed completion arrives as AWS's binary ``application/vnd.amazon.eventstream`` (decoded by
botocore's event-stream parser). As in Elasticsearch, every ``contentBlockDelta`` event becomes
one ``{"completion":[{"delta": text}]}`` event and the other events are skipped; an exception
the stream reports (``throttlingException``, ``modelStreamErrorException``, …) ends it with a
500 error named after the exception (``throttling_exception``) carrying AWS's message.

``chat_completion`` sends the unified chat request as a Converse Stream body (system messages in
``system``, tool calls and tool results as ``toolUse`` / ``toolResult`` blocks, ``tools`` as
``toolConfig``, ``max_completion_tokens``/``temperature``/``top_p``/``stop`` in
``inferenceConfig``) and re-emits the events as Elasticsearch does
(``AmazonBedrockUnifiedStreamingChatProcessor``): the role on ``messageStart``, text and tool
input deltas with the content block index as the choice index, Elasticsearch's own finish reasons
(``FinishReasonStop``, ``FinishReasonToolCalls``, …) on ``messageStop``, and the token usage of
the ``metadata`` event.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import EsError, status_exception
from ..protocol.registry import register
from ..protocol.service import Completion, DenseEmbeddings, Endpoint, InputType, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.aws import EVENT_STREAM, event_stream_messages, sigv4
from ..remote.client import HttpRequest
from ..remote.converse import converse_chat_body, converse_chat_chunk
from ..remote.errors import ErrorPolicy, Redactor, malformed
from ..remote.responses import MalformedResponse, float_vectors, require
from ..remote.service import RemoteService

PROVIDERS = ("amazontitan", "cohere", "anthropic", "ai21labs", "meta", "mistral")
EMBEDDING_PROVIDERS = ("amazontitan", "cohere")
COHERE_INPUT_TYPES = {
    InputType.INGEST: "search_document",
    InputType.SEARCH: "search_query",
    InputType.CLASSIFICATION: "classification",
    InputType.CLUSTERING: "clustering",
}
# Elasticsearch's defaults per embedding provider.
DEFAULT_SIMILARITY = {"amazontitan": "cosine", "cohere": "dot_product"}
POLICY = ErrorPolicy()


@register
class AmazonBedrockService(RemoteService):
    name = "amazonbedrock"
    display_name = "Amazon Bedrock"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    task_types_since = {TaskType.CHAT_COMPLETION: (9, 2)}
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    secret_keys = ("access_key", "secret_key")
    default_rpm = {t: 240 for t in task_types}
    configuration = cfg.configuration(
        cfg.rate_limit(
            task_types, "By default, the amazonbedrock service sets the number of requests allowed per minute to 240."
        ),
        provider=cfg.field("Provider", "The model provider for your deployment.", task_types, required=True),
        model=cfg.field(
            "Model", "The base model ID or an ARN to a custom model based on a foundational model.", task_types,
            required=True,
        ),
        region=cfg.field("Region", "The region that your model or ARN is deployed in.", task_types, required=True),
        access_key=cfg.secret(
            "Access Key", "A valid AWS access key that has permissions to use Amazon Bedrock.", task_types
        ),
        secret_key=cfg.secret("Secret Key", "A valid AWS secret key that is paired with the access_key.", task_types),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        region = ss.string("region", required=True)
        model = ss.string("model", required=True)
        provider = ss.enum("provider", PROVIDERS, required=True)
        if provider and task_type in (TaskType.TEXT_EMBEDDING,) and provider not in EMBEDDING_PROVIDERS:
            ss.error(f"The [{task_type.value}] task type for provider [{provider}] is not available")
        out: dict[str, Any] = {"region": region, "model": model, "provider": provider}
        if task_type == TaskType.TEXT_EMBEDDING:
            out.update(common.embedding_fields(ss, DEFAULT_SIMILARITY.get(provider or "", "cosine")))
        out["rate_limit"] = common.rate_limit(ss, self.name, self.rpm(task_type))
        return out

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type not in (TaskType.COMPLETION, TaskType.CHAT_COMPLETION):
            return {}
        return {
            "max_new_tokens": ts.integer("max_new_tokens", positive=True),
            "temperature": ts.number("temperature"),
            "top_p": ts.number("top_p"),
            "top_k": ts.number("top_k"),
        }

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        return common.secrets(ss, required=("access_key", "secret_key"))

    # -- requests ----------------------------------------------------------------------------
    def _request(
        self, endpoint: Endpoint, action: str, body: dict[str, Any], accept: str = "application/json"
    ) -> HttpRequest:
        settings = endpoint.service_settings
        region = settings["region"]
        base = self.base_url(f"https://bedrock-runtime.{region}.amazonaws.com")
        url = f"{base}/model/{quote(settings['model'], safe='')}/{action}"

        return HttpRequest(
            url,
            json=body,
            headers={"Content-Type": "application/json", "Accept": accept},
            prepare=sigv4("bedrock", region, endpoint.secrets),
            encoded=True,
        )

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        provider = endpoint.service_settings["provider"]
        context = "Amazon Bedrock embeddings response"
        if provider == "cohere":

            def build(batch: list[str]) -> HttpRequest:
                kind = COHERE_INPUT_TYPES.get(input_type, "search_document") if input_type else "search_document"
                return self._request(endpoint, "invoke", {"texts": batch, "input_type": kind})

            def parse(obj: Any) -> list[list[float]]:
                return float_vectors(require(obj, "embeddings", list, context), context)

            batch_size = 96
        else:
            settings = endpoint.service_settings

            def build(batch: list[str]) -> HttpRequest:
                body: dict[str, Any] = {"inputText": batch[0]}
                if settings.get("dimensions_set_by_user"):
                    body["dimensions"] = settings["dimensions"]
                return self._request(endpoint, "invoke", body)

            def parse(obj: Any) -> list[list[float]]:
                return float_vectors([require(obj, "embedding", list, context)], context)

            batch_size = 1  # Titan embeds one text per call
        return await self.embed_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=POLICY, batch_size=batch_size
        )

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        body = self._converse_body(endpoint, inputs, self.effective_task_settings(endpoint, task_settings))

        def parse(obj: Any) -> list[Completion]:
            context = "Amazon Bedrock converse response"
            message = require(require(obj, "output", dict, context), "message", dict, context)
            texts = [c["text"] for c in require(message, "content", list, context) if isinstance(c, dict) and "text" in c]
            if not texts or not all(isinstance(t, str) for t in texts):
                raise MalformedResponse(f"Failed to find required field [text] in {context}")
            return [Completion("".join(texts))]

        return await self.call(endpoint, self._request(endpoint, "converse", body), parse, timeout=timeout, policy=POLICY)

    def _converse_body(self, endpoint: Endpoint, inputs: Sequence[str], settings: dict[str, Any]) -> dict[str, Any]:
        if endpoint.service_settings.get("provider") not in PROVIDERS:
            raise status_exception(400, "Unknown Amazon Bedrock provider")
        config: dict[str, Any] = {}
        for key, name in (("max_new_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
            if settings.get(key) is not None:
                config[name] = settings[key]
        body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": text} for text in inputs]}]}
        if config:
            body["inferenceConfig"] = config
        if settings.get("top_k") is not None:
            body["additionalModelRequestFields"] = {"top_k": settings["top_k"]}
        return body

    def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        body = self._converse_body(endpoint, inputs, task_settings)  # bad input fails before any event
        request = self._request(endpoint, "converse-stream", body, accept=EVENT_STREAM)
        return self._deltas(endpoint, request, timeout)

    def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        body = converse_chat_body(request, endpoint.task_settings)
        upstream = self._request(endpoint, "converse-stream", body, accept=EVENT_STREAM)
        return self._chat_chunks(endpoint, upstream, timeout)

    async def _deltas(self, endpoint: Endpoint, request: HttpRequest, timeout: float | None) -> AsyncIterator[dict[str, Any]]:
        async for headers, payload in self._converse_stream(endpoint, request, timeout):
            text = converse_stream_delta(endpoint, headers, payload)
            if text is not None:
                yield {"completion": [{"delta": text}]}

    async def _chat_chunks(self, endpoint: Endpoint, request: HttpRequest, timeout: float | None) -> AsyncIterator[dict[str, Any]]:
        async for headers, payload in self._converse_stream(endpoint, request, timeout):
            raise_failure(endpoint, headers, payload)
            chunk = converse_chat_chunk(endpoint, headers.get(":event-type"), payload)
            if chunk is not None:
                yield chunk

    def _converse_stream(
        self, endpoint: Endpoint, request: HttpRequest, timeout: float | None
    ) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
        chunks = self.http.stream_chunks(
            endpoint, request, timeout=timeout, policy=POLICY, default_rpm=self.rpm(endpoint.task_type)
        )
        return event_stream_messages(endpoint, chunks)


def converse_stream_delta(endpoint: Endpoint, headers: dict[str, Any], payload: bytes) -> str | None:
    """The text of one Converse Stream message (None for the events that carry none); an
    exception or error message raises Elasticsearch's error for it."""
    raise_failure(endpoint, headers, payload)
    if headers.get(":event-type") != "contentBlockDelta":
        return None
    try:
        delta = orjson.loads(payload).get("delta")
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise malformed(endpoint, exc) from None
    text = delta.get("text") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else None


def raise_failure(endpoint: Endpoint, headers: dict[str, Any], payload: bytes) -> None:
    """Elasticsearch's error for an exception or error message of the stream; nothing for events."""
    kind = headers.get(":message-type", "event")
    if kind == "event":
        return
    if kind == "exception":
        name = str(headers.get(":exception-type") or "unknownException")
        try:
            message = orjson.loads(payload).get("message")
        except (orjson.JSONDecodeError, AttributeError):
            message = None
    else:  # "error"
        name = str(headers.get(":error-code") or "unknownError")
        message = headers.get(":error-message")
    reason = message if isinstance(message, str) and message else name
    raise EsError(500, _exception_name(name), Redactor(endpoint.secrets)(reason))


def _exception_name(aws_name: str) -> str:
    """``throttlingException`` -> ``throttling_exception`` (how Elasticsearch names the AWS
    SDK exception in an error body)."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", aws_name).lower()
    return name if name.endswith("exception") else f"{name}_exception"
