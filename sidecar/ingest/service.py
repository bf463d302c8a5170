"""The ingest core: pipelines with inference processors, from definition to documents.

See the package docstring (:mod:`sidecar.ingest`) for the public API and the decisions
behind it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import TransportError as EsTransportError

from ..errors import EsError
from ..es.caller import Caller
from ..singleflight import SingleFlight
from .definition import compile_pipeline, contains_inference
from .document import META_KEYS, DocState, ingest_timestamp
from .failures import Failure
from .processor import InferenceRunner
from .residual import DROPPED, FINAL_MARK_FIELD, EsIngest, guard_pipeline, is_guard
from .runner import PipelineRunner
from .store import PipelineStore

SIMULATED_PIPELINE_ID = "_simulate_pipeline"
NONE = "_none"


# What Elasticsearch adds to each pipeline it lists (9.x: ``pipeline_tracking_info``). The guard is
# written with the definition, so its dates are the definition's.
_TRACKING_KEYS = ("created_date", "created_date_millis", "modified_date", "modified_date_millis")


def _tracking(listed: dict[str, Any]) -> dict[str, Any]:
    return {k: listed[k] for k in _TRACKING_KEYS if k in listed}


@dataclass
class IngestDoc:
    """A document of an ``index``/``create`` action, before its pipelines."""

    index: str
    id: str | None
    source: dict[str, Any]
    routing: str | None = None
    version: int | None = None
    version_type: str | None = None
    if_seq_no: int | None = None
    if_primary_term: int | None = None


@dataclass
class IngestOutcome:
    """What became of one document.

    ``status``: ``"ok"`` (forward it with the fields below), ``"dropped"`` (a ``drop``
    processor: Elasticsearch answers such an item with ``"result": "noop"``) or ``"failed"``
    (``error`` is the item's Elasticsearch-shaped error; its ``status`` the item status).
    The forwarded action must carry ``"pipeline": pipeline`` (``"_none"``) so that
    Elasticsearch does not run the default pipeline again; an Elasticsearch-only final
    pipeline still runs there.
    """

    status: str
    index: str | None
    id: str | None
    source: dict[str, Any] | None
    routing: str | None = None
    version: int | None = None
    version_type: str | None = None
    if_seq_no: int | None = None
    if_primary_term: int | None = None
    error: EsError | None = None
    pipeline: str = NONE
    executed_pipelines: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        return self.status == "dropped"

    @property
    def forward_pipeline(self) -> str:
        """The ``pipeline`` the forwarded action must carry."""
        return self.pipeline


@dataclass
class IngestPlan:
    """The pipelines of writes to ``index`` (see :meth:`Pipelines.plan`)."""

    index: str
    pipeline: str | None
    final_pipeline: str | None
    sidecar_final: bool
    # Set when these writes cannot be run correctly here: every document fails with it.
    error: EsError | None = None


@dataclass
class _Settings:
    default: str | None
    final: str | None
    at: float


_FAILURES = (ApiError, EsConnectionError, EsTransportError)


class Pipelines:
    def __init__(self, es: AsyncElasticsearch, endpoints: Any, *, index: str = ".sidecar-pipelines",
                 ttl_s: float = 1.0, settings_ttl_s: float = 1.0) -> None:
        self.es = es
        self.endpoints = endpoints
        self.store = PipelineStore(es, index=index, ttl_s=ttl_s)
        self.backend = EsIngest(es)
        self.runner = PipelineRunner(self.backend, InferenceRunner(endpoints))
        self.settings_ttl_s = settings_ttl_s
        self._settings: dict[str, _Settings] = {}
        # One settings read per index at a time; forgotten by invalidate_index().
        self._settings_loads: SingleFlight[_Settings] = SingleFlight()

    # == the bulk path ============================================================================
    async def plan(self, index: str, request_pipeline: str | None = None) -> IngestPlan | None:
        """The pipelines the sidecar must run for writes to ``index`` with the request's (or
        the item's) ``pipeline`` parameter, or None when Elasticsearch can do it all (forward
        the item untouched). Index settings are read only while the sidecar holds any
        pipeline, and cached for ``settings_ttl_s``.

        Settings are read with the sidecar's credentials, as Elasticsearch resolves an
        index's pipelines internally whatever the caller may read."""
        if not await self.store.any():
            return None  # no pipeline is the sidecar's: the index settings do not matter
        default, final = await self._index_pipelines(index)
        first = request_pipeline if request_pipeline is not None else default
        first = None if first in (None, NONE) else first
        final = None if final in (None, NONE) else final
        first_sidecar = first is not None and await self.store.get(first) is not None
        final_sidecar = final is not None and await self.store.get(final) is not None
        if not first_sidecar and not final_sidecar:
            return None
        error = await self._final_unsupported(index, final) if final_sidecar else None  # type: ignore[arg-type]
        return IngestPlan(index=index, pipeline=first, final_pipeline=final, sidecar_final=final_sidecar, error=error)

    def invalidate_index(self, index: str | None = None) -> None:
        """Forget cached index settings (after the sidecar changed them, say)."""
        if index is None:
            self._settings.clear()
        else:
            self._settings.pop(index, None)
        self._settings_loads.forget(index)

    def known_none(self) -> bool:
        """True while it is known (cached) that the sidecar holds no pipeline; never waits."""
        return self.store.known_empty()

    async def any_inference_pipelines(self) -> bool:
        """Whether the sidecar holds any pipeline at all (cached like the definitions): when
        it holds none, writes need no pipeline planning."""
        return await self.store.any()

    async def run(self, plan: IngestPlan, docs: list[IngestDoc | tuple]) -> list[IngestOutcome]:
        """Run the planned pipelines over a batch of documents (sources are changed in place):
        one outcome per document, in order. Inference is batched across the documents.
        A document may also be given as a tuple ``(index, id, source, routing?, …)`` in
        :class:`IngestDoc`'s field order."""
        timestamp = ingest_timestamp()
        states = [self._state(d if isinstance(d, IngestDoc) else IngestDoc(*d), timestamp) for d in docs]
        if plan.error is not None:
            return [self._failed(s, plan.error, []) for s in states]
        chains: dict[int, list[tuple[str, bool]]] = {}
        for i in range(len(docs)):
            chain = [(plan.pipeline, False)] if plan.pipeline else []
            if plan.final_pipeline:
                chain.append((plan.final_pipeline, True))
            chains[i] = chain
        outcomes: list[IngestOutcome | None] = [None] * len(docs)
        executed: dict[int, list[str]] = {i: [] for i in range(len(docs))}
        marked: set[int] = set()
        while True:
            groups: dict[tuple[str, bool], list[int]] = {}
            for i, chain in chains.items():
                if outcomes[i] is not None or not chain:
                    continue
                pipeline_id, is_final = chain[0]
                if is_final and await self.store.get(pipeline_id) is None:
                    continue  # Elasticsearch runs its own final pipeline after the forward
                groups.setdefault((pipeline_id, is_final), []).append(i)
            if not groups:
                break
            await asyncio.gather(*(
                self._run_group(pid, is_final, idx, states, chains, outcomes, executed, marked)
                for (pid, is_final), idx in groups.items()
            ))
        return [out or self._outcome(states[i], executed[i], i in marked) for i, out in enumerate(outcomes)]

    async def _run_group(self, pipeline_id: str, is_final: bool, idx: list[int], states: list[DocState],
                         chains: dict[int, list[tuple[str, bool]]], outcomes: list[IngestOutcome | None],
                         executed: dict[int, list[str]], marked: set[int]) -> None:
        docs = [states[i] for i in idx]
        before = [d.index for d in docs]
        compiled = await self.store.get(pipeline_id)
        try:
            if compiled is not None:
                results = await self.runner.run(compiled, docs)
            else:
                results = await self.backend.run_pipeline_by_id(pipeline_id, docs)
        except EsError as err:
            results = [Failure.from_error(err) for _ in docs]
        for i, doc, index, result in zip(idx, docs, before, results, strict=True):
            chains[i] = chains[i][1:]
            executed[i].append(pipeline_id)
            if isinstance(result, Failure):
                outcomes[i] = self._failed(doc, result.to_error(), executed[i])
                continue
            if result == DROPPED:
                outcomes[i] = IngestOutcome("dropped", doc.index, doc.id, None, executed_pipelines=executed[i])
                continue
            if is_final and compiled is not None:
                marked.add(i)
            if doc.index == index:
                continue
            error = await self._index_changed(doc, pipeline_id, is_final, index, chains, i)
            if error is not None:
                outcomes[i] = self._failed(doc, error, executed[i])

    async def _index_changed(self, doc: DocState, pipeline_id: str, is_final: bool, old: str | None,
                             chains: dict[int, list[tuple[str, bool]]], i: int) -> EsError | None:
        new = doc.index
        if is_final:
            return EsError(500, "illegal_state_exception",
                           f"final pipeline [{pipeline_id}] can't change the target index (from [{old}] to [{new}]) "
                           f"for document [{doc.id}]")
        if new in doc.index_history:
            cycle = [*doc.index_history, new]
            return EsError(500, "illegal_state_exception",
                           f"index cycle detected while processing pipeline [{pipeline_id}] for document "
                           f"[{doc.id}]: [{', '.join(str(c) for c in cycle)}]")
        doc.index_history.append(str(new))
        default, final = await self._index_pipelines(str(new))
        chain: list[tuple[str, bool]] = []
        # Only a reroute runs the new index's default pipeline (Elasticsearch keeps a plain
        # change of _index from doing so).
        if doc.rerouted and default not in (None, NONE):
            chain.append((default, False))  # type: ignore[arg-type]
        if final not in (None, NONE):
            chain.append((final, True))  # type: ignore[arg-type]
        chains[i] = chain
        return None

    @staticmethod
    def _state(doc: IngestDoc, timestamp: str) -> DocState:
        meta = {"_index": doc.index, "_id": doc.id, "_routing": doc.routing, "_version": doc.version,
                "_version_type": doc.version_type, "_if_seq_no": doc.if_seq_no,
                "_if_primary_term": doc.if_primary_term}
        return DocState(meta={k: v for k, v in meta.items() if v is not None or k in ("_index", "_id")},
                        source=doc.source, ingest={"timestamp": timestamp}, index_history=[doc.index])

    @staticmethod
    def _failed(doc: DocState, error: EsError, executed: list[str]) -> IngestOutcome:
        return IngestOutcome("failed", doc.index, doc.id, None, routing=doc.meta.get("_routing"), error=error,
                             executed_pipelines=executed)

    @staticmethod
    def _outcome(doc: DocState, executed: list[str], marked: bool) -> IngestOutcome:
        source = doc.source
        if marked:
            source[FINAL_MARK_FIELD] = True
        m = doc.meta
        return IngestOutcome("ok", doc.index, doc.id, source, routing=m.get("_routing"), version=m.get("_version"),
                             version_type=m.get("_version_type"), if_seq_no=m.get("_if_seq_no"),
                             if_primary_term=m.get("_if_primary_term"), executed_pipelines=executed)

    async def _final_unsupported(self, index: str, final: str) -> EsError | None:
        if (await self.backend.capabilities()).conditional_guard:
            return None
        return EsError(
            400, "illegal_argument_exception",
            f"index [{index}] has final pipeline [{final}] with inference processors; es-inference-sidecar can "
            "only run final pipelines when the Elasticsearch nodes have the [fail] and [remove] processors and "
            "the painless script language",
        )

    async def _index_pipelines(self, index: str) -> tuple[str | None, str | None]:
        """The default and final pipeline of ``index``, cached for ``settings_ttl_s``; after
        that, concurrent writes to the index share one read."""
        cached = self._settings.get(index)
        if cached is None or time.monotonic() - cached.at >= self.settings_ttl_s:
            cached = await self._settings_loads.run(index, lambda: self._load_index_pipelines(index))
        return cached.default, cached.final

    async def _load_index_pipelines(self, index: str) -> _Settings:
        generation = self._settings_loads.generation
        try:
            settings = await self._read_settings(index)
        except _FAILURES as exc:
            raise EsError(503, "status_exception", f"cannot read the settings of index [{index}]: {exc}") from exc
        loaded = _Settings(settings.get("default_pipeline"), settings.get("final_pipeline"), time.monotonic())
        if generation == self._settings_loads.generation:
            self._settings[index] = loaded
        return loaded

    async def _read_settings(self, index: str) -> dict[str, Any]:
        names = ["index.default_pipeline", "index.final_pipeline"]
        try:
            resp = await self.es.indices.get_settings(index=index, name=names)
        except NotFoundError:
            try:
                sim = await self.es.indices.simulate_index_template(name=index)
            except _FAILURES:
                return {}
            return ((sim.body.get("template") or {}).get("settings") or {}).get("index") or {}
        per_index = {name: ((v.get("settings") or {}).get("index") or {}) for name, v in resp.body.items()}
        if len(per_index) <= 1:
            return next(iter(per_index.values()), {})
        distinct = {(s.get("default_pipeline"), s.get("final_pipeline")) for s in per_index.values()}
        if len(distinct) == 1:
            return next(iter(per_index.values()))
        try:
            aliases = await self.es.indices.get_alias(name=index)
            for name, body in aliases.body.items():
                if (body.get("aliases") or {}).get(index, {}).get("is_write_index"):
                    return per_index.get(name, {})
        except _FAILURES:
            pass
        return per_index[sorted(per_index)[-1]]

    # == pipeline definitions =====================================================================
    async def prepare(self, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Check a definition with inference processors; returns what Elasticsearch must hold
        under its id (see :func:`.residual.guard_pipeline`)."""
        compile_pipeline(pipeline_id, body)
        await self.backend.validate(body)
        return guard_pipeline(pipeline_id, body, await self.backend.capabilities())

    async def save(self, pipeline_id: str, body: dict[str, Any]) -> None:
        await self.store.put(pipeline_id, body)

    async def discard(self, patterns: list[str]) -> None:
        """Forget the stored definitions matching ids or wildcard patterns (after Elasticsearch
        deleted or replaced the pipelines)."""
        ids = [p for p in patterns if "*" not in p]
        if any("*" in p for p in patterns):
            ids += await self.store.ids([p for p in patterns if "*" in p])
        await self.store.delete(ids)

    async def merge(self, listing: dict[str, Any]) -> dict[str, Any]:
        """A ``GET _ingest/pipeline`` answer of Elasticsearch, with the definitions the sidecar
        holds in place of their guards."""
        guarded = [pid for pid, cfg in listing.items() if is_guard(cfg)]
        stored = await self.store.configs(guarded)
        return {pid: {**stored[pid], **_tracking(cfg)} if pid in stored else cfg for pid, cfg in listing.items()}

    async def references(self, inference_id: str) -> tuple[list[str], list[str]]:
        """A ``reference_finders`` entry: pipelines that use the endpoint."""
        return await self.store.using(inference_id), []

    # == simulate =================================================================================
    async def simulate(self, pipeline_id: str | None, body: Any, *, verbose: bool,
                       caller: Caller) -> dict[str, Any] | None:
        """``_ingest/pipeline[/{id}]/_simulate`` for pipelines with inference processors;
        None when Elasticsearch should answer the request itself."""
        if not isinstance(body, dict):
            return None
        if pipeline_id is not None:
            compiled = await self.store.get(pipeline_id)
            if compiled is None:
                return None
        else:
            inline = body.get("pipeline")
            if not contains_inference(inline):
                return None
            compiled = compile_pipeline(SIMULATED_PIPELINE_ID, inline)
            await self.backend.validate(inline)
        docs = await self._simulation_docs(body, caller)
        results = await self.runner.run(compiled, docs, verbose=verbose)
        if verbose:
            return {"docs": [{"processor_results": d.results or []} for d in docs]}
        out: list[Any] = []
        for doc, result in zip(docs, results, strict=True):
            if isinstance(result, Failure):
                out.append({"error": result.error})
            elif result == DROPPED:
                out.append(None)
            else:
                out.append({"doc": doc.render()})
        return {"docs": out}

    async def _simulation_docs(self, body: dict[str, Any], caller: Caller) -> list[DocState]:
        """Parse the request's documents the way Elasticsearch does (with its messages), by
        simulating an empty pipeline with the caller's credentials."""
        probe = {"pipeline": {"processors": []}, "docs": body.get("docs")}
        answer = await caller.json("POST", "/_ingest/pipeline/_simulate", probe)
        states = []
        for given, entry in zip(body["docs"], answer.get("docs") or [], strict=True):
            rendered = entry["doc"]
            meta: dict[str, Any] = {"_index": None, "_id": None}
            for key in META_KEYS:
                if key in given and key in rendered:
                    meta[key] = rendered[key]
            state = DocState(meta=meta, source={}, ingest={"timestamp": rendered["_ingest"]["timestamp"]})
            state.update_from_simulated({k: v for k, v in rendered.items() if k in meta or k == "_source"})
            states.append(state)
        return states
