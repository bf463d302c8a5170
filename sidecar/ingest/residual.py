"""How the processors that are not ``inference`` keep their exact Elasticsearch behaviour:
Elasticsearch runs them.

* A segment of consecutive Elasticsearch processors runs with
  ``POST _ingest/pipeline/_simulate`` (inline pipeline, the whole batch of documents,
  ``verbose=false``). Per-document errors, dropped documents and metadata changes come back
  exactly as Elasticsearch produces them.
* When a failure has to be handed to an ``on_failure`` handler the sidecar runs, the
  failed documents are simulated once more with ``verbose=true`` to learn which processor
  failed (``_ingest.on_failure_processor_type``/``_tag``) and the document as it was at that
  moment.
* Inside a handler, Elasticsearch processors must see ``_ingest.on_failure_message`` & co.
  The simulate API does not take ingest metadata, so the segment is preceded by ``set``
  processors copying the values from a temporary source field, and a ``remove`` of it.
* The ``if`` of an inference processor is evaluated by Elasticsearch (painless) on a
  stand-in processor in a verbose simulation, which reports the condition's result.

It also checks pipelines (:meth:`EsIngest.validate`) and builds the pipeline Elasticsearch
holds under the id of a sidecar pipeline (:func:`guard_pipeline`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import TransportError as EsTransportError

from ..errors import EsError
from ..es.capabilities import Capabilities, IngestCapabilities
from ..es.errors import UpstreamError, translate
from .definition import STAND_IN, STAND_IN_FIELD, EsSegment, Node, es_view
from .document import ON_FAILURE_KEYS, DocState
from .failures import Failure
from .inference_options import INFERENCE

DROPPED = "dropped"
MANAGED_BY = "es-inference-sidecar"
# Source field carrying ingest metadata into a simulation, and the mark that lets a
# document the sidecar has run through a final pipeline pass that pipeline's guard.
CARRIER_FIELD = "_es_inference_sidecar_ingest"
FINAL_MARK_FIELD = "_es_inference_sidecar_final"


def guard_message(pipeline_id: str) -> str:
    return f"pipeline [{pipeline_id}] contains inference processors and must be run through es-inference-sidecar"


def guard_pipeline(pipeline_id: str, body: dict[str, Any], caps: IngestCapabilities) -> dict[str, Any]:
    """What Elasticsearch holds under the id of a pipeline the sidecar runs.

    * With ``fail``, ``remove`` and painless (every default distribution): a ``fail``
      processor with the message below for any document that does not carry the sidecar's
      mark; documents the sidecar already ran through the pipeline as a *final* pipeline carry
      the mark, which the second processor removes.
    * With ``fail`` only: the ``fail`` processor alone.
    * Without ``fail`` (the server-only test distribution): ``set_security_user`` on
      ``_index``, which fails every document (with a security message); the pipeline's
      ``description`` carries the explanation.
    """
    message = guard_message(pipeline_id)
    guard: dict[str, Any] = {"description": message, "_meta": {"managed_by": MANAGED_BY}}
    if "version" in body:
        guard["version"] = body["version"]
    if caps.conditional_guard:
        guard["_meta"]["guard"] = "marked"
        guard["processors"] = [
            {"fail": {"if": f"ctx['{FINAL_MARK_FIELD}'] != true", "message": message}},
            {"remove": {"field": FINAL_MARK_FIELD}},
        ]
    elif "fail" in caps.processors:
        guard["_meta"]["guard"] = "fail"
        guard["processors"] = [{"fail": {"message": message}}]
    elif STAND_IN in caps.processors:
        guard["_meta"]["guard"] = "fail"
        guard["processors"] = [{STAND_IN: {"field": "_index", "tag": "es-inference-sidecar", "description": message}}]
    else:
        guard["_meta"]["guard"] = "none"
        guard["processors"] = []
    return guard


def is_guard(config: Any) -> bool:
    meta = config.get("_meta") if isinstance(config, dict) else None
    return isinstance(meta, dict) and meta.get("managed_by") == MANAGED_BY




_FAILURES = (ApiError, EsConnectionError, EsTransportError)


class EsIngest:
    """Elasticsearch's side of running pipelines (with the sidecar's own credentials)."""

    def __init__(self, es: AsyncElasticsearch, *, capabilities: Capabilities | None = None) -> None:
        self.es = es
        self.caps = capabilities or Capabilities(es)

    async def capabilities(self) -> IngestCapabilities:
        return await self.caps.ingest()

    # -- simulate ---------------------------------------------------------------------------
    async def _simulate(self, docs: list[dict[str, Any]], *, processors: list[dict[str, Any]] | None = None,
                        pipeline_id: str | None = None, verbose: bool = False) -> list[Any]:
        try:
            if pipeline_id is not None:
                resp = await self.es.ingest.simulate(id=pipeline_id, docs=docs, verbose=verbose)
            else:
                resp = await self.es.ingest.simulate(pipeline={"processors": processors}, docs=docs, verbose=verbose)
        except _FAILURES as exc:
            raise translate(exc) from exc
        return list(resp.body.get("docs") or [])

    async def _prelude(self, docs: list[DocState]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(prelude processors, simulate docs): ingest metadata is carried in a source field."""
        carried = [d for d in docs if "on_failure_message" in d.ingest]
        if not carried or not (await self.capabilities()).metadata_prelude:
            return [], [d.simulate_doc() for d in docs]
        keys = [k for k in ON_FAILURE_KEYS if all(k in d.ingest for d in docs)]
        prelude: list[dict[str, Any]] = [
            {"set": {"field": f"_ingest.{k}", "copy_from": f"{CARRIER_FIELD}.{k}"}} for k in keys
        ]
        prelude.append({"remove": {"field": CARRIER_FIELD}})
        sim_docs = []
        for d in docs:
            doc = d.simulate_doc()
            doc["_source"] = {**d.source, CARRIER_FIELD: {k: d.ingest.get(k) for k in keys}}
            sim_docs.append(doc)
        return prelude, sim_docs

    async def run_processors(self, processors: list[dict[str, Any]], docs: list[DocState], *,
                             verbose: bool = False) -> list[Failure | str | None]:
        """Run Elasticsearch processors on documents (changed in place). Per document: None
        (done), :data:`DROPPED` or a :class:`Failure` (processor not located yet)."""
        # Documents inside a handler and documents outside one need different preludes.
        groups: dict[bool, list[int]] = {}
        for i, d in enumerate(docs):
            groups.setdefault("on_failure_message" in d.ingest, []).append(i)
        out: list[Failure | str | None] = [None] * len(docs)
        parts = await asyncio.gather(*(
            self._run_group(processors, [docs[i] for i in idx], verbose) for idx in groups.values()
        ))
        for idx, results in zip(groups.values(), parts, strict=True):
            for i, r in zip(idx, results, strict=True):
                out[i] = r
        return out

    async def _run_group(self, processors, docs: list[DocState], verbose: bool) -> list[Failure | str | None]:
        prelude, sim_docs = await self._prelude(docs)
        calls = [self._simulate(sim_docs, processors=prelude + processors)]
        if verbose:
            calls.append(self._simulate(sim_docs, processors=prelude + processors, verbose=True))
        answers = await asyncio.gather(*calls)
        if verbose:
            for doc, entry in zip(docs, answers[1], strict=True):
                steps = list((entry or {}).get("processor_results") or [])[len(prelude):]
                for step in steps:
                    _name_pipeline(step, doc.ingest.get("pipeline"))
                doc.results = (doc.results or []) + steps
        return [_apply(doc, entry) for doc, entry in zip(docs, answers[0], strict=True)]

    async def run_pipeline_by_id(self, pipeline_id: str, docs: list[DocState]) -> list[Failure | str | None]:
        """Run a whole pipeline that Elasticsearch holds (one without inference processors)."""
        try:
            results = await self._simulate([d.simulate_doc() for d in docs], pipeline_id=pipeline_id)
        except UpstreamError as err:
            if err.type == "illegal_argument_exception" and "does not exist" in err.reason:
                failure = Failure.of("illegal_argument_exception",
                                     f"pipeline with id [{pipeline_id}] does not exist", 400)
                return [failure for _ in docs]
            raise
        return [_apply(doc, entry) for doc, entry in zip(docs, results, strict=True)]

    async def locate(self, segment: EsSegment, docs: list[DocState], failures: list[Failure]) -> None:
        """Find which processor of ``segment`` failed for each document, and the document as
        it was then (a verbose re-run). Updates the failures and documents in place."""
        prelude, sim_docs = await self._prelude(docs)
        try:
            results = await self._simulate(sim_docs, processors=prelude + segment.processors(), verbose=True)
        except EsError:
            return
        for doc, failure, entry in zip(docs, failures, results, strict=True):
            steps = list((entry or {}).get("processor_results") or [])[len(prelude):]
            failed = next((s for s in reversed(steps) if s.get("status") == "error"), None)
            before = next((s for s in reversed(steps) if isinstance(s.get("doc"), dict)), None)
            if before is not None:
                doc.update_from_simulated(before["doc"])
            failure.located = True
            if failed is None:
                continue
            failure.processor_type = failed.get("processor_type")
            failure.processor_tag = failed.get("tag")
            node = _find(segment.nodes, failure.processor_type, failure.processor_tag)
            if node is not None and node.condition is not None:
                own = isinstance(node.raw, dict) and (node.raw.get("on_failure") or node.ignore_failure)
                if "if" not in failed or not own:
                    failure.processor_type = "conditional"

    # -- conditions ----------------------------------------------------------------------------
    async def evaluate(self, condition: Any, docs: list[DocState]) -> list[bool | Failure]:
        """The ``if`` of a sidecar-run processor, per document (a failure: the script failed)."""
        processors = [{STAND_IN: {"field": STAND_IN_FIELD, "if": condition}}]
        try:
            results = await self._simulate([d.simulate_doc() for d in docs], processors=processors, verbose=True)
        except UpstreamError as err:
            raise _as_inference_error(err) from None
        out: list[bool | Failure] = []
        for entry in results:
            steps = (entry or {}).get("processor_results") or [{}]
            step = steps[0]
            cond = step.get("if")
            if isinstance(cond, dict) and "result" in cond:
                out.append(bool(cond["result"]))
            elif step.get("status") == "skipped":
                out.append(False)
            elif isinstance(step.get("error"), dict):
                out.append(Failure.from_rendered(step["error"]))
            else:
                out.append(True)
        return out

    # -- validation ----------------------------------------------------------------------------
    async def validate(self, body: dict[str, Any]) -> None:
        """Let Elasticsearch check the pipeline (inference processors stood in for): a
        configuration error comes back exactly as Elasticsearch words it."""
        caps = await self.capabilities()
        if STAND_IN not in caps.processors:
            return
        view = es_view(body)
        try:
            await self.es.ingest.simulate(pipeline=view, docs=[{"_source": {}}])
        except ApiError as exc:
            err = translate(exc)
            if isinstance(err, UpstreamError) and not _uses(body, STAND_IN):
                raise _as_inference_error(err) from None
            raise err from None
        except (EsConnectionError, EsTransportError) as exc:
            raise translate(exc) from exc


