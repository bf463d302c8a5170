"""Elasticsearch's request bodies for streamed inference: the ``chat_completion`` request
(``messages``, ``model``, ``max_completion_tokens``, ``stop``, ``temperature``, ``tool_choice``,
``tools``, ``top_p``) and the ``input`` of a streamed ``completion``. Validation answers 400."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import EsError, x_content_parse

_REQUEST_FIELDS = ("messages", "model", "max_completion_tokens", "stop", "temperature", "tool_choice", "tools", "top_p")


def _fail(reason: str) -> EsError:
    return x_content_parse(reason)


def _check_keys(obj: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _fail(f"[{where}] unknown field [{key}]")


def _string(obj: dict[str, Any], key: str, where: str, required: bool = False) -> None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _fail(f"[{where}] Required [{key}]")
        return
    if not isinstance(value, str):
        raise _fail(f"[{where}] [{key}] must be a string")


def _number(obj: dict[str, Any], key: str, where: str, integer: bool = False) -> None:
    value = obj.get(key)
    if value is None:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _fail(f"[{where}] [{key}] must be {'an integer' if integer else 'a number'}")


def _object(value: Any, key: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"[{where}] [{key}] must be an object")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(f"[{where}] [{key}] must be an array")
    return value


def parse_chat_request(body: Any) -> dict[str, Any]:
    """Validate a ``chat_completion`` request body (Elasticsearch's UnifiedCompletionRequest);
    return a copy holding only the known, set fields. Raises a 400 on bad input."""
    where = "UnifiedCompletionRequest"
    if not isinstance(body, dict):
        raise _fail(f"[{where}] the request body must be an object")
    _check_keys(body, _REQUEST_FIELDS, where)
    messages = _list(body, "messages", where)
    if messages is None:
        raise _fail(f"[{where}] Required [messages]")
    if not messages:
        raise _fail(f"[{where}] [messages] must not be empty")
    for message in messages:
        _check_message(_object(message, "messages", where))
    _string(body, "model", where)
    _number(body, "max_completion_tokens", where, integer=True)
    stop = _list(body, "stop", where)
    if stop is not None and not all(isinstance(s, str) for s in stop):
        raise _fail(f"[{where}] [stop] must be an array of strings")
    _number(body, "temperature", where)
    _number(body, "top_p", where)
    if body.get("tool_choice") is not None:
        _check_tool_choice(body["tool_choice"])
    for tool in _list(body, "tools", where) or []:
        _check_tool(_object(tool, "tools", where))
    return {k: body[k] for k in _REQUEST_FIELDS if body.get(k) is not None}


def _check_message(message: dict[str, Any]) -> None:
    where = "Message"
    _check_keys(message, ("content", "role", "tool_call_id", "tool_calls"), where)
    _string(message, "role", where, required=True)
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        if not isinstance(content, list):
            raise _fail(
                "Expected an array start token or a value string token but found token "
                f"[{'START_OBJECT' if isinstance(content, dict) else 'VALUE'}]"
            )
        for part in content:
            part = _object(part, "content", "ContentObject")
            _check_keys(part, ("text", "type"), "ContentObject")
            _string(part, "text", "ContentObject", required=True)
            _string(part, "type", "ContentObject", required=True)
    _string(message, "tool_call_id", where)
    for call in _list(message, "tool_calls", where) or []:
        call = _object(call, "tool_calls", "ToolCall")
        _check_keys(call, ("id", "function", "type"), "ToolCall")
        _string(call, "id", "ToolCall", required=True)
        _string(call, "type", "ToolCall", required=True)
        if call.get("function") is None:
            raise _fail("[ToolCall] Required [function]")
        function = _object(call["function"], "function", "ToolCall")
        _check_keys(function, ("arguments", "name"), "FunctionField")
        _string(function, "arguments", "FunctionField", required=True)
        _string(function, "name", "FunctionField", required=True)


def _check_tool_choice(choice: Any) -> None:
    if isinstance(choice, str):
        return
    choice = _object(choice, "tool_choice", "ToolChoiceObject")
    _check_keys(choice, ("type", "function"), "ToolChoiceObject")
    _string(choice, "type", "ToolChoiceObject", required=True)
    if choice.get("function") is None:
        raise _fail("[ToolChoiceObject] Required [function]")
    function = _object(choice["function"], "function", "ToolChoiceObject")
    _check_keys(function, ("name",), "FunctionField")
    _string(function, "name", "FunctionField", required=True)


def _check_tool(tool: dict[str, Any]) -> None:
    _check_keys(tool, ("type", "function"), "Tool")
    _string(tool, "type", "Tool", required=True)
    if tool.get("function") is None:
        raise _fail("[Tool] Required [function]")
    function = _object(tool["function"], "function", "Tool")
    _check_keys(function, ("description", "name", "parameters", "strict"), "FunctionField")
    _string(function, "name", "FunctionField", required=True)
    _string(function, "description", "FunctionField")
    if function.get("parameters") is not None:
        _object(function["parameters"], "parameters", "FunctionField")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _fail("[FunctionField] [strict] must be a boolean")


def stream_inputs(request: Mapping[str, Any]) -> list[str]:
    """The inputs of a streamed ``completion`` request (``input``: a string or a list)."""
    value = request.get("input")
    if value is None:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: Field [input] cannot be null;")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise x_content_parse("[input] must be a string or an array of strings")
    if not inputs:
        raise EsError(
            400, "action_request_validation_exception", "Validation Failed: 1: Field [input] cannot be an empty array;"
        )
    return inputs
