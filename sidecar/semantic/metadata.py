"""Which indices have semantic_text fields, read from their mapping ``_meta`` (see
:mod:`sidecar.semantic.layout`) and cached briefly.

``SemanticIndices.resolve("my-index,logs-*")`` answers, per concrete index, the semantic
fields with their definitions. Requests against indices without semantic fields then go
straight through the proxy at the cost of one cached lookup. When an entry has expired,
concurrent requests for it share one Elasticsearch round trip; :meth:`SemanticIndices.invalidate`
(after a mapping change of this process) also drops answers still on their way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError
from elasticsearch import ConnectionError as EsConnectionError

from ..errors import unavailable
from ..singleflight import SingleFlight
from .layout import META_KEY, inference_mapping, inference_path


@dataclass
class SemanticField:
    name: str
    inference_id: str
    search_inference_id: str | None = None
    model_settings: dict[str, Any] | None = None
    chunking_settings: dict[str, Any] | None = None
    definition: dict[str, Any] = field(default_factory=dict)

    @property
    def query_inference_id(self) -> str:
        return self.search_inference_id or self.inference_id


@dataclass
class IndexSemantics:
    index: str
    fields: dict[str, SemanticField]
    # copy_to into semantic fields: source field -> semantic fields it feeds
    copy_to: dict[str, list[str]]
    default_pipeline: str | None = None
    final_pipeline: str | None = None


def parse_meta(index: str, meta: dict[str, Any] | None) -> IndexSemantics:
    sidecar_meta = (meta or {}).get(META_KEY) or {}
    fields = {}
    for name, definition in (sidecar_meta.get("semantic_text") or {}).items():
        fields[name] = SemanticField(
            name=name,
            inference_id=definition.get("inference_id"),
            search_inference_id=definition.get("search_inference_id"),
            model_settings=definition.get("model_settings"),
            chunking_settings=definition.get("chunking_settings"),
            definition=definition,
        )
    copy_to = {source: list(targets) for source, targets in (sidecar_meta.get("copy_to") or {}).items()}
    # A semantic_text multi-field embeds its parent's value, as a copy_to target would.
    for child, parent in (sidecar_meta.get("multi_fields") or {}).items():
        copy_to.setdefault(parent, [])
        if child not in copy_to[parent]:
            copy_to[parent].append(child)
    return IndexSemantics(index=index, fields=fields, copy_to=copy_to)


class SemanticIndices:
    def __init__(self, es: AsyncElasticsearch, ttl_s: float = 1.0) -> None:
        self.es = es
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, IndexSemantics]]] = {}
        self._write_cache: dict[str, tuple[float, IndexSemantics | None]] = {}
        self._any: tuple[float, bool] | None = None
        # Forgotten by invalidate(): a load that began before it caches nothing.
        self._loads: SingleFlight[Any] = SingleFlight()

    @property
    def generation(self) -> int:
        """Moves on at every :meth:`invalidate`: caches built on these answers compare it to
        know when to re-read."""
        return self._loads.generation

    def invalidate(self) -> None:
        self._cache.clear()
        self._write_cache.clear()
        self._any = None
        self._loads.forget()

    def _fresh(self, hit: tuple[float, Any] | None) -> bool:
        """Whether a cached ``(time, answer)`` is younger than :attr:`ttl_s`."""
        return hit is not None and time.monotonic() - hit[0] < self.ttl_s

    async def any_semantic(self) -> bool:
        """Whether any index or index template has semantic fields (cached): when none has,
        writes go straight through without being parsed."""
        if self._fresh(self._any):
            return self._any[1]
        return await self._loads.run("any", self._load_any)

    async def _load_any(self) -> bool:
        now, generation = time.monotonic(), self._loads.generation
        found = bool(await self.resolve("*,-.*"))
        if not found:
            try:
                templates = await self.es.indices.get_index_template(
                    filter_path=f"index_templates.index_template.template.mappings._meta.{META_KEY}"
                )
                found = bool(templates.body if hasattr(templates, "body") else templates)
            except (ApiError, NotFoundError):
                found = False
            except EsConnectionError as exc:
                raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        if generation == self._loads.generation:
            self._any = (now, found)
        return found

    async def for_write(self, name: str) -> IndexSemantics | None:
        """Semantic fields of the index a write to ``name`` lands in: the index itself, the
        write index of an alias, or — for an index that does not exist yet — what the
        matching index template would give it."""
        hit = self._write_cache.get(name)
        if self._fresh(hit):
            return hit[1]
        return await self._loads.run(("write", name), lambda: self._load_for_write(name))

    def known_plain(self, name: str) -> bool:
        """True while the cached answer of :meth:`for_write` is fresh and says a write to
        ``name`` lands where there are no semantic fields; never waits."""
        hit = self._write_cache.get(name)
        return self._fresh(hit) and hit[1] is None

    async def _load_for_write(self, name: str) -> IndexSemantics | None:
        now, generation = time.monotonic(), self._loads.generation
        found = await self.resolve(name)
        result: IndexSemantics | None = next(iter(found.values()), None) if found else None
        if result is None:
            try:
                exists = await self.es.indices.exists(index=name, expand_wildcards="all")
                if not exists:
                    simulated = await self.es.indices.simulate_index_template(name=name)
                    body = simulated.body if hasattr(simulated, "body") else simulated
                    meta = ((body.get("template") or {}).get("mappings") or {}).get("_meta")
                    semantics = parse_meta(name, meta)
                    result = semantics if (semantics.fields or semantics.copy_to) else None
            except NotFoundError:
                result = None
            except ApiError:
                result = None
            except EsConnectionError as exc:
                raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        if generation == self._loads.generation:
            self._write_cache[name] = (now, result)
        return result

    async def resolve(self, expression: str) -> dict[str, IndexSemantics]:
        """Concrete indices matched by ``expression`` (an index, alias, pattern or list) that
        have semantic_text fields. Unknown names resolve to nothing (Elasticsearch reports
        them when the request is forwarded)."""
        known = self.resolved(expression)
        if known is not None:
            return known
        return await self._loads.run(("resolve", expression), lambda: self._load(expression))

    def resolved(self, expression: str) -> dict[str, IndexSemantics] | None:
        """:meth:`resolve`'s answer while it is cached and fresh, else None; never waits."""
        hit = self._cache.get(expression)
        return hit[1] if self._fresh(hit) else None

    async def _load(self, expression: str) -> dict[str, IndexSemantics]:
        now, generation = time.monotonic(), self._loads.generation
        try:
            resp = await self.es.indices.get_mapping(
                index=expression, ignore_unavailable=True, allow_no_indices=True,
                filter_path="*.mappings._meta",
            )
        except NotFoundError:
            resp = {}
        except EsConnectionError as exc:
            raise unavailable(f"Elasticsearch is unavailable: {exc}") from exc
        except ApiError:
            resp = {}
        result: dict[str, IndexSemantics] = {}
        for index, body in (resp.body if hasattr(resp, "body") else resp).items():
            semantics = parse_meta(index, (body.get("mappings") or {}).get("_meta"))
            if semantics.fields or semantics.copy_to:
                result[index] = semantics
        if generation == self._loads.generation:
            self._cache[expression] = (now, result)
        return result

    async def record_model_settings(self, index: str, fld: SemanticField, settings: dict[str, Any]) -> None:
        """A field mapped before its endpoint existed gets its embeddings mapping and its
        ``model_settings`` on first use (as Elasticsearch updates the mapping then)."""
        current = await self.es.indices.get_mapping(index=index)
        meta = (next(iter(current.body.values()))["mappings"].get("_meta") or {})
        sidecar_meta = dict(meta.get(META_KEY) or {})
        defs = dict(sidecar_meta.get("semantic_text") or {})
        definition = dict(defs.get(fld.name) or fld.definition)
        definition["model_settings"] = settings
        defs[fld.name] = definition
        sidecar_meta["semantic_text"] = defs
        properties: dict[str, Any] = {}
        node = properties
        parts = inference_path(fld.name).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}).setdefault("properties", {})
        node[parts[-1]] = inference_mapping(settings, definition.get("index_options"))
        await self.es.indices.put_mapping(index=index, properties=properties, meta={**meta, META_KEY: sidecar_meta})
        self.invalidate()

    async def indexes_using(self, inference_id: str) -> tuple[list[str], list[str]]:
        """An endpoint ``reference_finders`` entry: the indices whose semantic_text fields use
        ``inference_id`` (for index or search)."""
        semantics = await self.resolve("*")
        indexes = [name for name, sem in semantics.items()
                   if any(inference_id in (f.inference_id, f.search_inference_id) for f in sem.fields.values())]
        return [], indexes
