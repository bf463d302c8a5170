"""Filling semantic_text fields: chunk each document's text, embed the chunks in batches
across documents, and write the results under ``_sidecar_inference`` (see
:mod:`sidecar.semantic.layout`).

Nothing is paid twice: a chunk whose text is already embedded with the same endpoint — in
the previous version of the document, earlier in the same request, or in the recent-chunk
cache — reuses that embedding. Identical chunk texts in one batch are embedded once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..chunking import DEFAULT_CHUNKING_SETTINGS, chunk_text
from ..chunking.offsets import OffsetMap
from ..errors import EsError, status_exception
from ..inference import Inference
from ..protocol.service import Endpoint, InputType, TaskType
from ..semantic.layout import INFERENCE_ROOT, NUL, model_settings_for
from ..semantic.metadata import IndexSemantics, SemanticField
from ..semantic.values import field_text, field_values, get_path

log = logging.getLogger("sidecar.semantic")

# Texts per call to a service; the local runtime re-batches them by length.
CALL_SIZE = 256
# Calls of one fill (one bulk window) waiting on a service at once. A window of long documents
# holds thousands of chunks: sent all at once, two concurrent bulks could fill a local
# deployment's queue (10,000 inputs) and have their items refused with 429, and a remote
# provider would get dozens of parallel requests. Four calls (1,024 texts) keep a model busy
# for seconds on CPU and several full GPU batches queued.
CALLS_IN_FLIGHT = 4
@dataclass
class FillItem:
    """One document to fill. ``source`` is updated in place."""

    semantics: IndexSemantics
    source: dict[str, Any]
    previous: dict[str, Any] | None = None
    # Fields to (re)compute; None means all semantic fields of the index.
    only_fields: set[str] | None = None
    # Chunks the client sent already embedded, per field (see sidecar.semantic.precomputed).
    precomputed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: EsError | None = None
    truncated: bool = False


@dataclass
class _Chunk:
    item: int
    field: str
    source: str
    start16: int
    end16: int
    text: str
    embedding: Any = None


@dataclass
class _Job:
    endpoint: Endpoint
    texts: dict[str, list[_Chunk]] = field(default_factory=dict)


class EmbeddingCache:
    """A small LRU of recent chunk embeddings keyed by (inference id, text hash)."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, bytes], Any] = OrderedDict()

    @staticmethod
    def key(inference_id: str, text: str) -> tuple[str, bytes]:
        return inference_id, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, inference_id: str, text: str) -> Any:
        k = self.key(inference_id, text)
        value = self._data.get(k)
        if value is not None:
            self._data.move_to_end(k)
        return value

    def put(self, inference_id: str, text: str, value: Any) -> None:
        if self.size <= 0:
            return
        k = self.key(inference_id, text)
        self._data[k] = value
        self._data.move_to_end(k)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


# Resolves an inference id to an endpoint (None if unknown).
EndpointResolver = Callable[[str], Awaitable[Endpoint | None]]
# Records model_settings for a field mapped before its endpoint existed.
SettingsRecorder = Callable[[str, SemanticField, dict[str, Any]], Awaitable[None]]


