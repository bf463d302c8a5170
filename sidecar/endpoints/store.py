"""Inference endpoint definitions kept in hidden Elasticsearch indices.

Two indices, both hidden and created on first use with strict mappings:

* ``<prefix>`` (default ``.sidecar-inference``): one document per endpoint, id = inference_id,
  holding the public configuration (what GET shows);
* ``<prefix>-secrets``: the encrypted secret settings, id = inference_id.

The definition is written first with ``op_type=create`` (that claims the id), then the
secrets. A crash in between leaves an endpoint that can still be read and deleted; using it
reports that its secrets are missing. Definitions are cached in memory; a cached entry is
re-validated against the stored ``_seq_no``/``_primary_term`` once it is older than the TTL,
so replicas of the sidecar on one Elasticsearch agree within that time. The re-check is
single-flight: however many requests find an entry expired, one of them asks Elasticsearch
and the others wait for that answer (an answer that started before a write of this process
is never cached nor handed to requests that came after the write).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from ..errors import EsError, already_exists, status_exception
from ..es.cache import Entry, ReadCache
from ..es.errors import CLIENT_FAILURES, translate
from ..es.system_indices import ensure_hidden_indices
from ..protocol.service import Endpoint, TaskType
from .secrets import SecretBox

# Ids a stored endpoint can have (creation validates them): anything else is simply absent,
# and never reaches Elasticsearch as a document id ("." or ".." would change the URL path).
_STORABLE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")

_CONFIG_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "inference_id": {"type": "keyword"},
        "task_type": {"type": "keyword"},
        "service": {"type": "keyword"},
        "config": {"type": "object", "enabled": False},
        "has_secrets": {"type": "boolean"},
        "created_at": {"type": "date", "format": "epoch_millis"},
        "updated_at": {"type": "date", "format": "epoch_millis"},
    },
}
_SECRETS_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "inference_id": {"type": "keyword"},
        "ciphertext": {"type": "keyword", "index": False, "doc_values": False},
    },
}


_STORE = "inference endpoint store"


def _es_failure(exc: Exception) -> EsError:
    return translate(exc, _STORE)


class EndpointStore:
    def __init__(self, es: AsyncElasticsearch, secrets: SecretBox, *, prefix: str = ".sidecar-inference",
                 ttl_s: float = 1.0) -> None:
        self.es = es
        self.secrets = secrets
        self.index = prefix
        self.secrets_index = f"{prefix}-secrets"
        self._cache: ReadCache[Endpoint] = ReadCache(ttl_s)
        self._ready = False
        self._ready_lock = asyncio.Lock()

    # -- setup -----------------------------------------------------------------------------
    async def ensure_indices(self, *, check: bool = False) -> None:
        """Create the indices if missing. ``check`` re-verifies even when known to exist
        (before writes, so that a wiped cluster never gets auto-created, unhidden indices)."""
        if self._ready and not check:
            return
        async with self._ready_lock:
            if self._ready and not check:
                return
            try:
                await ensure_hidden_indices(
                    self.es, {self.index: _CONFIG_MAPPING, self.secrets_index: _SECRETS_MAPPING}, wait_for=self.index)
            except CLIENT_FAILURES as exc:
                raise _es_failure(exc) from exc
            self._ready = True

    def _forget_indices(self, exc: Exception) -> None:
        if isinstance(exc, NotFoundError) and "index_not_found" in str(exc):
            self._ready = False
            self._cache.forget()

    def _written(self, inference_id: str) -> None:
        self._cache.forget(inference_id)

    # -- reads -----------------------------------------------------------------------------
    def _to_endpoint(self, source: dict[str, Any], secrets: dict[str, Any] | None) -> Endpoint:
        cfg = source["config"]
        return Endpoint(
            inference_id=cfg["inference_id"],
            task_type=TaskType(cfg["task_type"]),
            service=cfg["service"],
            service_settings=cfg.get("service_settings", {}),
            task_settings=cfg.get("task_settings", {}),
            chunking_settings=cfg.get("chunking_settings"),
            secrets=secrets or {},
        )

    async def _load_secrets(self, inference_id: str, has_secrets: bool) -> dict[str, Any] | None:
        if not has_secrets:
            return {}
        try:
            doc = await self.es.get(index=self.secrets_index, id=inference_id)
        except NotFoundError:
            return None
        return self.secrets.decrypt(doc["_source"]["ciphertext"], inference_id)

    async def get(self, inference_id: str) -> Endpoint | None:
        """The endpoint with its secrets, or None. Uses the cache within its TTL; after it,
        concurrent callers share one re-check."""
        if not _STORABLE_ID.match(inference_id):
            return None
        return await self._cache.get(inference_id, lambda cached: self._load(inference_id, cached), None)

    async def _load(self, inference_id: str, cached: Entry[Endpoint] | None) -> Entry[Endpoint] | None:
        now = time.monotonic()
        await self.ensure_indices()
        try:
            if cached is not None:
                head = await self.es.get(index=self.index, id=inference_id, source=False)
                if (head["_seq_no"], head["_primary_term"]) == cached.version:
                    return Entry(cached.value, now, cached.version)
            doc = await self.es.get(index=self.index, id=inference_id)
        except NotFoundError as exc:
            self._forget_indices(exc)
            return None
        except CLIENT_FAILURES as exc:
            raise _es_failure(exc) from exc
        source = doc["_source"]
        secrets = await self._load_secrets(inference_id, source.get("has_secrets", False))
        endpoint = self._to_endpoint(source, secrets)
        if secrets is None:
            endpoint.secrets_missing = True
        return Entry(endpoint, now, (doc["_seq_no"], doc["_primary_term"]))

    async def list(self, task_type: TaskType | None = None) -> list[Endpoint]:
        """All stored endpoints (without secrets), sorted by id."""
        await self.ensure_indices()
        query: dict[str, Any] = {"match_all": {}}
        if task_type is not None:
            query = {"term": {"task_type": task_type.value}}
        out: list[Endpoint] = []
        try:
            resp = await self.es.search(
                index=self.index, query=query, size=10_000, sort=[{"inference_id": "asc"}],
                expand_wildcards="all",
            )
        except NotFoundError as exc:
            self._forget_indices(exc)
            return []
        except CLIENT_FAILURES as exc:
            raise _es_failure(exc) from exc
        for hit in resp["hits"]["hits"]:
            out.append(self._to_endpoint(hit["_source"], {}))
        return out

    async def exists(self, inference_id: str) -> bool:
        if not _STORABLE_ID.match(inference_id):
            return False
        await self.ensure_indices()
        try:
            return bool(await self.es.exists(index=self.index, id=inference_id))
        except CLIENT_FAILURES as exc:
            raise _es_failure(exc) from exc

    # -- writes ----------------------------------------------------------------------------
    @staticmethod
    def _document(endpoint: Endpoint, created_at: int | None = None) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {
            "inference_id": endpoint.inference_id,
            "task_type": endpoint.task_type.value,
            "service": endpoint.service,
            "config": endpoint.public(),
            "has_secrets": bool(endpoint.secrets),
            "created_at": created_at or now,
            "updated_at": now,
        }

    async def create(self, endpoint: Endpoint) -> None:
        await self.ensure_indices(check=True)
        ciphertext = self.secrets.encrypt(endpoint.secrets) if endpoint.secrets else None
        try:
            await self.es.index(
                index=self.index, id=endpoint.inference_id, document=self._document(endpoint),
                op_type="create", refresh="true",
            )
        except ConflictError:
            raise already_exists(f"Inference endpoint [{endpoint.inference_id}] already exists") from None
        except CLIENT_FAILURES as exc:
            raise _es_failure(exc) from exc
        if ciphertext is not None:
            try:
                await self.es.index(
                    index=self.secrets_index, id=endpoint.inference_id,
                    document={"inference_id": endpoint.inference_id, "ciphertext": ciphertext},
                    refresh="true",
                )
            except Exception as exc:
                # Roll the definition back so that no endpoint without its secrets remains.
                try:
                    await self.es.delete(index=self.index, id=endpoint.inference_id, refresh="true")
                except Exception:
                    pass
                raise _es_failure(exc) from exc
        self._written(endpoint.inference_id)

    async def replace(self, endpoint: Endpoint, *, secrets_changed: bool) -> None:
        """Overwrite an endpoint; fails with 409 if someone else changed it meanwhile."""
        await self.ensure_indices(check=True)
        try:
            current = await self.es.get(index=self.index, id=endpoint.inference_id)
        except NotFoundError:
            raise status_exception(404, f"Inference endpoint not found [{endpoint.inference_id}]") from None
        if secrets_changed and endpoint.secrets:
            await self.es.index(
                index=self.secrets_index, id=endpoint.inference_id,
                document={"inference_id": endpoint.inference_id,
                          "ciphertext": self.secrets.encrypt(endpoint.secrets)},
                refresh="true",
            )
        try:
            await self.es.index(
                index=self.index, id=endpoint.inference_id,
                document=self._document(endpoint, current["_source"].get("created_at")),
                if_seq_no=current["_seq_no"], if_primary_term=current["_primary_term"], refresh="true",
            )
        except ConflictError:
            raise status_exception(
                409,
                f"Endpoint [{endpoint.inference_id}] is currently being updated. Try again once the update "
                "completes",
            ) from None
        self._written(endpoint.inference_id)

    async def delete(self, inference_id: str) -> bool:
        await self.ensure_indices()
        try:
            await self.es.delete(index=self.index, id=inference_id, refresh="true")
            found = True
        except NotFoundError:
            found = False
        except CLIENT_FAILURES as exc:
            raise _es_failure(exc) from exc
        try:
            await self.es.delete(index=self.secrets_index, id=inference_id, refresh="true")
        except NotFoundError:
            pass
        self._written(inference_id)
        return found

    async def reencrypt_all(self) -> int:
        """Re-encrypt every stored secret with the newest key; returns how many."""
        await self.ensure_indices()
        count = 0
        search_after = None
        while True:
            kwargs: dict[str, Any] = {"search_after": search_after} if search_after else {}
            resp = await self.es.search(
                index=self.secrets_index, size=500, query={"match_all": {}}, sort=[{"inference_id": "asc"}],
                seq_no_primary_term=True, **kwargs,
            )
            hits = resp["hits"]["hits"]
            if not hits:
                return count
            for hit in hits:
                token = self.secrets.rotate(hit["_source"]["ciphertext"])
                await self.es.index(
                    index=self.secrets_index, id=hit["_id"],
                    document={"inference_id": hit["_source"]["inference_id"], "ciphertext": token},
                    if_seq_no=hit.get("_seq_no"), if_primary_term=hit.get("_primary_term"),
                )
                count += 1
            search_after = hits[-1]["sort"]
