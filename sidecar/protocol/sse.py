"""Server-Sent Events exactly as Elasticsearch writes them for ``_stream`` inference.

Every event starts with a UTF-8 byte order mark, then ``event: <type>``, then one ``data:``
line of compact JSON, then a blank line::

    \\ufeffevent: message
    data: {"completion":[{"delta":"Elastic"}]}

The stream ends with ``data: [DONE]`` (a ``message`` event); an error before or during the
stream is an ``error`` event whose data is the usual error body. The HTTP route answers with
``Content-Type: text/event-stream`` (:data:`CONTENT_TYPE`).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import EsError

CONTENT_TYPE = "text/event-stream"

_BOM = "\ufeff".encode()


def _event(kind: bytes, data: bytes) -> bytes:
    return _BOM + b"event: " + kind + b"\ndata: " + data + b"\n\n"


def render_event(payload: dict[str, Any]) -> bytes:
    """One ``message`` event carrying ``payload``."""
    return _event(b"message", orjson.dumps(payload))


def render_error(err: EsError) -> bytes:
    """One ``error`` event carrying the Elasticsearch error body of ``err``."""
    return _event(b"error", orjson.dumps(err.to_body()))


DONE = _event(b"message", b"[DONE]")
