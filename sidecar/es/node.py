"""The version of the Elasticsearch node behind the sidecar, and what follows from it.

Asked once (``GET _nodes/_local`` with the sidecar's own client, single-flight) and kept for
the life of the process; an unreachable node is asked again on the next call.

From 9.1 an index keeps ``dense_vector`` and ``sparse_vector`` values out of ``_source`` by
default (``index.mapping.exclude_source_vectors``) and gives them back only when a read asks
with ``_source_exclude_vectors=false``. The chunk embeddings the sidecar stores under
``_sidecar_inference`` are such values: every read of the sidecar that needs them back (reuse
on update, ``_inference_fields``, highlighting, reindex) asks that way, so the vectors are
stored once, in the index, as Elasticsearch intends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from ..singleflight import SingleFlight


@dataclass(frozen=True)
class Features:
    """What the node's version decides about semantic_text and the inference API: every
    version-dependent behaviour of the sidecar asks here, so the list below is the whole of it
    (the README's table of 8.19 / 9.x differences follows it)."""

    version: tuple[int, int, int]

    @property
    def excludes_source_vectors(self) -> bool:
        """9.1: new indices keep vectors out of ``_source`` (``index.mapping.exclude_source_vectors``)."""
        return self.version >= (9, 1)

    @property
    def source_inference_fields(self) -> bool:
        """9.2: ``_source.exclude_vectors: false`` returns ``_source._inference_fields``."""
        return self.version >= (9, 2)

    @property
    def semantic_sparse_index_options(self) -> bool:
        """9.2: semantic_text ``index_options`` may be ``sparse_vector`` (before: ``dense_vector`` only)."""
        return self.version >= (9, 2)

    @property
    def chunks_format(self) -> bool:
        """9.2: ``fields: [{"field": f, "format": "chunks"}]`` returns the chunks' texts."""
        return self.version >= (9, 2)

    @property
    def max_chunk_size_cap(self) -> int | None:
        """Before 9.2, ``max_chunk_size`` may not exceed 300 words (elastic/elasticsearch#133718)."""
        return None if self.version >= (9, 2) else 300

    @property
    def inference_timeout_status(self) -> int:
        """9.4: an inference timeout is a 504 (the inference API acts as a gateway), not a 408."""
        return 504 if self.version >= (9, 4) else 408

    @property
    def retriever_fields_query(self) -> bool:
        """8.19 / 9.1: ``rrf`` and ``linear`` take the multi-field ``query`` + ``fields`` shorthand."""
        return self.version >= (8, 19)

    @property
    def rrf_weights(self) -> bool:
        """9.1: ``rrf`` children may be ``{"retriever", "weight"}``."""
        return self.version >= (9, 1)

    @property
    def linear_l2_norm(self) -> bool:
        """9.1: the ``l2_norm`` score normalizer of the ``linear`` retriever."""
        return self.version >= (9, 1)

    @property
    def linear_default_normalizer(self) -> bool:
        """9.2: ``linear``'s top-level ``normalizer`` applies to children without their own."""
        return self.version >= (9, 2)

    @property
    def chunk_rescorer(self) -> bool:
        """9.2: ``text_similarity_reranker.chunk_rescorer`` reranks a document's best chunks."""
        return self.version >= (9, 2)

    @property
    def single_shot_embeddings(self) -> bool:
        """9.5: a semantic_text value may be ``{"text", "chunks"}`` with its own embeddings."""
        return self.version >= (9, 5)

    @property
    def embedding_task(self) -> bool:
        """9.4: the ``embedding`` task type (text and image inputs, ``POST _inference/embedding/{id}``);
        before it ``embedding`` is an unknown task type."""
        return self.version >= (9, 4)

    @property
    def inference_id_updatable(self) -> bool:
        """9.3: a semantic_text field's ``inference_id`` may change to a compatible endpoint."""
        return self.version >= (9, 3)


def parse_version(number: str) -> tuple[int, int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in number.split("-")[0].split(".")[:3]]
    return (*parts, 0, 0, 0)[:3]  # type: ignore[return-value]


class NodeVersion:
    def __init__(self, es: AsyncElasticsearch) -> None:
        self.es = es
        self._version: tuple[int, int, int] | None = None
        self._loads: SingleFlight[tuple[int, int, int]] = SingleFlight()

    async def get(self) -> tuple[int, int, int]:
        if self._version is None:
            self._version = await self._loads.run("version", self._load)
        return self._version

    async def _load(self) -> tuple[int, int, int]:
        resp = await self.es.nodes.info(node_id="_local", filter_path="nodes.*.version")
        nodes: dict[str, Any] = resp.body.get("nodes") or {}
        return parse_version(next(iter(nodes.values()))["version"])

    async def major(self) -> int:
        return (await self.get())[0]

    async def features(self) -> Features:
        return Features(await self.get())

    async def vectors_params(self) -> dict[str, str]:
        """URL parameters that make a ``_search``, ``_mget`` or ``_doc`` read return the vectors
        stored in ``_source`` on this node (none needed before 9.1)."""
        if (await self.features()).excludes_source_vectors:
            return {"_source_exclude_vectors": "false"}
        return {}
