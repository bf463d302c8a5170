"""Anthropic: ``completion`` and (Elasticsearch 9.2+) ``chat_completion``, both streamed, through
the Messages API (the chat translation is :mod:`sidecar.remote.anthropic_messages`).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``rate_limit`` (50 a minute); ``task_settings`` ``max_tokens`` (required when the endpoint is
created, optional in a request's override; a chat request's ``max_completion_tokens`` wins),
``temperature``, ``top_k``, ``top_p``.

Requests go to ``https://api.anthropic.com/v1/messages`` with ``x-api-key`` and
``anthropic-version: 2023-06-01``; the base can be redirected with
``ServiceContext.extras["provider_urls"]["anthropic"]`` or ``SIDECAR_PROVIDER_URL_ANTHROPIC``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import Completion, Endpoint, TaskType
from ..protocol.settings import SettingsReader, finish
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.anthropic_messages import chat_body, chat_events
from ..remote.client import HttpRequest
from ..remote.errors import SERVER_BUSY, ErrorPolicy, stream_error
from ..remote.responses import MalformedResponse, require
from ..remote.service import RemoteService
from ..remote.streams import json_event, sse_events

DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


def _rate_limit_detail(headers: Any) -> str:
    def h(name: str) -> str:
        return headers.get(f"anthropic-ratelimit-{name}", "unknown")

    return (
        f"Requests limit [{h('requests-limit')}], remaining requests [{h('requests-remaining')}]. "
        f"Input tokens limit [{h('input-tokens-limit')}], remaining input tokens [{h('input-tokens-remaining')}]"
    )


POLICY = ErrorPolicy(messages={529: SERVER_BUSY}, rate_limit_detail=_rate_limit_detail)


@register
class AnthropicService(RemoteService):
    name = "anthropic"
    display_name = "Anthropic"
    task_types = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    task_types_since = {TaskType.CHAT_COMPLETION: (9, 2)}
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {TaskType.COMPLETION: 50, TaskType.CHAT_COMPLETION: 50}
    configuration = cfg.configuration(
        cfg.model_id(task_types),
        cfg.api_key(task_types),
        cfg.rate_limit(
            task_types, "By default, the anthropic service sets the number of requests allowed per minute to 50."
        ),
        max_tokens=cfg.field(
            "Max Tokens", "The maximum number of tokens to generate before stopping.", task_types, type="int",
            required=True,
        ),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return {
            "model_id": ss.string("model_id", required=True),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader, required: bool = True) -> dict[str, Any]:
        return {
            "max_tokens": ts.integer("max_tokens", required=required),
            "temperature": ts.number("temperature"),
            "top_k": ts.integer("top_k"),
            "top_p": ts.number("top_p"),
        }

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        """A request's override: ``max_tokens`` may be left out (the endpoint has one)."""
        ts = SettingsReader(task_settings, common.TASK)
        settings = self.read_task_settings(task_type, ts, required=False)
        finish(self.name, ts)
        return common.drop_none(settings)

    def _post(self, endpoint: Endpoint, body: dict[str, Any]) -> HttpRequest:
        headers = {"x-api-key": endpoint.secrets.get("api_key", ""), "anthropic-version": API_VERSION}
        return HttpRequest(f"{self.base_url(DEFAULT_BASE)}/v1/messages", json=body, headers=headers)

    def _request(self, endpoint: Endpoint, inputs: Sequence[str], settings: dict[str, Any], stream: bool) -> HttpRequest:
        body: dict[str, Any] = {
            "messages": [{"role": "user", "content": text} for text in inputs],
            "model": endpoint.service_settings.get("model_id"),
            "max_tokens": settings.get("max_tokens"),
        }
        for key in ("temperature", "top_p", "top_k"):
            if settings.get(key) is not None:
                body[key] = settings[key]
        if stream:
            body["stream"] = True
        return self._post(endpoint, body)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        settings = self.effective_task_settings(endpoint, task_settings)

        def parse(obj: Any) -> list[Completion]:
            context = "Anthropic chat completions response"
            blocks = require(obj, "content", list, context)
            texts = [require(b, "text", str, context) for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            if not texts:
                raise MalformedResponse(f"Failed to find required field [text] in {context}")
            return [Completion(text) for text in texts]

        request = self._request(endpoint, inputs, settings, stream=False)
        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)

    async def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        request = self._request(endpoint, inputs, task_settings, stream=True)
        async for event in sse_events(self.lines(endpoint, request, timeout=timeout, policy=POLICY)):
            data = json_event(endpoint, event.data)
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "message_stop":
                return
            if kind == "error":
                raise stream_error(endpoint, data)
            if kind == "content_block_delta":
                text = (data.get("delta") or {}).get("text")
                if text:
                    yield {"completion": [{"delta": text}]}

    def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        body = chat_body(request, endpoint.service_settings["model_id"], endpoint.task_settings, stream=True)
        lines = self.lines(endpoint, self._post(endpoint, body), timeout=timeout, policy=POLICY)
        return chat_events(endpoint, lines)
