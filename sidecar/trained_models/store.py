"""Trained models kept in hidden Elasticsearch indices, like every other piece of sidecar state.

* ``<prefix>`` (default ``.sidecar-trained-models``): one document per model config
  (``kind: model``, id = model id) and one per deployment (``kind: deployment``, id =
  ``deployment|<deployment id>``), so that every replica, and a restarted sidecar, knows
  which deployments to run;
* ``<prefix>-definition``: the definition parts exactly as uploaded (base64, one document per
  part, id ``<model id>|part|<n>``) and the vocabulary (id ``<model id>|vocabulary``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, ConflictError, NotFoundError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import TransportError as EsTransportError

from ..errors import EsError, status_exception, unavailable
from ..es.system_indices import ensure_hidden_indices

_CONFIG_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "kind": {"type": "keyword"},
        "model_id": {"type": "keyword"},
        "deployment_id": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "config": {"type": "object", "enabled": False},
        "created_at": {"type": "date", "format": "epoch_millis"},
    },
}
_DEFINITION_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "kind": {"type": "keyword"},
        "model_id": {"type": "keyword"},
        "part": {"type": "integer"},
        "total_parts": {"type": "integer"},
        "total_definition_length": {"type": "long"},
        "definition": {"type": "binary"},
        "vocabulary": {"type": "object", "enabled": False},
    },
}
_FAILURES = (EsConnectionError, EsTransportError, ApiError)


def _failure(exc: Exception) -> EsError:
    if isinstance(exc, EsConnectionError):
        return unavailable(f"Elasticsearch is unavailable: {exc}")
    return status_exception(500, f"Failed to access the trained model store: {exc}")


def part_id(model_id: str, part: int) -> str:
    return f"{model_id}|part|{part}"


def vocabulary_id(model_id: str) -> str:
    return f"{model_id}|vocabulary"


def deployment_doc_id(deployment_id: str) -> str:
    return f"deployment|{deployment_id}"


class TrainedModelStore:
    def __init__(self, es: AsyncElasticsearch, *, prefix: str = ".sidecar-trained-models") -> None:
        self.es = es
        self.index = prefix
        self.definition_index = f"{prefix}-definition"
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure_indices(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            try:
                await ensure_hidden_indices(
                    self.es, {self.index: _CONFIG_MAPPING, self.definition_index: _DEFINITION_MAPPING},
                    wait_for=self.index)
            except _FAILURES as exc:
                raise _failure(exc) from exc
            self._ready = True

    async def present(self) -> bool:
        """Whether the store's indices exist (nothing is created)."""
        try:
            return bool(await self.es.indices.exists(index=self.index, expand_wildcards="all"))
        except _FAILURES as exc:
            raise _failure(exc) from exc

    async def _call(self, coro):
        try:
            return await coro
        except NotFoundError as exc:
            if "index_not_found" in str(exc):
                self._ready = False
            raise
        except ConflictError:
            raise
        except _FAILURES as exc:
            raise _failure(exc) from exc

    # -- model configs -----------------------------------------------------------------------
    async def create(self, config: dict[str, Any]) -> bool:
        """Store a new config; False when the id is taken."""
        await self.ensure_indices()
        doc = {"kind": "model", "model_id": config["model_id"], "tags": config.get("tags", []),
               "config": config, "created_at": config["create_time"]}
        try:
            await self._call(self.es.index(index=self.index, id=config["model_id"], document=doc,
                                           op_type="create", refresh="true"))
        except ConflictError:
            return False
        return True

    async def replace(self, config: dict[str, Any]) -> None:
        await self.ensure_indices()
        doc = {"kind": "model", "model_id": config["model_id"], "tags": config.get("tags", []),
               "config": config, "created_at": config["create_time"]}
        await self._call(self.es.index(index=self.index, id=config["model_id"], document=doc, refresh="true"))

    async def get(self, model_id: str) -> dict[str, Any] | None:
        await self.ensure_indices()
        try:
            doc = await self._call(self.es.get(index=self.index, id=model_id))
        except NotFoundError:
            return None
        source = doc["_source"]
        return source["config"] if source.get("kind") == "model" else None

    async def list(self) -> list[dict[str, Any]]:
        await self.ensure_indices()
        try:
            resp = await self._call(self.es.search(
                index=self.index, query={"term": {"kind": "model"}}, size=10_000, sort=[{"model_id": "asc"}]))
        except NotFoundError:
            return []
        return [hit["_source"]["config"] for hit in resp["hits"]["hits"]]

    async def delete(self, model_id: str) -> None:
        await self.ensure_indices()
        try:
            await self._call(self.es.delete(index=self.index, id=model_id, refresh="true"))
        except NotFoundError:
            pass
        # Parts and vocabulary by id (delete-by-query is a module a node may not have).
        try:
            resp = await self._call(self.es.search(
                index=self.definition_index, query={"term": {"model_id": model_id}}, size=10_000, source=False))
        except NotFoundError:
            return
        operations = [{"delete": {"_index": self.definition_index, "_id": hit["_id"]}}
                      for hit in resp["hits"]["hits"]]
        if operations:
            await self._call(self.es.bulk(operations=operations, refresh="true"))

    # -- definition parts and vocabulary ------------------------------------------------------
    async def put_part(self, model_id: str, part: int, definition: str, total_parts: int,
                       total_length: int) -> bool:
        """Store one part; False when that part already exists."""
        await self.ensure_indices()
        doc = {"kind": "part", "model_id": model_id, "part": part, "total_parts": total_parts,
               "total_definition_length": total_length, "definition": definition}
        try:
            await self._call(self.es.index(index=self.definition_index, id=part_id(model_id, part), document=doc,
                                           op_type="create", refresh="true"))
        except ConflictError:
            return False
        return True

    async def parts_summary(self, model_id: str) -> tuple[int, int | None, int | None]:
        """(parts stored, total_parts, total_definition_length) of a model's definition."""
        await self.ensure_indices()
        try:
            resp = await self._call(self.es.search(
                index=self.definition_index, size=1, track_total_hits=True,
                query={"bool": {"filter": [{"term": {"model_id": model_id}}, {"term": {"kind": "part"}}]}},
                source=["total_parts", "total_definition_length"]))
        except NotFoundError:
            return 0, None, None
        hits = resp["hits"]["hits"]
        if not hits:
            return 0, None, None
        first = hits[0]["_source"]
        return resp["hits"]["total"]["value"], first["total_parts"], first["total_definition_length"]

    async def definition(self, model_id: str) -> bytes:
        """The whole definition, parts in order, decoded."""
        await self.ensure_indices()
        chunks: list[bytes] = []
        search_after = None
        while True:
            kwargs: dict[str, Any] = {"search_after": search_after} if search_after else {}
            resp = await self._call(self.es.search(
                index=self.definition_index, size=4, sort=[{"part": "asc"}],
                query={"bool": {"filter": [{"term": {"model_id": model_id}}, {"term": {"kind": "part"}}]}},
                **kwargs))
            hits = resp["hits"]["hits"]
            if not hits:
                return b"".join(chunks)
            chunks.extend(base64.b64decode(h["_source"]["definition"]) for h in hits)
            search_after = hits[-1]["sort"]

    async def put_vocabulary(self, model_id: str, vocabulary: dict[str, Any]) -> None:
        await self.ensure_indices()
        await self._call(self.es.index(
            index=self.definition_index, id=vocabulary_id(model_id), refresh="true",
            document={"kind": "vocabulary", "model_id": model_id, "vocabulary": vocabulary}))

    async def vocabulary(self, model_id: str) -> dict[str, Any] | None:
        await self.ensure_indices()
        try:
            doc = await self._call(self.es.get(index=self.definition_index, id=vocabulary_id(model_id)))
        except NotFoundError:
            return None
        return doc["_source"]["vocabulary"]

    # -- deployments ---------------------------------------------------------------------------
    async def put_deployment(self, deployment_id: str, model_id: str, settings: dict[str, Any]) -> None:
        await self.ensure_indices()
        await self._call(self.es.index(
            index=self.index, id=deployment_doc_id(deployment_id), refresh="true",
            document={"kind": "deployment", "model_id": model_id, "deployment_id": deployment_id,
                      "config": settings, "created_at": int(time.time() * 1000)}))

    async def delete_deployment(self, deployment_id: str) -> None:
        await self.ensure_indices()
        try:
            await self._call(self.es.delete(index=self.index, id=deployment_doc_id(deployment_id), refresh="true"))
        except NotFoundError:
            pass

    async def deployments(self) -> list[dict[str, Any]]:
        """Stored deployments: ``{"deployment_id", "model_id", "config"}``."""
        await self.ensure_indices()
        try:
            resp = await self._call(self.es.search(
                index=self.index, query={"term": {"kind": "deployment"}}, size=10_000,
                sort=[{"deployment_id": "asc"}]))
        except NotFoundError:
            return []
        return [hit["_source"] for hit in resp["hits"]["hits"]]


def digest(config: dict[str, Any]) -> str:
    """Tells one upload of a model id from another (a re-upload after a delete)."""
    return hashlib.sha1(f"{config['model_id']}|{config['create_time']}".encode()).hexdigest()[:12]