def _apply(doc: DocState, entry: Any) -> Failure | str | None:
    if entry is None:
        return DROPPED
    if isinstance(entry.get("error"), dict):
        return Failure.from_rendered(entry["error"])
    rendered = entry.get("doc")
    if isinstance(rendered, dict):
        doc.update_from_simulated(rendered)
    return None


def _name_pipeline(step: dict[str, Any], pipeline_id: str | None) -> None:
    """Snapshots of a simulated segment name the simulation's pipeline; name the real one."""
    ingest = (step.get("doc") or {}).get("_ingest")
    if pipeline_id is not None and isinstance(ingest, dict) and "pipeline" in ingest:
        ingest["pipeline"] = pipeline_id


def _find(nodes: list[Node], processor_type: str | None, tag: str | None) -> Node | None:
    for node in nodes:
        if node.type == processor_type and node.tag == tag:
            return node
    return None


def _uses(body: Any, processor_type: str) -> bool:
    if isinstance(body, dict):
        return any(k == processor_type or _uses(v, processor_type) for k, v in body.items())
    if isinstance(body, list):
        return any(_uses(v, processor_type) for v in body)
    return False


def _rename(error: Any) -> Any:
    if isinstance(error, dict):
        return {k: (INFERENCE if k == "processor_type" and v == STAND_IN else _rename(v)) for k, v in error.items()}
    if isinstance(error, list):
        return [_rename(v) for v in error]
    return error


def _as_inference_error(err: UpstreamError) -> UpstreamError:
    """An error Elasticsearch raised about a stand-in is about the inference processor."""
    return UpstreamError.of(err.status, _rename(err.error))
