"""Running a compiled pipeline over a batch of documents.

The semantics are those of Elasticsearch's ``CompoundProcessor``, applied to the whole
batch at each step:

* processors run in order; a document that fails or is dropped stops there;
* ``ignore_failure`` swallows a processor's failure (its ``on_failure`` then never runs);
* a processor's ``on_failure`` handler runs with ``_ingest.on_failure_message``,
  ``_ingest.on_failure_processor_type`` and ``_ingest.on_failure_processor_tag`` set, and the
  document continues with the next processor if the handler succeeds;
* the pipeline's ``on_failure`` handles any unhandled failure, after which the pipeline ends
  for that document (the rest of its processors are skipped);
* an ``if`` wraps the processor *and* its own handler: a failing condition, or a failure of a
  conditional processor that has no handler of its own, is reported as ``conditional``.

Elasticsearch runs the :class:`~.definition.EsSegment` steps (:mod:`.residual`), the sidecar
the inference processors (:mod:`.processor`). With ``verbose`` every document collects the
``processor_results`` of ``_simulate?verbose=true``.
"""

from __future__ import annotations

from typing import Any

import orjson

from .definition import CompiledPipeline, EsSegment, Node, Step
from .document import ON_FAILURE_KEYS, DocState
from .failures import Failure
from .processor import InferenceRunner
from .residual import EsIngest

Result = Failure | str | None  # None: done, residual.DROPPED, or the failure


def _snapshot(doc: DocState) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(doc.render(), option=orjson.OPT_SERIALIZE_NUMPY))


def _condition_text(condition: Any) -> str:
    if isinstance(condition, dict):
        return str(condition.get("source", condition.get("id", "")))
    return str(condition)


