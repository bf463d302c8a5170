"""Frames of AWS's binary event stream (``application/vnd.amazon.eventstream``), built the way
the format is documented so that the sidecar's reader (botocore's parser) sees real bytes.

A message is a 12-byte prelude (total length, headers length, CRC32 of those eight bytes, all
big-endian), the headers, the payload and a CRC32 of everything before it. A header is a
1-byte name length, the name, a value type (7: string) and, for strings, a 2-byte length and
the UTF-8 value.
"""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

_STRING = 7


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """An ``event`` message with a JSON payload."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(body).encode())


def exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message, as AWS ends a stream that failed after it started."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def converse_stream(texts: list[str]) -> list[bytes]:
    """The frames of one Converse Stream answer that says ``texts`` in pieces."""
    frames = [event("messageStart", {"role": "assistant", "p": "abcd"})]
    frames += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}, "p": "ab"}) for t in texts]
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdef"}))
    frames.append(event("messageStop", {"stopReason": "end_turn", "p": "abc"}))
    frames.append(
        event(
            "metadata",
            {"usage": {"inputTokens": 3, "outputTokens": len(texts), "totalTokens": 3 + len(texts)}, "metrics": {"latencyMs": 5}},
        )
    )
    return frames


def converse_tool_stream(text: str, tool_id: str, name: str, arguments: list[str]) -> list[bytes]:
    """A Converse Stream answer that says ``text`` and then calls a tool, its JSON input in pieces."""
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}),
    ]
    frames += [event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": a}}}) for a in arguments]
    frames.append(event("contentBlockStop", {"contentBlockIndex": 1}))
    frames.append(event("messageStop", {"stopReason": "tool_use"}))
    frames.append(event("metadata", {"usage": {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}, "metrics": {}}))
    return frames