class SemanticFiller:
    def __init__(self, resolve: EndpointResolver, inference: Inference, *,
                 record_settings: SettingsRecorder | None = None,
                 cache: EmbeddingCache | None = None, timeout_s: float | None = 300.0) -> None:
        self.resolve = resolve
        self.inference = inference
        self.record_settings = record_settings
        self.cache = cache if cache is not None else EmbeddingCache()
        self.timeout_s = timeout_s
        self.inference_calls = 0
        self.embedded_texts = 0

    async def fill(self, items: list[FillItem]) -> None:
        endpoints: dict[str, Endpoint | EsError] = {}
        jobs: dict[str, _Job] = {}
        chunks_by_item: dict[int, dict[str, list[_Chunk]]] = {}
        for position, item in enumerate(items):
            if item.error is not None:
                continue
            try:
                per_field = await self._plan_item(position, item, endpoints, jobs)
            except EsError as err:
                item.error = err
                continue
            chunks_by_item[position] = per_field
        await self._run_jobs(jobs, items)
        for position, per_field in chunks_by_item.items():
            item = items[position]
            if item.error is not None:
                continue
            root = item.source.get(INFERENCE_ROOT)
            root = dict(root) if isinstance(root, dict) else {}
            for name, given in item.precomputed.items():
                root[name] = {"inference_id": item.semantics.fields[name].inference_id, "chunks": given}
            for name, chunks in per_field.items():
                if chunks is None:
                    root.pop(name, None)
                    continue
                fld = item.semantics.fields[name]
                root[name] = {
                    "inference_id": fld.inference_id,
                    "chunks": [
                        {"source": c.source, "start_offset": c.start16, "end_offset": c.end16,
                         "embeddings": c.embedding}
                        for c in chunks
                    ],
                }
            if root:
                item.source[INFERENCE_ROOT] = root
            else:
                item.source.pop(INFERENCE_ROOT, None)

    async def ensure_model_settings(self, fld: SemanticField, index: str) -> None:
        """Resolve a field's endpoint (recording its model settings if still unknown)."""
        await self._endpoint_for(fld, index, {})

    async def _endpoint_for(self, fld: SemanticField, index: str,
                            endpoints: dict[str, Endpoint | EsError]) -> Endpoint:
        cached = endpoints.get(fld.inference_id)
        if cached is None:
            endpoint = await self.resolve(fld.inference_id)
            if endpoint is None:
                cached = EsError(404, "resource_not_found_exception",
                                 f"Inference id [{fld.inference_id}] not found for field [{fld.name}]")
            elif endpoint.task_type not in (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING):
                cached = status_exception(
                    400, f"Field [{fld.name}] cannot use inference endpoint [{fld.inference_id}] with task type "
                    f"[{endpoint.task_type.value}]")
            else:
                cached = endpoint
            endpoints[fld.inference_id] = cached
        if isinstance(cached, EsError):
            raise cached
        settings = model_settings_for(cached.public())
        if fld.model_settings is None:
            if self.record_settings is not None:
                await self.record_settings(index, fld, settings)
            fld.model_settings = settings
        elif fld.model_settings != settings:
            raise status_exception(
                400, f"Incompatible model settings for field [{fld.name}]. Check that the "
                f"[{fld.inference_id}] inference endpoint is still the one the field was created with.")
        return cached

    async def _plan_item(self, position: int, item: FillItem, endpoints, jobs) -> dict[str, list[_Chunk] | None]:
        per_field: dict[str, list[_Chunk] | None] = {}
        semantics = item.semantics
        for name, fld in semantics.fields.items():
            if item.only_fields is not None and name not in item.only_fields:
                continue
            sources = [name] + sorted(s for s, targets in semantics.copy_to.items() if name in targets)
            texts: list[tuple[str, list[str]]] = []
            for src in sources:
                values = field_values(get_path(item.source, src), src)
                if values:
                    texts.append((src, values))
            if not texts:
                per_field[name] = None
                continue
            endpoint = await self._endpoint_for(fld, semantics.index, endpoints)
            settings = fld.chunking_settings or endpoint.chunking_settings or DEFAULT_CHUNKING_SETTINGS
            reuse = self._previous_embeddings(item.previous, name, fld.inference_id)
            job = jobs.setdefault(endpoint.inference_id, _Job(endpoint))
            chunks: list[_Chunk] = []
            for src, values in texts:
                # Each value is chunked on its own; offsets index into the values joined with
                # NUL, as Elasticsearch concatenates a multi-valued field.
                offsets = OffsetMap(NUL.join(values))
                base = 0
                for value in values:
                    for piece in chunk_text(value, settings):
                        if not piece.text.strip(NUL):
                            continue
                        chunk = _Chunk(position, name, src, offsets.to_16(base + piece.start),
                                       offsets.to_16(base + piece.end), piece.text)
                        known = reuse.get(piece.text)
                        if known is None:
                            known = self.cache.get(endpoint.inference_id, piece.text)
                        if known is not None:
                            chunk.embedding = known
                        else:
                            job.texts.setdefault(piece.text, []).append(chunk)
                        chunks.append(chunk)
                    base += len(value) + 1
            per_field[name] = chunks
        return per_field

    @staticmethod
    def _previous_embeddings(previous: dict[str, Any] | None, name: str, inference_id: str) -> dict[str, Any]:
        """chunk text → embedding from the stored version of the document."""
        if not previous:
            return {}
        stored = (previous.get(INFERENCE_ROOT) or {}).get(name)
        if not isinstance(stored, dict) or stored.get("inference_id") != inference_id:
            return {}
        out: dict[str, Any] = {}
        texts: dict[str, tuple[str, OffsetMap] | None] = {}
        for chunk in stored.get("chunks") or []:
            src = chunk.get("source", name)
            if src not in texts:
                try:
                    text = field_text(get_path(previous, src), src)
                except EsError:
                    text = None
                texts[src] = (text, OffsetMap(text)) if text is not None else None
            entry = texts[src]
            if entry is None:
                continue
            text, offsets = entry
            try:
                start, end = offsets.to_py(chunk["start_offset"]), offsets.to_py(chunk["end_offset"])
            except (KeyError, ValueError, TypeError):
                continue
            if chunk.get("embeddings") is not None:
                out[text[start:end]] = chunk["embeddings"]
        return out

    async def _run_jobs(self, jobs: dict[str, _Job], items: list[FillItem]) -> None:
        gate = asyncio.Semaphore(CALLS_IN_FLIGHT)

        async def paced(job: _Job, texts: list[str]) -> None:
            async with gate:
                await self._embed(job, texts, items)

        calls = []
        for job in jobs.values():
            # Longest first and in length order: model batches then pad little (as
            # SentenceTransformer.encode sorts its input).
            texts = sorted(job.texts, key=len, reverse=True)
            for i in range(0, len(texts), CALL_SIZE):
                calls.append(paced(job, texts[i:i + CALL_SIZE]))
        if calls:
            await asyncio.gather(*calls)

    async def _embed(self, job: _Job, texts: list[str], items: list[FillItem]) -> None:
        endpoint = job.endpoint
        target = self.inference.of(endpoint)
        self.inference_calls += 1
        self.embedded_texts += len(texts)
        try:
            if endpoint.task_type is TaskType.SPARSE_EMBEDDING:
                results = await self.inference.sparse_embed(target, texts, InputType.INGEST, endpoint.task_settings,
                                                            self.timeout_s)
                values: list[Any] = [r.tokens for r in results]
                truncated = [r.is_truncated for r in results]
            else:
                dense = await self.inference.embed(target, texts, InputType.INGEST, endpoint.task_settings,
                                                   self.timeout_s)
                vectors = np.asarray(dense.vectors)
                values = [vectors[i] for i in range(len(texts))]
                truncated = list(dense.truncated or [False] * len(texts))
            if len(values) != len(texts):
                raise status_exception(
                    500, f"inference endpoint [{endpoint.inference_id}] returned {len(values)} results for "
                    f"{len(texts)} inputs")
        except EsError as err:
            if 400 <= err.status < 500 and err.status not in (408, 429) and len(texts) > 1:
                # A request the provider refuses as a whole may be refused for one input:
                # split it so that only the documents with offending inputs fail.
                half = len(texts) // 2
                await asyncio.gather(self._embed(job, texts[:half], items), self._embed(job, texts[half:], items))
                return
            self._fail(job, texts, items, err)
            return
        except Exception as exc:  # a provider/runtime bug must fail the items, never lose them
            log.exception("inference failed for endpoint %s", endpoint.inference_id)
            self._fail(job, texts, items, status_exception(500, f"inference failed: {type(exc).__name__}: {exc}"))
            return
        for text, value, was_truncated in zip(texts, values, truncated, strict=True):
            self.cache.put(endpoint.inference_id, text, value)
            for chunk in job.texts[text]:
                chunk.embedding = value
                if was_truncated:
                    items[chunk.item].truncated = True

    @staticmethod
    def _fail(job: _Job, texts: list[str], items: list[FillItem], err: EsError) -> None:
        for text in texts:
            for chunk in job.texts[text]:
                item = items[chunk.item]
                if item.error is None:
                    item.error = EsError(
                        err.status, err.type,
                        f"Exception when running inference id [{job.endpoint.inference_id}] on field "
                        f"[{chunk.field}]: {err.reason}",
                    )
