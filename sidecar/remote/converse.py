"""Amazon Bedrock's Converse Stream API for the unified ``chat_completion`` task.

* :func:`converse_chat_body`: the validated OpenAI-shaped chat request as a Converse body —
  ``system`` prompts apart, user and assistant turns as content blocks (``text``, ``toolUse``
  for an assistant's tool calls, ``toolResult`` for a ``tool`` message, sent in a user turn as
  Converse requires), ``tools`` as ``toolConfig`` and the sampling settings in
  ``inferenceConfig`` (the request's values first, then the endpoint's task settings).
* :func:`converse_chat_chunk`: one decoded stream event as Elasticsearch re-emits it
  (``AmazonBedrockUnifiedStreamingChatProcessor``), rendered by
  :func:`sidecar.remote.openai_style.chat_chunk`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..protocol.service import Endpoint
from .errors import malformed
from .openai_style import chat_chunk
from .responses import MalformedResponse

# Elasticsearch's finish reasons for Bedrock's stop reasons (its own names, not OpenAI's).
FINISH_REASONS = {
    "tool_use": "FinishReasonToolCalls",
    "max_tokens": "FinishReasonLength",
    "content_filtered": "FinishReasonContentFilter",
    "guardrail_intervened": "FinishReasonContentFilter",
}


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [{"text": part["text"]} for part in content]


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    arguments = call["function"]["arguments"]
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        value = {"arguments": arguments}
    return {"toolUse": {"toolUseId": call["id"], "name": call["function"]["name"], "input": value}}


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message["role"]
    if role == "tool":
        result = {"toolUseId": message.get("tool_call_id"), "content": _text_blocks(message.get("content"))}
        return {"role": "user", "content": [{"toolResult": result}]}
    blocks = _text_blocks(message.get("content"))
    blocks += [_tool_use(call) for call in message.get("tool_calls") or []]
    return {"role": role, "content": blocks}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str):
        return {"auto": {"auto": {}}, "required": {"any": {}}}.get(choice)
    return {"tool": {"name": choice["function"]["name"]}}


def converse_chat_body(request: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    messages = request["messages"]
    body: dict[str, Any] = {"messages": [_message(m) for m in messages if m["role"] != "system"]}
    system = [block for m in messages if m["role"] == "system" for block in _text_blocks(m.get("content"))]
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    for key, name, fallback in (
        ("max_completion_tokens", "maxTokens", "max_new_tokens"),
        ("temperature", "temperature", "temperature"),
        ("top_p", "topP", "top_p"),
    ):
        value = request.get(key, settings.get(fallback))
        if value is not None:
            config[name] = value
    if request.get("stop"):
        config["stopSequences"] = request["stop"]
    if config:
        body["inferenceConfig"] = config
    if settings.get("top_k") is not None:
        body["additionalModelRequestFields"] = {"top_k": settings["top_k"]}
    if request.get("tools"):
        tools = [
            {"toolSpec": {
                "name": tool["function"]["name"],
                **({"description": tool["function"]["description"]} if tool["function"].get("description") else {}),
                "inputSchema": {"json": tool["function"].get("parameters") or {"type": "object", "properties": {}}},
            }}
            for tool in request["tools"]
        ]
        tool_config: dict[str, Any] = {"tools": tools}
        choice = _tool_choice(request["tool_choice"]) if request.get("tool_choice") is not None else None
        if choice is not None:
            tool_config["toolChoice"] = choice
        body["toolConfig"] = tool_config
    return body


def _chunk(delta: dict[str, Any] | None, index: int = 0, *, finish: str | None = None,
           usage: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": None, "choices": [{"delta": delta or {}, "finish_reason": finish, "index": index}],
                           "model": None, "object": None}
    if usage is not None:
        out["usage"] = usage
    return out


def _translate(kind: str | None, data: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "messageStart":
        return _chunk({"role": data.get("role")})
    if kind == "contentBlockStart":
        index = data.get("contentBlockIndex", 0)
        tool = (data.get("start") or {}).get("toolUse")
        if isinstance(tool, dict):
            call = {"index": 0, "id": tool.get("toolUseId"), "function": {"name": tool.get("name")}, "type": "TOOL_USE"}
            return _chunk({"role": "assistant", "tool_calls": [call]}, index)
        return _chunk({}, index)
    if kind == "contentBlockDelta":
        index = data.get("contentBlockIndex", 0)
        delta = data.get("delta") or {}
        if isinstance(delta.get("text"), str):
            return _chunk({"content": delta["text"]}, index)
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            call = {"index": 0, "function": {"arguments": tool.get("input")}, "type": "TOOL_USE"}
            return _chunk({"tool_calls": [call]}, index)
        return _chunk(None, index)
    if kind == "messageStop":
        return _chunk(None, finish=FINISH_REASONS.get(str(data.get("stopReason")), "FinishReasonStop"))
    if kind == "metadata":
        usage = data.get("usage")
        if not isinstance(usage, dict):
            raise MalformedResponse("Failed to find required field [usage] in Amazon Bedrock converse stream metadata")
        return _chunk(None, usage={"completion_tokens": usage.get("outputTokens", 0),
                                   "prompt_tokens": usage.get("inputTokens", 0),
                                   "total_tokens": usage.get("totalTokens", 0)})
    return None  # contentBlockStop and events this API version does not know


def converse_chat_chunk(endpoint: Endpoint, kind: str | None, payload: bytes) -> dict[str, Any] | None:
    """One Converse Stream event (an ``event`` message) as an Elasticsearch chat chunk, or None."""
    try:
        data = orjson.loads(payload)
        if not isinstance(data, dict):
            raise MalformedResponse("Expected a JSON object in the Amazon Bedrock converse stream")
        chunk = _translate(kind, data)
        return chat_chunk(chunk) if chunk is not None else None
    except (orjson.JSONDecodeError, MalformedResponse) as exc:
        raise malformed(endpoint, exc) from None
