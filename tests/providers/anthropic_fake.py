"""Anthropic's Messages API: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``,
answered whole or as Anthropic's server-sent events (``message_start``, ``content_block_start``,
``content_block_delta`` with ``text_delta`` / ``input_json_delta``, ``content_block_stop``,
``message_delta`` with the stop reason and usage, ``message_stop``)."""

from __future__ import annotations

import json
from typing import Any

from .harness import Call, FakeProvider, Reply, sse

MODEL = "claude-3-5-haiku-20241022"


class FakeAnthropic(FakeProvider):
    # When set, a streamed answer calls this tool (after a short text block).
    tool_call: tuple[str, dict[str, Any]] | None = None

    def authorized(self, call: Call) -> bool:
        return call.headers.get("x-api-key") == self.key

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"type": "error", "error": {"type": "api_error", "message": message}})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.path != "/v1/messages" or call.headers.get("anthropic-version") != "2023-06-01":
            return "expected /v1/messages with anthropic-version"
        if not isinstance(body.get("max_tokens"), int) or not body.get("model"):
            return "max_tokens and model are required"
        messages = body.get("messages")
        if not messages or messages[0]["role"] != "user" or any(m["role"] == "system" for m in messages):
            return "messages must start with a user turn; system prompts go in 'system'"
        for tool in body.get("tools", []):
            if set(tool) != {"name", "description", "input_schema"} or tool["input_schema"].get("type") != "object":
                return f"bad tool {tool}"
        if "stop" in body or "tool_choice" in body and body["tool_choice"].get("type") not in ("auto", "any", "tool", "none"):
            return "OpenAI vocabulary sent to Anthropic"
        return None

    def answer(self, call: Call) -> Reply:
        if call.json.get("stream"):
            return self.stream_reply(["Hello", " world"])
        return Reply(
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": "Hello world"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 2},
            }
        )

    def stream_reply(self, parts: list[str]) -> Reply:
        events: list[Any] = [
            {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 13, "output_tokens": 1}}},
            {"type": "ping"},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ]
        events += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in parts
        ]
        events.append({"type": "content_block_stop", "index": 0})
        stop = "end_turn"
        if self.tool_call is not None:
            name, arguments = self.tool_call
            text = json.dumps(arguments)
            events += [
                {"type": "content_block_start", "index": 1,
                 "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}},
                {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": text[:5]}},
                {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": text[5:]}},
                {"type": "content_block_stop", "index": 1},
            ]
            stop = "tool_use"
        events += [
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 7}},
            {"type": "message_stop"},
        ]
        return Reply(chunks=[c for e in events for c in sse(e, event=e["type"])], content_type="text/event-stream")
