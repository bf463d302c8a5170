"""Anthropic's Messages API for the unified ``chat_completion`` task, as Elasticsearch speaks it
(``AnthropicUnifiedChatCompletionRequestEntity``, ``AnthropicToolUtils``,
``AnthropicChatCompletionStreamingProcessor``):

* the request: system messages move to a top-level ``system`` array of text blocks, ``stop``
  becomes ``stop_sequences``, ``max_completion_tokens`` (or the endpoint's ``max_tokens``)
  becomes ``max_tokens``, tools become ``{name, description, input_schema}`` and ``tool_choice``
  Anthropic's ``{"type": "auto"|"none"|"any"|"tool"}``;
* the answer: Anthropic's server-sent events (``message_start``, ``content_block_start``,
  ``content_block_delta``, ``message_delta``, …) become OpenAI-shaped chunks, rendered by
  :func:`sidecar.remote.openai_style.chat_chunk` as Elasticsearch re-emits them. Tool calls get
  their own running index (Anthropic numbers content blocks, text blocks included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import status_exception
from ..protocol.service import Endpoint
from .errors import malformed, stream_error
from .openai_style import chat_chunk
from .responses import MalformedResponse
from .streams import json_event, sse_events

CONTEXT = "Anthropic chat completions response"
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
TOOL_CHOICES = {"none": "none", "auto": "auto", "required": "any"}


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise status_exception(
                400, f"Unsupported tool_choice value [{choice}] for the Anthropic chat completion API."
            )
        return {"type": TOOL_CHOICES[choice]}
    out: dict[str, Any] = {"type": "tool"}
    if choice.get("function") is not None:
        out["name"] = choice["function"]["name"]
    return out


def _input_schema(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    if parameters is None:
        return schema
    if parameters.get("properties") is not None:
        schema["properties"] = parameters["properties"]
    if parameters.get("required") is not None:
        schema["required"] = parameters["required"]
    schema.update({k: v for k, v in parameters.items() if k not in ("type", "properties", "required")})
    return schema


def chat_body(request: Mapping[str, Any], model: str, settings: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """The ``/v1/messages`` body for a validated chat request (fields in Elasticsearch's order)."""
    body: dict[str, Any] = {"model": model}
    system = [m for m in request["messages"] if m.get("role") == "system"]
    if system:
        body["system"] = [
            {"type": "text", **({"text": m["content"]} if isinstance(m.get("content"), str) else {})} for m in system
        ]
    body["messages"] = [m for m in request["messages"] if m.get("role") != "system"]
    if request.get("stop"):
        body["stop_sequences"] = request["stop"]
    for key in ("temperature", "top_p"):
        value = request.get(key, settings.get(key))
        if value is not None:
            body[key] = value
    if settings.get("top_k") is not None:
        body["top_k"] = settings["top_k"]
    if request.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(request["tool_choice"])
    if request.get("tools"):
        body["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description"),
                "input_schema": _input_schema(tool["function"].get("parameters")),
            }
            for tool in request["tools"]
        ]
    body["stream"] = stream
    max_tokens = request.get("max_completion_tokens")
    body["max_tokens"] = max_tokens if max_tokens is not None else settings.get("max_tokens")
    return body


def _field(obj: Any, key: str, kind: type) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        raise MalformedResponse(f"Failed to find required field [{key}] in {CONTEXT}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedResponse(
            f"Field [{key}] in {CONTEXT} is of unexpected type [{type(value).__name__}]. "
            f"Expected type is [{kind.__name__}]."
        )
    return value


def _chunk(delta: dict[str, Any], *, finish: str | None = None, usage: dict[str, int] | None = None,
           message_id: str | None = None, model: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": message_id, "choices": [{"delta": delta, "finish_reason": finish, "index": 0}],
                           "model": model, "object": None}
    if usage is not None:
        out["usage"] = usage
    return out


class _Translator:
    """One response stream's state: the tool call index of each tool_use content block."""

    def __init__(self) -> None:
        self.tool_calls: dict[int, int] = {}

    def chunk(self, kind: str, data: Any) -> dict[str, Any] | None:
        if kind == "message_start":
            message = _field(data, "message", dict)
            usage = _field(message, "usage", dict)
            prompt, completion = _field(usage, "input_tokens", int), _field(usage, "output_tokens", int)
            return _chunk(
                {"role": _field(message, "role", str)},
                finish=STOP_REASONS.get(message.get("stop_reason") or "", None),
                usage={"completion_tokens": completion, "prompt_tokens": prompt, "total_tokens": prompt + completion},
                message_id=_field(message, "id", str),
                model=_field(message, "model", str),
            )
        if kind == "content_block_start":
            index = _field(data, "index", int)
            block = _field(data, "content_block", dict)
            block_type = _field(block, "type", str)
            if block_type == "text":
                return _chunk({"content": _field(block, "text", str)})
            if block_type == "tool_use":
                call_index = self.tool_calls.setdefault(index, len(self.tool_calls))
                call = {"index": call_index, "id": _field(block, "id", str),
                        "function": {"arguments": "", "name": _field(block, "name", str)}}
                return _chunk({"tool_calls": [call]})
            return None
        if kind == "content_block_delta":
            index = _field(data, "index", int)
            delta = _field(data, "delta", dict)
            delta_type = _field(delta, "type", str)
            if delta_type == "text_delta":
                return _chunk({"content": _field(delta, "text", str)})
            if delta_type == "input_json_delta" and index in self.tool_calls:
                call = {"index": self.tool_calls[index], "function": {"arguments": _field(delta, "partial_json", str)}}
                return _chunk({"tool_calls": [call]})
            return None
        if kind == "message_delta":
            delta = _field(data, "delta", dict)
            reason = delta.get("stop_reason")
            output = _field(_field(data, "usage", dict), "output_tokens", int)
            return _chunk({}, finish=None if reason is None else STOP_REASONS.get(reason, "stop"),
                          usage={"completion_tokens": output, "prompt_tokens": 0, "total_tokens": output})
        return None  # ping, content_block_stop, vertex_event, unknown events


async def chat_events(endpoint: Endpoint, lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Anthropic's stream as Elasticsearch's ``chat.completion.chunk`` payloads."""
    translator = _Translator()
    async for event in sse_events(lines):
        data = json_event(endpoint, event.data)
        kind = event.event if event.event != "message" else (data.get("type") if isinstance(data, dict) else None)
        if kind == "error":
            raise stream_error(endpoint, data)
        if kind == "message_stop":
            return
        try:
            chunk = translator.chunk(kind or "", data)
            if chunk is not None:
                yield chat_chunk(chunk)
        except MalformedResponse as exc:
            raise malformed(endpoint, exc) from None
