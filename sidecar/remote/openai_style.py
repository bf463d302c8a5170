"""The OpenAI wire format, shared by every service that speaks it (OpenAI, Azure OpenAI,
Azure AI Studio, Hugging Face chat, Mistral, DeepSeek, watsonx chat, …).

* the ``chat_completion`` request body Elasticsearch accepts, validated (:func:`parse_chat_request`)
  and rendered for the provider (:func:`chat_body`);
* embeddings and chat completion responses;
* streamed ``chat.completion.chunk`` events, turned into Elasticsearch's completion deltas or
  re-emitted as Elasticsearch emits them for ``chat_completion``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from ..protocol.service import Completion, DenseEmbeddings, Endpoint, InputType
from ..protocol.settings import SettingsReader
from .client import HttpRequest
from .common_settings import string_map
from .errors import BAD_REQUEST, INPUT_VALIDATION, SERVER_BUSY, ErrorPolicy, malformed, stream_error
from .responses import MalformedResponse, float_vectors, require
from .service import RemoteService
from .streams import json_event, sse_events

CONTENT_TOO_LARGE_MESSAGE = "Please reduce your prompt; or completion length."


def _rate_limit_detail(headers: Mapping[str, str]) -> str:
    def h(name: str) -> str:
        return headers.get(name, "unknown")

    return (
        f"Token limit [{h('x-ratelimit-limit-tokens')}], remaining tokens [{h('x-ratelimit-remaining-tokens')}]. "
        f"Request limit [{h('x-ratelimit-limit-requests')}], remaining requests [{h('x-ratelimit-remaining-requests')}]"
    )


def _too_large(status: int, message: str | None) -> bool:
    return status == 413 or (status == 400 and bool(message) and CONTENT_TOO_LARGE_MESSAGE in message)


# Elasticsearch's OpenAiResponseHandler.
POLICY = ErrorPolicy(
    messages={400: BAD_REQUEST, 422: INPUT_VALIDATION, 503: SERVER_BUSY},
    too_large=_too_large,
    rate_limit_detail=_rate_limit_detail,
)


# -- embeddings --------------------------------------------------------------------------------


def embeddings_body(
    inputs: Sequence[str], model: str | None, *, user: str | None = None, dimensions: int | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": list(inputs)}
    if model is not None:
        body["model"] = model
    if user:
        body["user"] = user
    if dimensions is not None:
        body["dimensions"] = dimensions
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def parse_embeddings(obj: Any, context: str = "OpenAI embeddings response") -> list[list[float]]:
    data = require(obj, "data", list, context)
    items = [require(data, i, dict, context) for i in range(len(data))]
    if all(isinstance(item.get("index"), int) for item in items):
        items.sort(key=lambda item: item["index"])
    return float_vectors([require(item, "embedding", list, context) for item in items], context)


# -- completion --------------------------------------------------------------------------------


def user_messages(inputs: Sequence[str]) -> list[dict[str, Any]]:
    return [{"content": text, "role": "user"} for text in inputs]


def parse_completion(obj: Any, context: str = "OpenAI chat completions response") -> str:
    choices = require(obj, "choices", list, context)
    message = require(require(choices, 0, dict, context), "message", dict, context)
    return require(message, "content", str, context)


def completion_deltas(obj: Any) -> list[str]:
    """The text deltas of one streamed ``chat.completion.chunk``."""
    out = []
    for choice in obj.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            out.append(content)
    return out


def _opt(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def chat_chunk(obj: Any) -> dict[str, Any]:
    """A provider's chunk as Elasticsearch re-emits it (StreamingUnifiedChatCompletionResults)."""
    if not isinstance(obj, dict):
        raise MalformedResponse("Expected a JSON object in the streamed chat completion response")
    out: dict[str, Any] = {"id": obj.get("id")}
    choices = obj.get("choices")
    if choices is not None:
        if not isinstance(choices, list):
            raise MalformedResponse("Field [choices] in the streamed chat completion response has an unexpected type")
        out["choices"] = [_chat_choice(c) for c in choices]
    out["model"] = obj.get("model")
    out["object"] = obj.get("object")
    usage = obj.get("usage")
    if isinstance(usage, dict):
        rendered = {
            "completion_tokens": usage.get("completion_tokens", 0),
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is not None:
            rendered["prompt_tokens_details"] = {"cached_tokens": cached}
        out["usage"] = rendered
    return out


def _chat_choice(choice: Any) -> dict[str, Any]:
    if not isinstance(choice, dict):
        raise MalformedResponse("Expected a choice object in the streamed chat completion response")
    raw = choice.get("delta") or {}
    delta: dict[str, Any] = {}
    for key in ("content", "refusal", "role", "reasoning"):
        _opt(delta, key, raw.get(key))
    calls = raw.get("tool_calls")
    if isinstance(calls, list) and calls:
        delta["tool_calls"] = [_tool_call(c) for c in calls if isinstance(c, dict)]
    out: dict[str, Any] = {"delta": delta}
    _opt(out, "finish_reason", choice.get("finish_reason"))
    out["index"] = choice.get("index", 0)
    return out


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"index": call.get("index", 0)}
    _opt(out, "id", call.get("id"))
    function = call.get("function")
    if isinstance(function, dict):
        rendered: dict[str, Any] = {}
        _opt(rendered, "arguments", function.get("arguments"))
        _opt(rendered, "name", function.get("name"))
        out["function"] = rendered
    out["type"] = call.get("type")
    return out


