"""The ``embedding`` task (Elasticsearch 9.4+): ``POST _inference/embedding/{id}`` with text and
image inputs, one embedding per input.

The request (Elasticsearch's ``EmbeddingRequest`` / ``InferenceStringGroup`` /
``InferenceString``)::

    {"input": "text"}                                   # or ["text", ...]
    {"input": {"content": {"type": "image", "format": "base64", "value": "data:image/png;base64,..."}}}
    {"input": [{"content": [{"type": "text", "value": "a caption"},
                            {"type": "image", "value": "data:image/jpeg;base64,..."}]}]}

``type`` is ``text`` or ``image``; ``format`` defaults to the type's own (``text`` for text,
``base64`` for images, given as a ``data:`` URI) and must be one the type supports. A group of
several contents makes one embedding. The answer is ``{"embeddings": [{"embedding": [...]}]}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EsError, action_request_validation, x_content_parse

TYPES = {"text": ("text", ("text",)), "image": ("base64", ("base64",))}  # type -> default, supported formats
FORMATS = ("text", "base64")
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.DOTALL)
RESULT_KEYS = {"float": "embeddings", "byte": "embeddings_bytes", "bit": "embeddings_bits"}


@dataclass(frozen=True)
class Content:
    """One piece of an input: ``type`` ``text`` or ``image``; ``value`` the text, or the image
    as a base64 ``data:`` URI (``format`` ``base64``)."""

    type: str
    value: str
    format: str

    @property
    def is_text(self) -> bool:
        return self.type == "text"

    def image_bytes(self) -> tuple[str | None, bytes]:
        """(mime type or None, decoded bytes) of an image; a 400 when it is not base64."""
        match = _DATA_URI.match(self.value)
        mime, data = (match["mime"], match["data"]) if match else (None, self.value)
        try:
            return mime, base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise EsError(400, "status_exception", "Image input must be base64 encoded data") from None


# One input: the contents that make one embedding.
ContentGroup = tuple[Content, ...]


def text_only(groups: Sequence[ContentGroup]) -> list[str] | None:
    """The texts when every input is a single text, else None."""
    if all(len(g) == 1 and g[0].is_text for g in groups):
        return [g[0].value for g in groups]
    return None


def _content(obj: Any) -> Content:
    if not isinstance(obj, dict):
        raise x_content_parse("[InferenceString] content must be an object")
    for key in obj:
        if key not in ("type", "format", "value"):
            raise x_content_parse(f"[InferenceString] unknown field [{key}]")
    missing = [k for k in ("type", "value") if obj.get(k) is None]
    if missing:
        raise x_content_parse(f"Required [{', '.join(missing)}]")
    if not all(isinstance(obj.get(k), str) for k in ("type", "value")) or not isinstance(obj.get("format", ""), str):
        raise x_content_parse("[InferenceString] [type], [format] and [value] must be strings")
    kind = obj["type"].strip().lower()
    if kind not in TYPES:
        raise x_content_parse(f"Unrecognized type [{obj['type']}], must be one of [{', '.join(TYPES)}]")
    default, supported = TYPES[kind]
    fmt = obj.get("format")
    if fmt is None:
        fmt = default
    else:
        fmt = fmt.strip().lower()
        if fmt not in FORMATS:
            raise x_content_parse(f"Unrecognized format [{obj['format']}], must be one of [{', '.join(FORMATS)}]")
        if fmt not in supported:
            raise x_content_parse(
                f"Data format [{fmt}] is not supported for data type [{kind}]. "
                f"Supported formats are [{', '.join(supported)}]"
            )
    return Content(kind, obj["value"], fmt)


def _group(item: Any) -> ContentGroup:
    if isinstance(item, str):
        return (Content("text", item, "text"),)
    if not isinstance(item, dict):
        raise x_content_parse(f"Unsupported token [{'START_ARRAY' if isinstance(item, list) else 'VALUE'}]")
    for key in item:
        if key != "content":
            raise x_content_parse(f"[InferenceStringGroup] unknown field [{key}]")
    content = item.get("content")
    if content is None:
        raise x_content_parse("[InferenceStringGroup] Required [content]")
    contents = content if isinstance(content, list) else [content]
    if not contents:
        raise action_request_validation("Field [content] cannot be an empty array")
    return tuple(_content(c) for c in contents)


@dataclass
class EmbeddingInputs:
    groups: list[ContentGroup]
    input_type: str | None
    task_settings: dict[str, Any]


INPUT_TYPES = ("ingest", "search", "classification", "clustering")


def parse_embedding_request(body: Any) -> EmbeddingInputs:
    """Validate a ``POST _inference/embedding/{id}`` body."""
    if not isinstance(body, dict):
        raise EsError(400, "parse_exception", "request body is required and must be a JSON object")
    for key in body:
        if key not in ("input", "input_type", "task_settings", "timeout"):
            raise x_content_parse(f"[1:2] [inference] unknown field [{key}]")
    raw = body.get("input")
    if raw is None:
        raise action_request_validation("Field [input] cannot be null")
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise action_request_validation("Field [input] cannot be an empty array")
    groups = [_group(item) for item in items]
    input_type = body.get("input_type")
    if input_type is not None:
        if not isinstance(input_type, str) or input_type.lower() not in INPUT_TYPES:
            raise action_request_validation(
                f"Field [input_type] must be one of [{', '.join(INPUT_TYPES)}], got [{input_type}]"
            )
        input_type = input_type.lower()
    task_settings = body.get("task_settings") or {}
    if not isinstance(task_settings, dict):
        raise x_content_parse("[1:2] [inference] failed to parse field [task_settings]")
    return EmbeddingInputs(groups, input_type, task_settings)


def render(vectors: Any, element_type: str = "float") -> dict[str, Any]:
    """Elasticsearch's ``GenericDenseEmbedding*Results``."""
    rows = vectors.tolist() if hasattr(vectors, "tolist") else [list(v) for v in vectors]
    return {RESULT_KEYS[element_type]: [{"embedding": row} for row in rows]}
