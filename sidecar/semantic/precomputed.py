"""Bring your own embeddings: semantic_text values sent with their chunks and embeddings
already computed are stored as given (after checking them against the field's endpoint),
so no inference is spent on them.

The shapes Elasticsearch accepts are accepted:

* the metadata field of Elasticsearch 8.18+/9.x, at the document root::

      "_inference_fields": {"content": {"inference": {"inference_id": "e5",
          "chunks": {"content": [{"start_offset": 0, "end_offset": 31, "embeddings": [...]}]}}}}

* the legacy value of the field itself (Elasticsearch 8.15–8.17)::

      "content": {"text": "...", "inference": {"inference_id": "e5",
          "chunks": [{"text": "chunk text", "embeddings": [...]}]}}

* the single-shot value of Elasticsearch 9.5+, whose chunks must cover the whole text::

      "content": {"text": "hello world", "chunks": [
          {"start_offset": 0, "end_offset": 5, "embeddings": [...]},
          {"start_offset": 5, "end_offset": 11, "embeddings": [...]}]}
"""

from __future__ import annotations

from typing import Any

from ..chunking.offsets import OffsetMap, utf16_len
from ..errors import EsError
from .metadata import IndexSemantics, SemanticField
from .values import MISSING, field_text, get_path

METADATA_FIELD = "_inference_fields"


def _error(field: str, reason: str) -> EsError:
    return EsError(400, "document_parsing_exception",
                   f"[1:1] failed to parse field [{field}] of type [semantic_text]: {reason}")


def _check_embedding(field: SemanticField, value: Any) -> Any:
    settings = field.model_settings or {}
    if settings.get("task_type") == "sparse_embedding":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                for k, v in value.items()):
            raise _error(field.name, "sparse embeddings must be an object of token to positive weight")
        return value
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _error(field.name, "dense embeddings must be an array of numbers")
    dims = settings.get("dimensions")
    element_type = settings.get("element_type", "float")
    expected = dims // 8 if element_type == "bit" and dims else dims
    if expected is not None and len(value) != expected:
        raise EsError(400, "illegal_argument_exception",
                      f"Incompatible model settings for field [{field.name}]: the provided embeddings have "
                      f"[{len(value)}] dimensions, the field's inference endpoint [{field.inference_id}] has "
                      f"[{dims}]")
    return value


def _check_inference_id(field: SemanticField, given: Any) -> None:
    if given is not None and given != field.inference_id:
        raise EsError(400, "illegal_argument_exception",
                      f"The configured inference_id [{field.inference_id}] for field [{field.name}] doesn't "
                      f"match the inference_id [{given}] of the provided embeddings")


def _from_metadata(field: SemanticField, entry: Any, source: dict[str, Any]) -> list[dict[str, Any]]:
    inference = entry.get("inference") if isinstance(entry, dict) else None
    if not isinstance(inference, dict) or not isinstance(inference.get("chunks"), dict):
        raise _error(field.name, f"[{METADATA_FIELD}] entries need [inference.chunks] keyed by source field")
    _check_inference_id(field, inference.get("inference_id"))
    out = []
    for src, chunks in inference["chunks"].items():
        text = field_text(get_path(source, src), src)
        if text is None:
            raise _error(field.name, f"the embeddings given for [{src}] have no text in the document")
        length = utf16_len(text)
        for chunk in chunks if isinstance(chunks, list) else []:
            start, end = chunk.get("start_offset"), chunk.get("end_offset")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= length):
                raise _error(field.name, f"invalid chunk offsets [{start}, {end}] for a text of length [{length}]")
            out.append({"source": src, "start_offset": start, "end_offset": end,
                        "embeddings": _check_embedding(field, chunk.get("embeddings"))})
    return out


def _from_legacy(field: SemanticField, value: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    inference = value.get("inference")
    if not isinstance(inference, dict) or not isinstance(inference.get("chunks"), list):
        raise _error(field.name, "an object value needs [text] and [inference.chunks]")
    _check_inference_id(field, inference.get("inference_id"))
    original = value.get("text")
    text = field_text(original if original is not None else MISSING, field.name)
    if text is None:
        raise _error(field.name, "an object value needs [text]")
    offsets = OffsetMap(text)
    out, position = [], 0
    for chunk in inference["chunks"]:
        piece = chunk.get("text") if isinstance(chunk, dict) else None
        at = text.find(piece, position) if isinstance(piece, str) else -1
        if at < 0:
            at = text.find(piece) if isinstance(piece, str) else -1
        if at < 0:
            raise _error(field.name, "every chunk [text] must be part of the field's [text]")
        position = at + len(piece)
        out.append({"source": field.name, "start_offset": offsets.to_16(at), "end_offset": offsets.to_16(position),
                    "embeddings": _check_embedding(field, chunk.get("embeddings"))})
    return original, out


def _from_single_shot(field: SemanticField, value: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    text = value.get("text")
    if not isinstance(text, str) or not isinstance(value["chunks"], list):
        raise _error(field.name, "a value with [chunks] needs a string [text] and an array of [chunks]")
    length = utf16_len(text)
    out = []
    for chunk in value["chunks"]:
        start, end = (chunk.get("start_offset"), chunk.get("end_offset")) if isinstance(chunk, dict) else (None, None)
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= length):
            raise _error(field.name, f"invalid chunk offsets [{start}, {end}] for a text of length [{length}]")
        out.append({"source": field.name, "start_offset": start, "end_offset": end,
                    "embeddings": _check_embedding(field, chunk.get("embeddings"))})
    out.sort(key=lambda c: c["start_offset"])
    covered = 0
    for chunk in out:
        if chunk["start_offset"] != covered:
            break
        covered = chunk["end_offset"]
    if covered != length:
        raise EsError(400, "status_exception",
                      f"The chunks of field [{field.name}] must cover its text from offset [0] to [{length}] "
                      f"without gaps or overlaps; they cover [0, {covered}) contiguously")
    return text, out


def extract(semantics: IndexSemantics, source: dict[str, Any], *,
            single_shot: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Pull precomputed inference out of ``source`` (which is rewritten to hold the user's
    values only). Returns the chunks per field; raises :class:`EsError` on a mismatch.
    ``single_shot``: the node's version accepts ``{"text", "chunks"}`` values (9.5+)."""
    found: dict[str, list[dict[str, Any]]] = {}
    metadata = source.pop(METADATA_FIELD, None)
    for name, field in semantics.fields.items():
        value = source.get(name)
        if isinstance(value, dict) and single_shot and "chunks" in value and "inference" not in value:
            source[name], found[name] = _from_single_shot(field, value)
        elif isinstance(value, dict) and "inference" in value:
            source[name], found[name] = _from_legacy(field, value)
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise EsError(400, "document_parsing_exception", f"[1:1] [{METADATA_FIELD}] must be an object")
        for name, entry in metadata.items():
            field = semantics.fields.get(name)
            if field is None:
                raise _error(name, "the field is not a semantic_text field of this index")
            found[name] = _from_metadata(field, entry, source)
    return found


def needs_settings(semantics: IndexSemantics, source: dict[str, Any]) -> list[SemanticField]:
    """Fields whose model settings must be known before precomputed values can be checked."""
    names = set((source.get(METADATA_FIELD) or {}) if isinstance(source.get(METADATA_FIELD), dict) else ())
    names |= {n for n in semantics.fields if isinstance(source.get(n), dict)}
    return [semantics.fields[n] for n in names if n in semantics.fields and semantics.fields[n].model_settings is None]
