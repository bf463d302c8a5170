"""Reading a provider's answer with checks: a missing field or a value of the wrong kind is a
:class:`MalformedResponse` (a 500 naming the endpoint), never a crash or a half result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..protocol.service import RankedDoc


class MalformedResponse(Exception):
    """Raised by response parsers; becomes a 500 naming the endpoint."""


def require(obj: Any, key: str | int, kind: type | tuple[type, ...], context: str) -> Any:
    """``obj[key]`` checked to be a ``kind`` (ints count as floats), else :class:`MalformedResponse`."""
    try:
        value = obj[key]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse(f"Failed to find required field [{key}] in {context}") from None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise MalformedResponse(f"Field [{key}] in {context} has an unexpected type")
    return value


def float_vectors(rows: Any, context: str) -> list[list[float]]:
    """A list of numeric vectors, checked."""
    if not isinstance(rows, list):
        raise MalformedResponse(f"Expected a list of embeddings in {context}")
    out = []
    for row in rows:
        if not isinstance(row, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in row
        ):
            raise MalformedResponse(f"Expected an embedding as a list of numbers in {context}")
        out.append(row)
    return out


def _document_text(item: dict[str, Any]) -> Any:
    document = item.get("document")
    if isinstance(document, dict):
        return document.get("text")
    return document if document is not None else item.get("text")


def ranked_docs(
    items: Any,
    inputs: Sequence[str],
    context: str,
    *,
    with_text: bool,
    score_keys: tuple[str, ...] = ("relevance_score",),
    index_key: str = "index",
    text_of: Callable[[dict[str, Any]], Any] = _document_text,
    top_n: int | None = None,
) -> list[RankedDoc]:
    """A provider's ranked items as :class:`RankedDoc` s, best first (at most ``top_n``). The
    index may be a number or a numeric string; with ``with_text`` the text is the provider's
    (``text_of``) or else the input's."""
    if not isinstance(items, list):
        raise MalformedResponse(f"Expected a list of ranked documents in {context}")
    docs = []
    for item in items:
        raw = require(item, index_key, (int, str), context)
        if isinstance(raw, str) and not raw.isdigit():
            raise MalformedResponse(f"Field [{index_key}] in {context} is not a document number")
        index = int(raw)
        if not 0 <= index < len(inputs):
            raise MalformedResponse(f"Index [{index}] in {context} is out of range")
        key = next((k for k in score_keys if k in item), score_keys[0])
        score = float(require(item, key, float, context))
        text = None
        if with_text:
            given = text_of(item)
            text = given if isinstance(given, str) else inputs[index]
        docs.append(RankedDoc(index=index, relevance_score=score, text=text))
    docs.sort(key=lambda d: d.relevance_score, reverse=True)
    return docs[:top_n] if top_n else docs
