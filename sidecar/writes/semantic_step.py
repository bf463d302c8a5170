"""The semantic_text step of the write path: for each index/create/update item of a window
whose index has semantic_text fields, the texts to embed (with what can be reused: the
embeddings the client sent, those already stored for the same document) are filled by
:class:`~.fill.SemanticFiller` across the whole window at once; partial updates are merged
with the stored document first, as Elasticsearch merges them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..errors import EsError, status_exception
from ..es.node import NodeVersion
from ..semantic import precomputed
from ..semantic.layout import INFERENCE_ROOT
from ..semantic.metadata import IndexSemantics
from ..semantic.values import MISSING, get_path
from .documents import Documents
from .fill import FillItem, SemanticFiller
from .items import BulkItem, dumps_exact, error_item, parse_line


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Elasticsearch's partial-update merge: objects merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def touched_fields(semantics: IndexSemantics, doc: dict[str, Any]) -> set[str]:
    touched = set()
    for name in semantics.fields:
        sources = [name] + [s for s, targets in semantics.copy_to.items() if name in targets]
        if any(get_path(doc, s) is not MISSING for s in sources):
            touched.add(name)
    return touched


class SemanticStep:
    def __init__(self, filler: SemanticFiller, documents: Documents, node_version: NodeVersion | None) -> None:
        self.filler = filler
        self.documents = documents
        self.node_version = node_version
        # Steps that complete partial-update bodies once their inference is computed.
        self._finishers: list[Callable[[], None]] = []
        # Documents with at least one chunk longer than the model's input window.
        self.truncated = 0

    async def run(self, window: list[BulkItem], semantics: dict[str, IndexSemantics | None]) -> None:
        fills: list[FillItem] = []
        owners: list[BulkItem] = []
        updates: list[tuple[BulkItem, IndexSemantics, dict[str, Any]]] = []
        for item in window:
            if item.result is not None:
                continue
            sem = semantics.get(item.index) if item.index else None
            if sem is None or item.op == "delete":
                continue
            try:
                if item.source is None:
                    item.source = parse_line(item.source_line or b"", 0)
                if not isinstance(item.source, dict):
                    raise EsError(400, "illegal_argument_exception", "The document source must be an object")
            except EsError as err:
                item.result = error_item(item, err)
                continue
            if item.op == "update":
                updates.append((item, sem, item.source))
                continue
            try:
                given = await self._precomputed(sem, item.source)
            except EsError as err:
                item.result = error_item(item, err)
                continue
            only = (set(sem.fields) - set(given)) if given else None
            fills.append(FillItem(semantics=sem, source=item.source, previous=item.previous, only_fields=only,
                                  precomputed=given))
            owners.append(item)
        await self._reuse_stored(owners, fills)
        await self._prepare_updates(updates, fills, owners)
        if fills:
            await self.filler.fill(fills)
        finishers, self._finishers = self._finishers, []
        for finish in finishers:
            finish()
        for item, fill in zip(owners, fills, strict=True):
            if fill.truncated:
                self.truncated += 1
            if fill.error is not None:
                item.result = error_item(item, fill.error)
            elif item.op == "update":
                item.forward = (dumps_exact({item.op: item.meta}), dumps_exact(item.source))
            else:
                item.forward = (dumps_exact({item.op: item.meta}), dumps_exact(fill.source))

    async def _precomputed(self, sem: IndexSemantics, source: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Embeddings the client computed itself, checked against the fields' endpoints."""
        if precomputed.METADATA_FIELD not in source and not any(
                isinstance(source.get(name), dict) for name in sem.fields):
            return {}
        for fld in precomputed.needs_settings(sem, source):
            await self.filler.ensure_model_settings(fld, sem.index)
        single_shot = self.node_version is not None and (await self.node_version.features()).single_shot_embeddings
        return precomputed.extract(sem, source, single_shot=single_shot)

    async def _reuse_stored(self, owners: list[BulkItem], fills: list[FillItem]) -> None:
        """Documents re-sent with an existing id reuse the embeddings already stored for
        their unchanged chunks (a re-sent bulk costs no inference)."""
        wanted = [(i, (item.index, item.meta["_id"], item.meta.get("routing")))
                  for i, item in enumerate(owners)
                  if item.meta.get("_id") is not None and item.previous is None]
        if not wanted:
            return
        found = await self.documents.fetch([key for _, key in wanted])
        for (position, _), doc in zip(wanted, found, strict=True):
            if doc is not None:
                fills[position].previous = doc.source

    async def _prepare_updates(self, updates, fills: list[FillItem], owners: list[BulkItem]) -> None:
        if not updates:
            return
        keys = [(item.index, str(item.meta.get("_id")), item.meta.get("routing")) for item, _, _ in updates]
        current = await self.documents.fetch(keys)
        for (item, sem, body), existing in zip(updates, current, strict=True):
            if "script" in body:
                item.result = error_item(item, status_exception(
                    400, "Cannot apply update with a script on indices that contain [semantic_text] field(s)"))
                continue
            doc = body.get("doc")
            if doc is not None and not isinstance(doc, dict):
                item.result = error_item(item, EsError(400, "illegal_argument_exception", "[doc] must be an object"))
                continue
            if existing is None:
                upsert = doc if body.get("doc_as_upsert") else body.get("upsert")
                if not isinstance(upsert, dict):
                    continue  # Elasticsearch answers document_missing_exception
                fill = FillItem(semantics=sem, source=copy.deepcopy(upsert))
                fills.append(fill)
                owners.append(item)
                body = dict(body)
                if body.get("doc_as_upsert"):
                    body.pop("doc_as_upsert")
                    body["upsert"] = fill.source
                    body["doc"] = fill.source
                else:
                    body["upsert"] = fill.source
                item.source = body
                continue
            stored, seq_no, primary_term = existing.source, existing.seq_no, existing.primary_term
            touched = touched_fields(sem, doc or {})
            if not touched:
                continue
            merged = deep_merge(stored, doc or {})
            fill = FillItem(semantics=sem, source=merged, previous=stored, only_fields=touched)
            fills.append(fill)
            owners.append(item)
            new_doc = dict(doc or {})
            new_body = dict(body)
            new_body["doc"] = new_doc
            item.source = new_body
            # Apply the computed inference on top of the partial doc once filled.
            item.meta.setdefault("if_seq_no", seq_no)
            item.meta.setdefault("if_primary_term", primary_term)
            item.meta.pop("retry_on_conflict", None)
            fill_ref = fill

            def finish(fill=fill_ref, doc=new_doc, touched=touched):
                root = fill.source.get(INFERENCE_ROOT) or {}
                doc[INFERENCE_ROOT] = {name: root.get(name) for name in touched}

            self._finishers.append(finish)