async def stream_events(
    endpoint: Endpoint, lines: AsyncIterator[bytes], *, chat: bool
) -> AsyncIterator[dict[str, Any]]:
    """Turn an OpenAI-style SSE stream into Elasticsearch stream payloads: completion deltas
    (``{"completion":[{"delta":...}]}``) or, with ``chat``, chat completion chunks."""
    async for event in sse_events(lines):
        if event.data.strip() == "[DONE]":
            return
        obj = json_event(endpoint, event.data)
        if isinstance(obj, dict) and obj.get("error"):
            raise stream_error(endpoint, obj)
        try:
            if chat:
                yield chat_chunk(obj)
                continue
            deltas = completion_deltas(obj) if isinstance(obj, dict) else []
        except MalformedResponse as exc:
            raise malformed(endpoint, exc) from None
        if deltas:
            yield {"completion": [{"delta": d} for d in deltas]}


# -- chat_completion requests ------------------------------------------------------------------


def chat_body(
    request: Mapping[str, Any],
    *,
    model: str | None,
    stream: bool,
    user: str | None = None,
    max_tokens_field: str = "max_completion_tokens",
    stream_options: bool = True,
) -> dict[str, Any]:
    """The upstream body for a validated chat request, in the order Elasticsearch writes it
    (``n`` is always 1; streaming asks for usage)."""
    body: dict[str, Any] = {"messages": request["messages"]}
    if request.get("stop"):
        body["stop"] = request["stop"]
    for key in ("temperature", "tool_choice"):
        if request.get(key) is not None:
            body[key] = request[key]
    if request.get("tools"):
        body["tools"] = request["tools"]
    if request.get("top_p") is not None:
        body["top_p"] = request["top_p"]
    if request.get("max_completion_tokens") is not None:
        body[max_tokens_field] = request["max_completion_tokens"]
    if model is not None:
        body["model"] = model
    body["n"] = 1
    body["stream"] = stream
    if stream and stream_options:
        body["stream_options"] = {"include_usage": True}
    if user:
        body["user"] = user
    return body


# -- task settings -----------------------------------------------------------------------------


def user_and_headers(ts: SettingsReader) -> dict[str, Any]:
    """Elasticsearch's ``OpenAiTaskSettings``: ``user`` (sent in the body) and ``headers``
    (string values, added to every request)."""
    return {"user": ts.string("user"), "headers": string_map(ts, "headers")}


# -- the service base --------------------------------------------------------------------------


class OpenAiStyle(RemoteService):
    """A service whose embeddings and chat endpoints speak OpenAI's format. Subclasses say
    where to send (:meth:`request_url`), how to authenticate (:meth:`auth_headers`) and which
    model to name (:meth:`model_for`)."""

    policy: ClassVar[ErrorPolicy] = POLICY
    # Some providers still call it max_tokens.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    # Whether ``stream_options.include_usage`` may be sent.
    stream_options: ClassVar[bool] = True
    # Whether the chat request's ``model`` replaces the endpoint's model.
    request_model_wins: ClassVar[bool] = True

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        """``kind`` is ``embeddings`` or ``chat``."""
        raise NotImplementedError

    def auth_headers(self, endpoint: Endpoint) -> dict[str, str]:
        return {"Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}"}

    def model_for(self, endpoint: Endpoint) -> str | None:
        return endpoint.service_settings.get("model_id")

    def embeddings_extra(self, endpoint: Endpoint, task_settings: dict[str, Any]) -> dict[str, Any]:
        """Extra embedding body fields: ``user``, and ``dimensions`` only when the user set it
        (models such as text-embedding-ada-002 reject the field)."""
        settings = endpoint.service_settings
        dimensions = settings.get("dimensions") if settings.get("dimensions_set_by_user") else None
        return {"user": task_settings.get("user"), "dimensions": dimensions}

    def request(self, endpoint: Endpoint, kind: str, body: dict[str, Any]) -> HttpRequest:
        """The call, with the endpoint's ``headers`` task setting (where the service has one)
        added after authentication, as Elasticsearch sets them."""
        headers = self.auth_headers(endpoint)
        headers.update(endpoint.task_settings.get("headers") or {})
        return HttpRequest(self.request_url(endpoint, kind), json=body, headers=headers)

    # -- tasks ---------------------------------------------------------------------------------
    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = self.effective_task_settings(endpoint, task_settings)
        extra = self.embeddings_extra(endpoint, settings)
        model = self.model_for(endpoint)

        def build(batch: list[str]) -> HttpRequest:
            return self.request(endpoint, "embeddings", embeddings_body(batch, model, **extra))

        return await self.embed_batches(
            endpoint, inputs, build, parse_embeddings, timeout=timeout, policy=self.policy, truncate=True
        )

    def chat_request(self, endpoint: Endpoint, request: dict[str, Any], settings: dict[str, Any], stream: bool):
        model = self.model_for(endpoint)
        if self.request_model_wins and request.get("model"):
            model = request["model"]
        body = chat_body(
            request,
            model=model,
            stream=stream,
            user=settings.get("user"),
            max_tokens_field=self.max_tokens_field,
            stream_options=self.stream_options,
        )
        return self.request(endpoint, "chat", body)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        settings = self.effective_task_settings(endpoint, task_settings)
        req = self.chat_request(endpoint, {"messages": user_messages(inputs)}, settings, stream=False)
        text = await self.call(endpoint, req, parse_completion, timeout=timeout, policy=self.policy)
        return [Completion(text)]

    async def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        req = self.chat_request(endpoint, {"messages": user_messages(inputs)}, task_settings, stream=True)
        lines = self.lines(endpoint, req, timeout=timeout, policy=self.policy)
        async for event in stream_events(endpoint, lines, chat=False):
            yield event

    async def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        req = self.chat_request(endpoint, request, endpoint.task_settings, stream=True)
        lines = self.lines(endpoint, req, timeout=timeout, policy=self.policy)
        async for event in stream_events(endpoint, lines, chat=True):
            yield event
