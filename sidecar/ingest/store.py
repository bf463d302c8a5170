"""Pipelines with inference processors, kept in a hidden Elasticsearch index.

One document per pipeline (id = pipeline id) in ``.sidecar-pipelines`` (hidden, one shard,
strict mapping, created by the first write; reads never create it): the definition exactly as the user wrote it
(``config``, not indexed), the inference endpoints it uses (``model_ids``, for the
"endpoint in use" check of ``DELETE _inference``) and timestamps.

Reads are cached for ``ttl_s`` (misses too), so that the bulk path does not read the index
for every request; replicas of the sidecar agree within that time. After that, concurrent
requests share one re-read, and a read that began before a write of this process caches
nothing.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from ..errors import EsError
from ..es.cache import Entry, ReadCache
from ..es.errors import CLIENT_FAILURES, translate
from ..es.system_indices import SETTINGS
from .definition import CompiledPipeline, compile_pipeline, model_ids

_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "pipeline_id": {"type": "keyword"},
        "config": {"type": "object", "enabled": False},
        "model_ids": {"type": "keyword"},
        "created_at": {"type": "date", "format": "epoch_millis"},
        "updated_at": {"type": "date", "format": "epoch_millis"},
    },
}
_FAILURES = CLIENT_FAILURES


def index_name(system_index_prefix: str) -> str:
    """``.sidecar-pipelines`` for the default prefix ``.sidecar-inference``."""
    base = system_index_prefix.removesuffix("-inference")
    return f"{base}-pipelines"


def _failure(exc: Exception) -> EsError:
    return translate(exc, "pipeline store")


class PipelineStore:
    def __init__(self, es: AsyncElasticsearch, *, index: str = ".sidecar-pipelines", ttl_s: float = 1.0) -> None:
        self.es = es
        self.index = index
        # ("get", id) → the compiled pipeline or None; ("any",) → whether any is stored.
        self._cache: ReadCache[Any] = ReadCache(ttl_s)
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure_index(self, *, check: bool = False) -> None:
        """Create the index unless it exists. ``check`` looks again even when it was seen
        (before writes, so that a wiped cluster never gets an auto-created, visible index)."""
        if self._ready and not check:
            return
        async with self._lock:
            try:
                created = await self.es.options(ignore_status=400).indices.create(
                    index=self.index, settings=SETTINGS, mappings=_MAPPING
                )
                error = created.body.get("error") if isinstance(created.body, dict) else None
                if error and error.get("type") != "resource_already_exists_exception":
                    raise EsError(created.meta.status, error.get("type", "exception"), error.get("reason", ""))
                await self.es.cluster.health(index=self.index, wait_for_status="yellow", timeout="30s")
            except _FAILURES as exc:
                raise _failure(exc) from exc
            self._ready = True

    def forget(self, pipeline_id: str | None = None) -> None:
        if pipeline_id is None:
            self._cache.forget()
        else:
            self._cache.forget(("any",))
            self._cache.forget(("get", pipeline_id))

    # -- reads -----------------------------------------------------------------------------------
    async def get(self, pipeline_id: str) -> CompiledPipeline | None:
        """The stored pipeline (compiled), or None when the sidecar does not hold that id."""
        return await self._cache.get(("get", pipeline_id), lambda _: self._load(pipeline_id), None)

    async def _load(self, pipeline_id: str) -> Entry[CompiledPipeline | None]:
        try:
            doc = await self.es.get(index=self.index, id=pipeline_id)
            pipeline = compile_pipeline(pipeline_id, doc["_source"]["config"])
        except NotFoundError as exc:
            if "index_not_found" in str(exc):
                self._ready = False  # re-created (hidden) by the next write
            pipeline = None
        except _FAILURES as exc:
            raise _failure(exc) from exc
        return Entry(pipeline, time.monotonic())

    async def configs(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored definitions of ``ids`` (those the sidecar holds), as written."""
        if not ids:
            return {}
        try:
            resp = await self.es.mget(index=self.index, ids=ids)
        except NotFoundError:
            return {}
        except _FAILURES as exc:
            raise _failure(exc) from exc
        return {d["_id"]: d["_source"]["config"] for d in resp["docs"] if d.get("found")}

    async def _search(self, query: dict[str, Any]) -> list[str]:
        try:
            resp = await self.es.search(index=self.index, query=query, size=10_000, source=False,
                                        sort=[{"pipeline_id": "asc"}])
        except NotFoundError:
            return []
        except _FAILURES as exc:
            raise _failure(exc) from exc
        return [hit["_id"] for hit in resp["hits"]["hits"]]

    async def ids(self, patterns: list[str] | None = None) -> list[str]:
        every = await self._search({"match_all": {}})
        if not patterns:
            return every
        return [i for i in every if any(fnmatch.fnmatchcase(i, p) for p in patterns)]

    async def any(self) -> bool:
        """Whether any pipeline is stored (cached for ``ttl_s``)."""
        return await self._cache.get(("any",), lambda _: self._load_any(), False)

    def known_empty(self) -> bool:
        """True while the cached answer of :meth:`any` is fresh and says no pipeline is
        stored; never waits."""
        entry = self._cache.fresh(("any",))
        return entry is not None and not entry.value

    async def _load_any(self) -> Entry[bool]:
        try:
            resp = await self.es.count(index=self.index)
            found = resp["count"] > 0
        except NotFoundError:
            found = False
        except _FAILURES as exc:
            raise _failure(exc) from exc
        return Entry(found, time.monotonic())

    async def using(self, inference_id: str) -> list[str]:
        """Ids of the pipelines whose inference processors use ``inference_id``."""
        return await self._search({"term": {"model_ids": inference_id}})

    # -- writes ----------------------------------------------------------------------------------
    async def put(self, pipeline_id: str, body: dict[str, Any]) -> None:
        await self.ensure_index(check=True)
        now = int(time.time() * 1000)
        created = now
        try:
            try:
                current = await self.es.get(index=self.index, id=pipeline_id, source_includes=["created_at"])
                created = current["_source"].get("created_at", now)
            except NotFoundError:
                pass
            await self.es.index(
                index=self.index, id=pipeline_id, refresh="true",
                document={"pipeline_id": pipeline_id, "config": body, "model_ids": model_ids(body),
                          "created_at": created, "updated_at": now},
            )
        except _FAILURES as exc:
            raise _failure(exc) from exc
        self.forget(pipeline_id)

    async def delete(self, pipeline_ids: list[str]) -> None:
        if not pipeline_ids:
            return
        for pipeline_id in pipeline_ids:
            try:
                await self.es.delete(index=self.index, id=pipeline_id, refresh="true")
            except NotFoundError:
                pass
            except _FAILURES as exc:
                raise _failure(exc) from exc
            self.forget(pipeline_id)
