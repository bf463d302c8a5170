"""The write path: ``_bulk`` (and single-document writes expressed as one-item bulks) with
semantic_text filling and sidecar-run ingest pipelines.

The NDJSON body is read as a stream and cut into windows; each window is processed
(pipelines, then chunking and embedding across all its documents) and sent to
Elasticsearch as one bulk while the next window is being embedded, so Elasticsearch I/O
overlaps inference and memory stays bounded however large the body is. Items the sidecar
has nothing to do for are forwarded byte for byte. Per-item results are merged back in the
original order; an item whose inference fails is reported as a failed item with an
Elasticsearch-shaped error and is not indexed.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import EsError
from ..es.node import NodeVersion
from . import precomputed
from .fill import MISSING, FillItem, SemanticFiller, get_path
from .layout import INFERENCE_ROOT
from .metadata import IndexSemantics, SemanticIndices

WINDOW_ITEMS = 512
WINDOW_BYTES = 8 * 1024 * 1024
_OPS = ("index", "create", "update", "delete")
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


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


# Sends an NDJSON bulk body to Elasticsearch; returns (status, parsed response).
BulkSender = Callable[[bytes], Awaitable[tuple[int, Any]]]
# Fetches current documents: list of (index, id, routing) → list of (source, seq_no, primary_term) or None.
DocFetcher = Callable[[list[tuple[str, str, str | None]]], Awaitable[list[tuple[dict, int, int] | None]]]


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


def _parse_line(line: bytes, number: int) -> Any:
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
        action = _parse_line(line, number)
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


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Elasticsearch's partial-update merge: objects merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _touched_fields(semantics: IndexSemantics, doc: dict[str, Any]) -> set[str]:
    touched = set()
    for name in semantics.fields:
        sources = [name] + [s for s, targets in semantics.copy_to.items() if name in targets]
        if any(get_path(doc, s) is not MISSING for s in sources):
            touched.add(name)
    return touched


@dataclass
class BulkStats:
    took_ms: int = 0
    ingest_took_ms: int = 0
    errors: bool = False
    # Documents with at least one chunk longer than the model's input window.
    truncated: int = 0
    # Each item's result as compact JSON: a bulk of many documents keeps only bytes.
    raw_items: list[bytes] = field(default_factory=list)

    @property
    def items(self) -> list[dict[str, Any]]:
        return [orjson.loads(raw) for raw in self.raw_items]

    def response_bytes(self) -> bytes:
        head = orjson.dumps({"errors": self.errors, "took": self.took_ms})
        return head[:-1] + b',"items":[' + b",".join(self.raw_items) + b"]}"


class BulkProcessor:
    def __init__(self, semantic: SemanticIndices, filler: SemanticFiller, send: BulkSender,
                 fetch: DocFetcher, *, pipelines: Any = None, caller_headers: Any = None,
                 request_pipeline: str | None = None, node_version: NodeVersion | None = None) -> None:
        self.semantic = semantic
        self.node_version = node_version
        self.filler = filler
        self.send = send
        self.fetch = fetch
        self.pipelines = pipelines
        self.caller_headers = caller_headers
        self.request_pipeline = request_pipeline
        # Steps that complete partial-update bodies once their inference is computed.
        self._finishers: list[Callable[[], None]] = []
        self.truncated = 0

    async def run(self, items: AsyncIterator[BulkItem]) -> BulkStats:
        """Process all items window by window, keeping one Elasticsearch bulk in flight while
        the next window is embedded."""
        started = time.monotonic()
        stats = BulkStats()
        in_flight: asyncio.Task | None = None
        window: list[BulkItem] = []
        size = 0
        try:
            async for item in items:
                window.append(item)
                size += len(item.action_line) + len(item.source_line or b"")
                if len(window) >= WINDOW_ITEMS or size >= WINDOW_BYTES:
                    prepared = await self._prepare(window)
                    if in_flight is not None:
                        self._collect(stats, await in_flight)
                    in_flight = asyncio.create_task(self._send(prepared))
                    window, size = [], 0
            if window:
                prepared = await self._prepare(window)
                if in_flight is not None:
                    self._collect(stats, await in_flight)
                in_flight = asyncio.create_task(self._send(prepared))
            if in_flight is not None:
                self._collect(stats, await in_flight)
                in_flight = None
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
        stats.took_ms = int((time.monotonic() - started) * 1000)
        stats.truncated = self.truncated
        return stats

    @staticmethod
    def _collect(stats: BulkStats, window: list[BulkItem]) -> None:
        for item in window:
            result = item.result or {}
            stats.raw_items.append(dumps_exact(result))
            body = next(iter(result.values()), {}) if result else {}
            if isinstance(body, dict) and body.get("error") is not None:
                stats.errors = True

    # -- preparing a window -------------------------------------------------------------------
    async def _prepare(self, window: list[BulkItem]) -> list[BulkItem]:
        semantics: dict[str, IndexSemantics | None] = {}
        for item in window:
            if item.index is not None and item.index not in semantics:
                semantics[item.index] = await self.semantic.for_write(item.index)
        if self.pipelines is not None:
            await self._run_pipelines(window, semantics)
        fills: list[FillItem] = []
        owners: list[BulkItem] = []
        updates: list[tuple[BulkItem, IndexSemantics, dict[str, Any]]] = []
        for item in window:
            if item.result is not None:
                continue
            sem = semantics.get(item.index) if item.index else None
            if sem is None or item.op == "delete":
                continue
            try:
                if item.source is None:
                    item.source = _parse_line(item.source_line or b"", 0)
                if not isinstance(item.source, dict):
                    raise EsError(400, "illegal_argument_exception", "The document source must be an object")
            except EsError as err:
                item.result = error_item(item, err)
                continue
            if item.op == "update":
                updates.append((item, sem, item.source))
                continue
            try:
                given = await self._precomputed(sem, item.source)
            except EsError as err:
                item.result = error_item(item, err)
                continue
            only = (set(sem.fields) - set(given)) if given else None
            fills.append(FillItem(semantics=sem, source=item.source, previous=item.previous, only_fields=only,
                                  precomputed=given))
            owners.append(item)
        await self._reuse_stored(owners, fills)
        await self._prepare_updates(updates, fills, owners)
        if fills:
            await self.filler.fill(fills)
        finishers, self._finishers = self._finishers, []
        for finish in finishers:
            finish()
        for item, fill in zip(owners, fills, strict=True):
            if fill.truncated:
                self.truncated += 1
            if fill.error is not None:
                item.result = error_item(item, fill.error)
            elif item.op == "update":
                item.forward = (self._action_line(item), dumps_exact(item.source))
            else:
                item.forward = (self._action_line(item), dumps_exact(fill.source))
        return window

    async def _precomputed(self, sem: IndexSemantics, source: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Embeddings the client computed itself, checked against the fields' endpoints."""
        if precomputed.METADATA_FIELD not in source and not any(
                isinstance(source.get(name), dict) for name in sem.fields):
            return {}
        for fld in precomputed.needs_settings(sem, source):
            await self.filler.ensure_model_settings(fld, sem.index)
        single_shot = self.node_version is not None and (await self.node_version.features()).single_shot_embeddings
        return precomputed.extract(sem, source, single_shot=single_shot)

    def _action_line(self, item: BulkItem) -> bytes:
        return dumps_exact({item.op: item.meta})

    async def _reuse_stored(self, owners: list[BulkItem], fills: list[FillItem]) -> None:
        """Documents re-sent with an existing id reuse the embeddings already stored for
        their unchanged chunks (a re-sent bulk costs no inference)."""
        wanted = [(i, (item.index, item.meta["_id"], item.meta.get("routing")))
                  for i, item in enumerate(owners)
                  if item.meta.get("_id") is not None and item.previous is None]
        if not wanted:
            return
        found = await self.fetch([key for _, key in wanted])
        for (position, _), doc in zip(wanted, found, strict=True):
            if doc is not None:
                fills[position].previous = doc[0]

    async def _prepare_updates(self, updates, fills: list[FillItem], owners: list[BulkItem]) -> None:
        if not updates:
            return
        keys = [(item.index, str(item.meta.get("_id")), item.meta.get("routing")) for item, _, _ in updates]
        current = await self.fetch(keys)
        for (item, sem, body), existing in zip(updates, current, strict=True):
            if "script" in body:
                item.result = error_item(item, EsError(
                    400, "illegal_argument_exception",
                    f"Cannot apply update with a script on indices that contain [semantic_text] field(s): "
                    f"{sorted(sem.fields)}"))
                continue
            doc = body.get("doc")
            if doc is not None and not isinstance(doc, dict):
                item.result = error_item(item, EsError(400, "illegal_argument_exception", "[doc] must be an object"))
                continue
            if existing is None:
                upsert = doc if body.get("doc_as_upsert") else body.get("upsert")
                if not isinstance(upsert, dict):
                    continue  # Elasticsearch answers document_missing_exception
                fill = FillItem(semantics=sem, source=copy.deepcopy(upsert))
                fills.append(fill)
                owners.append(item)
                body = dict(body)
                if body.get("doc_as_upsert"):
                    body.pop("doc_as_upsert")
                    body["upsert"] = fill.source
                    body["doc"] = fill.source
                else:
                    body["upsert"] = fill.source
                item.source = body
                continue
            stored, seq_no, primary_term = existing
            touched = _touched_fields(sem, doc or {})
            if not touched:
                continue
            merged = deep_merge(stored, doc or {})
            fill = FillItem(semantics=sem, source=merged, previous=stored, only_fields=touched)
            fills.append(fill)
            owners.append(item)
            new_doc = dict(doc or {})
            new_body = dict(body)
            new_body["doc"] = new_doc
            item.source = new_body
            # Apply the computed inference on top of the partial doc once filled.
            item.meta.setdefault("if_seq_no", seq_no)
            item.meta.setdefault("if_primary_term", primary_term)
            item.meta.pop("retry_on_conflict", None)
            fill_ref = fill

            def finish(fill=fill_ref, doc=new_doc, touched=touched):
                root = fill.source.get(INFERENCE_ROOT) or {}
                doc[INFERENCE_ROOT] = {name: root.get(name) for name in touched}

            self._finishers.append(finish)

    async def _run_pipelines(self, window: list[BulkItem], semantics: dict[str, IndexSemantics | None]) -> None:
        """Run the ingest pipelines the sidecar owns over this window's index/create items."""
        groups: dict[tuple[str, str | None], list[BulkItem]] = {}
        for item in window:
            if item.op not in ("index", "create") or item.index is None:
                continue
            groups.setdefault((item.index, item.meta.get("pipeline") or self.request_pipeline), []).append(item)
        for (index, pipeline), items in groups.items():
            plan = await self.pipelines.plan(index, pipeline, self.caller_headers)
            if plan is None:
                continue
            docs = []
            for item in items:
                try:
                    item.source = _parse_line(item.source_line or b"", 0)
                except EsError as err:
                    item.result = error_item(item, err)
                    continue
                docs.append(item)
            outcomes = await self.pipelines.run(plan, [(it.index, it.meta.get("_id"), it.source) for it in docs])
            for item, outcome in zip(docs, outcomes, strict=True):
                self._apply_outcome(item, outcome)
                if item.index not in semantics:
                    semantics[item.index] = await self.semantic.for_write(item.index)
                if item.result is None and item.forward is None and semantics.get(item.index) is None:
                    item.forward = (self._action_line(item), dumps_exact(item.source))

    def _apply_outcome(self, item: BulkItem, outcome: Any) -> None:
        error = getattr(outcome, "error", None)
        if error is not None:
            item.result = error_item(item, error)
            return
        if getattr(outcome, "dropped", False):
            item.result = {item.op: {"_index": item.index, "_id": item.meta.get("_id"), "_version": -3,
                                     "result": "noop", "status": 200}}
            return
        item.source = outcome.source
        if getattr(outcome, "index", None):
            item.index = outcome.index
            item.meta["_index"] = outcome.index
        if getattr(outcome, "id", None) is not None:
            item.meta["_id"] = outcome.id
        # Processors may set routing and versioning metadata (_routing, _version, …).
        for key in ("routing", "version", "version_type", "if_seq_no", "if_primary_term"):
            value = getattr(outcome, key, None)
            if value is not None:
                item.meta[key] = value
        forward_pipeline = getattr(outcome, "forward_pipeline", "_none")
        if forward_pipeline is not None:
            item.meta["pipeline"] = forward_pipeline

    # -- sending -------------------------------------------------------------------------------
    async def _send(self, window: list[BulkItem]) -> list[BulkItem]:
        body = bytearray()
        sent: list[BulkItem] = []
        for item in window:
            if item.result is not None:
                continue
            action, source = item.forward or (item.action_line, item.source_line)
            body += action + b"\n"
            if source is not None:
                body += source + b"\n"
            sent.append(item)
        if not sent:
            return window
        status, response = await self.send(body)
        if status >= 300 or not isinstance(response, dict) or "items" not in response:
            err = EsError(status if status >= 400 else 500, "status_exception",
                          f"Elasticsearch rejected the bulk request: {response}")
            if isinstance(response, dict) and isinstance(response.get("error"), dict):
                e = response["error"]
                err = EsError(response.get("status", status), e.get("type", "exception"), e.get("reason", ""))
            raise err
        for item, result in zip(sent, response["items"], strict=True):
            item.result = result
        return window
