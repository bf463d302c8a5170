"""Readers of streamed provider answers: the body cut into lines, Server-Sent Events and
NDJSON objects."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..protocol.service import Endpoint
from .errors import malformed


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` of any size cut into lines without line endings; leaving early closes
    ``chunks`` (and so the upstream connection)."""
    async with contextlib.aclosing(chunks):
        buffer = b""
        async for chunk in chunks:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r")
        if buffer:
            yield buffer.rstrip(b"\r")


@dataclass
class SseEvent:
    event: str
    data: str


async def sse_events(lines: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """Server-Sent Events per the HTML spec (``event:``/``data:`` fields, blank line ends one)."""
    event, data, first = "message", [], True
    async for raw in lines:
        line = raw.decode("utf-8", errors="replace")
        if first:
            line, first = line.removeprefix("\ufeff"), False
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value or "message"
    if data:
        yield SseEvent(event, "\n".join(data))


async def ndjson_objects(lines: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    async for line in lines:
        if line.strip():
            yield orjson.loads(line)


def json_event(endpoint: Endpoint, text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise malformed(endpoint, exc) from None
