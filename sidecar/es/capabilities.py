"""What the node behind the sidecar runs itself, learnt by asking it (with the sidecar's own
credentials): search features once for the life of the process; ingest processors again
after ``ingest_ttl_s`` (plugins may be installed on a rolling restart)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import TransportError as EsTransportError

from ..errors import unavailable
from .errors import translate


@dataclass(frozen=True)
class IngestCapabilities:
    processors: frozenset[str]
    painless: bool

    @property
    def metadata_prelude(self) -> bool:
        return {"set", "remove"} <= self.processors

    @property
    def conditional_guard(self) -> bool:
        return {"fail", "remove"} <= self.processors and self.painless


# Assumed when the sidecar may not ask (no ``monitor`` privilege): every default distribution
# has these, ``set_security_user`` coming with security.
DEFAULT_DISTRIBUTION = IngestCapabilities(frozenset({"fail", "remove", "set", "set_security_user"}), painless=True)


class Capabilities:
    """What the node runs itself, learnt once by asking it."""

    PROBE_INDEX = "sidecar-capability-probe-does-not-exist"

    def __init__(self, es: AsyncElasticsearch, *, ingest_ttl_s: float = 60.0) -> None:
        self.es = es
        self.ingest_ttl_s = ingest_ttl_s
        self.sparse_vector: bool | None = None
        self.rrf: bool | None = None
        self.update_by_query: bool | None = None
        self._ingest: tuple[IngestCapabilities, float] | None = None
        self._lock = asyncio.Lock()

    async def native_sparse_vector(self) -> bool:
        return await self._learn("sparse_vector", self._probe_sparse)

    async def native_rrf(self) -> bool:
        return await self._learn("rrf", self._probe_rrf)

    async def native_update_by_query(self) -> bool:
        """Whether the node has the reindex module's ``_update_by_query``."""
        return await self._learn("update_by_query", self._probe_update_by_query)

    async def _learn(self, name: str, probe) -> bool:
        if getattr(self, name) is None:
            async with self._lock:
                if getattr(self, name) is None:
                    setattr(self, name, await probe())
        return bool(getattr(self, name))

    async def _probe_sparse(self) -> bool:
        try:
            resp = await self.es.indices.validate_query(
                index=self.PROBE_INDEX, ignore_unavailable=True, allow_no_indices=True,
                query={"sparse_vector": {"field": "probe", "query_vector": {"probe": 1.0}}})
            return bool(resp.body.get("valid"))
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return False

    async def _probe_rrf(self) -> bool:
        standard = {"standard": {"query": {"match_all": {}}}}
        try:
            await self.es.search(index=self.PROBE_INDEX, ignore_unavailable=True, allow_no_indices=True, size=0,
                                 retriever={"rrf": {"retrievers": [standard, standard]}})
            return True
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return False

    async def _probe_update_by_query(self) -> bool:
        try:
            await self.es.perform_request(
                "POST", f"/{self.PROBE_INDEX}/_update_by_query",
                params={"ignore_unavailable": "true", "allow_no_indices": "true"},
                headers={"accept": "application/json", "content-type": "application/json"}, body={})
            return True
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            return False

    # -- ingest ------------------------------------------------------------------------------
    async def ingest(self) -> IngestCapabilities:
        """The ingest processors every node has, and whether painless scripts run."""
        known = self._ingest
        if known is not None and time.monotonic() - known[1] < self.ingest_ttl_s:
            return known[0]
        async with self._lock:
            known = self._ingest
            if known is not None and time.monotonic() - known[1] < self.ingest_ttl_s:
                return known[0]
            caps = await self._probe_ingest()
            self._ingest = (caps, time.monotonic())
            return caps

    def assume_ingest(self, caps: IngestCapabilities) -> None:
        """Take ``caps`` as known for good (a node known in advance)."""
        self._ingest = (caps, float("inf"))

    async def _probe_ingest(self) -> IngestCapabilities:
        try:
            resp = await self.es.nodes.info(
                metric="ingest,plugins",
                filter_path="nodes.*.ingest.processors.type,nodes.*.modules.name,nodes.*.plugins.name",
            )
        except ApiError as exc:
            if exc.meta.status != 403:
                raise translate(exc) from exc
            return DEFAULT_DISTRIBUTION
        except (EsConnectionError, EsTransportError) as exc:
            raise translate(exc) from exc
        processors: set[str] | None = None
        painless = True
        for node in (resp.body.get("nodes") or {}).values():
            types = {p.get("type") for p in (node.get("ingest") or {}).get("processors") or []}
            processors = types if processors is None else processors & types
            names = {m.get("name") for m in (node.get("modules") or []) + (node.get("plugins") or [])}
            painless = painless and "lang-painless" in names
        return IngestCapabilities(frozenset(processors or ()), painless and processors is not None)