class PipelineRunner:
    def __init__(self, es: EsIngest, inference: InferenceRunner) -> None:
        self.es = es
        self.inference = inference

    async def run(self, pipeline: CompiledPipeline, docs: list[DocState], *, verbose: bool = False) -> list[Result]:
        """Run ``pipeline`` on ``docs`` (changed in place); one result per document."""
        previous = []
        for doc in docs:
            doc.rerouted = False
            if verbose and doc.results is None:
                doc.results = []
            # Elasticsearch names the running pipeline in _ingest.pipeline while it runs.
            previous.append(doc.ingest.get("pipeline"))
            doc.ingest["pipeline"] = pipeline.id
        try:
            handler = pipeline.on_failure
            results = await self._steps(pipeline.steps, docs, verbose, locate=handler is not None)
            failed = [i for i, r in enumerate(results) if isinstance(r, Failure)]
            if handler and failed:
                handled = await self._handler(handler, [docs[i] for i in failed],
                                              [results[i] for i in failed], verbose, locate=False)  # type: ignore[misc]
                for i, r in zip(failed, handled, strict=True):
                    results[i] = r
        finally:
            for doc, before in zip(docs, previous, strict=True):
                if before is None:
                    doc.ingest.pop("pipeline", None)
                else:
                    doc.ingest["pipeline"] = before
        return results

    async def _steps(self, steps: list[Step], docs: list[DocState], verbose: bool, *, locate: bool) -> list[Result]:
        out: list[Result] = [None] * len(docs)
        active = list(range(len(docs)))
        for step in steps:
            if not active:
                break
            results = await self._step(step, [docs[i] for i in active], verbose, locate)
            still = []
            for i, r in zip(active, results, strict=True):
                if r is None and not docs[i].rerouted:
                    still.append(i)
                else:
                    out[i] = r
            active = still
        return out

    async def _step(self, step: Step, docs: list[DocState], verbose: bool, locate: bool) -> list[Result]:
        if isinstance(step, EsSegment):
            return await self._segment(step, docs, verbose, locate)
        if step.node.is_inference:
            return await self._inference(step.node, docs, verbose, locate)
        return await self._es_node(step.node, docs, verbose, locate)

    # -- Elasticsearch-run processors ------------------------------------------------------------
    async def _segment(self, segment: EsSegment, docs: list[DocState], verbose: bool, locate: bool) -> list[Result]:
        before = [d.index for d in docs]
        results = await self.es.run_processors(segment.processors(), docs, verbose=verbose)
        if segment.has_reroute:
            for doc, index, r in zip(docs, before, results, strict=True):
                # A rerouted document skips the rest of the pipeline, as in Elasticsearch.
                doc.rerouted = r is None and doc.index != index
        if locate:
            await self._locate(segment, docs, results)
        return results

    async def _locate(self, segment: EsSegment, docs: list[DocState], results: list[Result]) -> None:
        idx = [i for i, r in enumerate(results) if isinstance(r, Failure) and not r.located]
        if idx:
            await self.es.locate(segment, [docs[i] for i in idx], [results[i] for i in idx])  # type: ignore[misc]

    async def _es_node(self, node: Node, docs: list[DocState], verbose: bool, locate: bool) -> list[Result]:
        """An Elasticsearch processor whose ``on_failure`` handler the sidecar runs."""
        segment = EsSegment([node])
        results = await self.es.run_processors(segment.processors(), docs, verbose=verbose)
        await self._locate(segment, docs, results)
        own = [i for i, r in enumerate(results) if isinstance(r, Failure) and r.processor_type != "conditional"]
        if own and node.on_failure:
            handled = await self._handler(node.on_failure, [docs[i] for i in own],
                                          [results[i] for i in own], verbose, locate)  # type: ignore[misc]
            for i, r in zip(own, handled, strict=True):
                results[i] = r
        return results

    # -- inference processors ------------------------------------------------------------------
    def _record(self, doc: DocState, node: Node, status: str, *, condition: bool | None = None,
                failure: Failure | None = None, with_doc: bool = False) -> None:
        if doc.results is None:
            return
        entry: dict[str, Any] = {"processor_type": node.type, "status": status}
        if node.description is not None:
            entry["description"] = node.description
        if node.tag is not None:
            entry["tag"] = node.tag
        if condition is not None:
            entry["if"] = {"condition": _condition_text(node.condition), "result": condition}
        if failure is not None:
            if status == "error_ignored":
                entry["ignored_error"] = {"error": failure.error}
            else:
                entry["error"] = failure.error
        if with_doc:
            entry["doc"] = _snapshot(doc)
        doc.results.append(entry)

    async def _inference(self, node: Node, docs: list[DocState], verbose: bool, locate: bool) -> list[Result]:
        results: list[Result] = [None] * len(docs)
        run = list(range(len(docs)))
        condition: bool | None = None
        if node.condition is not None:
            condition = True
            run = []
            for i, value in enumerate(await self.es.evaluate(node.condition, docs)):
                if isinstance(value, Failure):
                    value.processor_type, value.processor_tag, value.located = "conditional", node.tag, True
                    results[i] = value
                    self._record(docs[i], node, "error", failure=value)
                elif value:
                    run.append(i)
                else:
                    self._record(docs[i], node, "skipped", condition=False)
        failed: list[int] = []
        if run:
            outcomes = await self.inference.run(node.spec, [docs[i] for i in run])
            for i, outcome in zip(run, outcomes, strict=True):
                if outcome is None:
                    self._record(docs[i], node, "success", condition=condition, with_doc=True)
                    continue
                outcome.processor_type, outcome.processor_tag, outcome.located = node.type, node.tag, True
                if node.ignore_failure:
                    self._record(docs[i], node, "error_ignored", condition=condition, failure=outcome, with_doc=True)
                    continue
                self._record(docs[i], node, "error", condition=condition, failure=outcome)
                results[i] = outcome
                failed.append(i)
        if failed and node.on_failure:
            handled = await self._handler(node.on_failure, [docs[i] for i in failed],
                                          [results[i] for i in failed], verbose, locate)  # type: ignore[misc]
            for i, r in zip(failed, handled, strict=True):
                results[i] = r
        elif failed:
            for i in failed:
                results[i].processor_type = node.unhandled_failure_type()  # type: ignore[union-attr]
        return results

    # -- on_failure handlers ---------------------------------------------------------------------
    async def _handler(self, steps: list[Step], docs: list[DocState], failures: list[Failure], verbose: bool,
                       locate: bool) -> list[Result]:
        for doc, failure in zip(docs, failures, strict=True):
            doc.ingest["on_failure_message"] = failure.message
            doc.ingest["on_failure_processor_type"] = failure.processor_type
            doc.ingest["on_failure_processor_tag"] = failure.processor_tag
        try:
            return await self._steps(steps, docs, verbose, locate=locate)
        finally:
            for doc in docs:
                for key in ON_FAILURE_KEYS:
                    doc.ingest.pop(key, None)
