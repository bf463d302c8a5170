"""The ingest-pipeline step of the write path: index/create items whose index (or request)
names a pipeline the sidecar runs go through it first; each outcome decides what is
forwarded (or the item's result, when the document failed or was dropped)."""

from __future__ import annotations

from ..errors import EsError
from ..ingest.service import IngestOutcome, Pipelines
from ..semantic.metadata import IndexSemantics, SemanticIndices
from .items import BulkItem, dumps_exact, error_item, parse_line

# Metadata an ingest processor may set (``_routing``, ``_version``, …) that the forwarded
# action carries.
_OUTCOME_META = ("routing", "version", "version_type", "if_seq_no", "if_primary_term")


class PipelineStep:
    def __init__(self, pipelines: Pipelines, semantic: SemanticIndices, request_pipeline: str | None) -> None:
        self.pipelines = pipelines
        self.semantic = semantic
        self.request_pipeline = request_pipeline

    async def run(self, window: list[BulkItem], semantics: dict[str, IndexSemantics | None]) -> None:
        """Run the pipelines over this window's index/create items (grouped by index and
        pipeline, so inference is batched across the group)."""
        groups: dict[tuple[str, str | None], list[BulkItem]] = {}
        for item in window:
            if item.op not in ("index", "create") or item.index is None:
                continue
            groups.setdefault((item.index, item.meta.get("pipeline") or self.request_pipeline), []).append(item)
        for (index, pipeline), items in groups.items():
            plan = await self.pipelines.plan(index, pipeline)
            if plan is None:
                continue
            docs = []
            for item in items:
                try:
                    item.source = parse_line(item.source_line or b"", 0)
                except EsError as err:
                    item.result = error_item(item, err)
                    continue
                docs.append(item)
            outcomes = await self.pipelines.run(plan, [(it.index, it.meta.get("_id"), it.source) for it in docs])
            for item, outcome in zip(docs, outcomes, strict=True):
                apply_outcome(item, outcome)
                if item.index not in semantics:
                    semantics[item.index] = await self.semantic.for_write(item.index)
                if item.result is None and item.forward is None and semantics.get(item.index) is None:
                    item.forward = (dumps_exact({item.op: item.meta}), dumps_exact(item.source))


def apply_outcome(item: BulkItem, outcome: IngestOutcome) -> None:
    if outcome.error is not None:
        item.result = error_item(item, outcome.error)
        return
    if outcome.dropped:
        item.result = {item.op: {"_index": item.index, "_id": item.meta.get("_id"), "_version": -3,
                                 "result": "noop", "status": 200}}
        return
    item.source = outcome.source
    if outcome.index:
        item.index = outcome.index
        item.meta["_index"] = outcome.index
    if outcome.id is not None:
        item.meta["_id"] = outcome.id
    for key in _OUTCOME_META:
        value = getattr(outcome, key)
        if value is not None:
            item.meta[key] = value
    item.meta["pipeline"] = outcome.forward_pipeline
