"""Gemini's ``generateContent`` format as Elasticsearch speaks it for Google Vertex AI
``completion`` and ``chat_completion``.

* :func:`request_body` renders a validated chat request (``messages``, ``stop``, ``temperature``,
  ``max_completion_tokens``, ``top_p``, ``tools``, ``tool_choice``) as Gemini's
  ``contents`` / ``generationConfig`` / ``tools`` / ``toolConfig`` / ``systemInstruction``,
  refusing with Elasticsearch's 400s what Gemini cannot take (roles other than user, assistant,
  tool and system; content parts that are not text; tools that are not functions; a
  ``tool_choice`` string other than ``auto``).
* :func:`chat_chunk_of` turns one Gemini response (a streamed chunk or a whole answer, they have
  the same shape) into the ``chat.completion.chunk`` Elasticsearch emits; :func:`texts_of` gives
  the text of each candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import status_exception
from .openai_style import chat_chunk
from .responses import MalformedResponse

_SERVICE = "Google VertexAI ChatCompletion"
# OpenAI's usage field -> Gemini's usageMetadata field.
_USAGE = {"completion_tokens": "candidatesTokenCount", "prompt_tokens": "promptTokenCount", "total_tokens": "totalTokenCount"}


def _unsupported(what: str, value: Any, supported: str) -> Exception:
    return status_exception(400, f"{what} [{value}] not supported by {_SERVICE}. Supported {supported}")


def _role(role: str) -> str:
    if role.lower() == "user":
        return "user"
    if role in ("assistant", "tool"):  # Gemini calls both "model"
        return "model"
    raise _unsupported("Role", role, "roles: [user, assistant]")


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []  # Gemini takes no empty text part
    parts: list[dict[str, Any]] = []
    for item in content or []:
        if item.get("type") != "text":
            raise _unsupported("Type", item.get("type"), "types: [text]")
        if not item.get("text"):
            break  # as Elasticsearch does: an empty part ends the message's parts
        parts.append({"text": item["text"]})
    return parts


def _function_args(arguments: Any) -> Any:
    if not arguments:
        return None
    try:
        args = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise status_exception(400, f"Tool call arguments must be a JSON object, received [{arguments}]")
    return args


def _contents(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    contents = []
    for message in messages:
        if message["role"].lower() == "system":
            continue
        parts = _text_parts(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call["function"]
            parts.append({"functionCall": {"name": function["name"], "args": _function_args(function.get("arguments"))}})
        contents.append({"role": _role(message["role"]), "parts": parts})
    return contents


def _system_instruction(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    parts = []
    for message in messages:
        if message["role"].lower() != "system":
            continue
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                raise status_exception(400, "System message cannot be empty for Google Vertex AI")
            parts.append({"text": content})
        elif isinstance(content, list):
            parts.extend({"text": item.get("text")} for item in content)
        else:
            raise status_exception(400, "Only text system instructions are supported for Vertex AI")
    return {"parts": parts} if parts else None


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools:
        if tool.get("type") != "function":
            raise _unsupported("Tool type", tool.get("type"), "types: [function]")
        function = tool["function"]
        declaration: dict[str, Any] = {"name": function["name"]}
        if (function.get("description") or "").strip():
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parameters"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str):
        if choice == "auto":
            return None
        raise _unsupported("Tool choice value", choice, "values: [auto]")
    if choice.get("type") != "function":
        raise _unsupported("Tool choice type", choice.get("type"), "types: [function]")
    config: dict[str, Any] = {"mode": "ANY"}
    name = (choice.get("function") or {}).get("name")
    if name and name.strip():
        config["allowedFunctionNames"] = [name]
    return {"functionCallingConfig": config}


def request_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generateContent`` body for a validated chat request (Elasticsearch's field order)."""
    messages = request["messages"]
    body: dict[str, Any] = {"contents": _contents(messages)}
    generation = {
        name: request[key]
        for key, name in (
            ("stop", "stopSequences"),
            ("temperature", "temperature"),
            ("max_completion_tokens", "maxOutputTokens"),
            ("top_p", "topP"),
        )
        if request.get(key) is not None
    }
    optional = {
        "generationConfig": generation or None,
        "tools": _tools(request["tools"]) if request.get("tools") else None,
        "toolConfig": _tool_config(request["tool_choice"]) if request.get("tool_choice") is not None else None,
        "systemInstruction": _system_instruction(messages),
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    return body


def _choice(candidate: Any) -> dict[str, Any]:
    if not isinstance(candidate, dict):
        raise MalformedResponse("Expected a candidate object in the Google Vertex AI response")
    content = candidate.get("content") or {}
    text, calls = "", []
    for part in content.get("parts") or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            text += part["text"]
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args")
            function = {"arguments": None if args is None else orjson.dumps(args).decode(), "name": call.get("name")}
            calls.append({"index": 0, "id": call.get("name"), "function": function, "type": "function"})
    delta = {"content": text or None, "role": content.get("role"), "tool_calls": calls or None}
    return {"delta": delta, "finish_reason": candidate.get("finishReason"), "index": candidate.get("index", 0)}


def chat_chunk_of(obj: Any) -> dict[str, Any]:
    """One Gemini response as Elasticsearch's ``chat.completion.chunk``."""
    if not isinstance(obj, dict) or not isinstance(obj.get("candidates", []), list):
        raise MalformedResponse("Failed to find required field [candidates] in the Google Vertex AI response")
    chunk: dict[str, Any] = {
        "id": obj.get("responseId"),
        "choices": [_choice(c) for c in obj.get("candidates") or []],
        "model": obj.get("modelVersion"),
        "object": "chat.completion.chunk",
    }
    usage = obj.get("usageMetadata")
    if isinstance(usage, dict):
        chunk["usage"] = {name: usage.get(gemini_name, 0) for name, gemini_name in _USAGE.items()}
    return chat_chunk(chunk)


def texts_of(obj: Any) -> list[str]:
    """The text of each candidate of a Gemini response ("" for one without text)."""
    return [choice["delta"].get("content") or "" for choice in chat_chunk_of(obj)["choices"]]
