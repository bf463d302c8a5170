"""The items of a write request: the NDJSON of ``_bulk`` read as a stream of
:class:`BulkItem`, a single-document write expressed as one item, and an item's result in
the form Elasticsearch gives it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import EsError

_OPS = ("index", "create", "update", "delete")
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY
# URL parameters of a single-document write that become its bulk action's metadata.
ITEM_PARAMS = {"routing", "pipeline", "if_seq_no", "if_primary_term", "version", "version_type",
               "require_alias", "retry_on_conflict", "_source"}
_INT_PARAMS = ("if_seq_no", "if_primary_term", "version", "retry_on_conflict")


def dumps_exact(value: Any) -> bytes:
    """orjson output copied to an exact-size object: orjson's own result keeps its larger
    write buffer allocated (about 13x a 10 KB document), which windows would hold on to."""
    return memoryview(orjson.dumps(value, option=_DUMPS_OPTS)).tobytes()


@dataclass
class BulkItem:
    op: str
    meta: dict[str, Any]
    action_line: bytes
    source_line: bytes | None
    index: str | None
    source: Any = None
    result: dict[str, Any] | None = None
    # Rewritten lines to forward (None: forward the original lines).
    forward: tuple[bytes, bytes | None] | None = None
    # A stored version of this document whose embeddings may be reused (e.g. the source
    # document of a reindex); when absent, the destination's current version is looked up.
    previous: dict[str, Any] | None = None


def error_item(item: BulkItem, err: EsError) -> dict[str, Any]:
    body: dict[str, Any] = {"_index": item.index, "_id": item.meta.get("_id"), "status": err.status,
                            "error": err.to_cause()}
    return {item.op: body}


async def ndjson_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Lines of an NDJSON stream (without the newline), any line length."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending


def parse_line(line: bytes, number: int) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EsError(
            400, "x_content_parse_exception",
            f"[{number}:{exc.pos + 1}] Malformed content, found extra data after parsing: {exc.msg}",
        ) from None


async def read_items(lines: AsyncIterator[bytes], default_index: str | None) -> AsyncIterator[BulkItem]:
    number = 0
    iterator = lines.__aiter__()
    while True:
        try:
            line = await iterator.__anext__()
        except StopAsyncIteration:
            return
        number += 1
        if not line.strip():
            continue
        action = parse_line(line, number)
        if not isinstance(action, dict) or len(action) != 1:
            raise EsError(400, "illegal_argument_exception",
                          f"Malformed action/metadata line [{number}], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]")
        op, meta = next(iter(action.items()))
        if op not in _OPS:
            raise EsError(400, "illegal_argument_exception",
                          f"Malformed action/metadata line [{number}], expected field [create], [delete], [index] or [update] but found [{op}]")
        if not isinstance(meta, dict):
            raise EsError(400, "illegal_argument_exception", f"Malformed action/metadata line [{number}]")
        source_line = None
        if op != "delete":
            try:
                source_line = await iterator.__anext__()
                number += 1
            except StopAsyncIteration:
                raise EsError(400, "illegal_argument_exception",
                              "The bulk request must be terminated by a newline [\\n]") from None
        yield BulkItem(op=op, meta=dict(meta), action_line=line, source_line=source_line,
                       index=meta.get("_index") or default_index)




def single_item(op: str, index: str, doc_id: str | None, params: dict[str, str], source: Any) -> BulkItem:
    """``PUT /{index}/_doc/{id}`` (``_create``, ``_update``, ``POST /{index}/_doc``) as the
    one item of a bulk, its URL parameters in the action's metadata."""
    meta: dict[str, Any] = {"_index": index}
    if doc_id is not None:
        meta["_id"] = doc_id
    for key in ITEM_PARAMS:
        if key in params and key != "_source":
            value: Any = params[key]
            if key in _INT_PARAMS:
                try:
                    value = int(value)
                except ValueError:
                    raise EsError(400, "illegal_argument_exception",
                                  f"Failed to parse int parameter [{key}] with value [{value}]") from None
            meta[key] = value
    return BulkItem(op=op, meta=meta, action_line=orjson.dumps({op: meta}),
                    source_line=orjson.dumps(source), index=index, source=source)


def single_response(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and body of a single-document write, from its bulk item result."""
    body = dict(next(iter(result.values())))
    status = body.pop("status", 200)
    error = body.get("error")
    if error is not None:
        cause = {k: v for k, v in error.items() if k != "caused_by"}
        return status, {"error": {"root_cause": [cause], **error}, "status": status}
    return status, body
