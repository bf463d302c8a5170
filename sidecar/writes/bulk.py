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
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import EsError
from ..es.node import NodeVersion
from ..ingest.service import Pipelines
from ..semantic.metadata import IndexSemantics, SemanticIndices
from .documents import Documents
from .fill import SemanticFiller
from .items import BulkItem, dumps_exact
from .pipeline_step import PipelineStep
from .semantic_step import SemanticStep

WINDOW_ITEMS = 512
WINDOW_BYTES = 8 * 1024 * 1024


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
    """One write request's items, window by window: the pipeline step, the semantic_text
    step, then one bulk to Elasticsearch (with the caller's credentials) per window."""

    def __init__(self, semantic: SemanticIndices, filler: SemanticFiller, documents: Documents, *,
                 pipelines: Pipelines | None = None, request_pipeline: str | None = None,
                 node_version: NodeVersion | None = None) -> None:
        self.semantic = semantic
        self.documents = documents
        self.pipeline_step = (PipelineStep(pipelines, semantic, request_pipeline)
                              if pipelines is not None else None)
        self.semantic_step = SemanticStep(filler, documents, node_version)

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
        stats.truncated = self.semantic_step.truncated
        return stats

    @staticmethod
    def _collect(stats: BulkStats, window: list[BulkItem]) -> None:
        for item in window:
            result = item.result or {}
            stats.raw_items.append(dumps_exact(result))
            body = next(iter(result.values()), {}) if result else {}
            if isinstance(body, dict) and body.get("error") is not None:
                stats.errors = True

    async def _prepare(self, window: list[BulkItem]) -> list[BulkItem]:
        semantics: dict[str, IndexSemantics | None] = {}
        for item in window:
            if item.index is not None and item.index not in semantics:
                semantics[item.index] = await self.semantic.for_write(item.index)
        if self.pipeline_step is not None:
            await self.pipeline_step.run(window, semantics)
        await self.semantic_step.run(window, semantics)
        return window

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
        status, response = await self.documents.bulk(bytes(body))
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
