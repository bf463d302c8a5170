"""The preconfigured inference endpoints Elasticsearch has on every cluster
(``.elser-2-elasticsearch``, ``.multilingual-e5-small-elasticsearch``, ``.rerank-v1-elasticsearch``).

They are listed by GET, usable without being created (semantic_text's default
``inference_id`` is ``.elser-2-elasticsearch``), and cannot be created, changed or deleted.
Their models start on first use and scale to zero when idle, as Elasticsearch's adaptive
allocations do. Point their model ids at local models with ``SIDECAR_MODEL_ALIASES``.
"""

from __future__ import annotations

from ..protocol.service import Endpoint, TaskType

_ADAPTIVE = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32}
_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}


def _endpoint(inference_id: str, task_type: TaskType, model_id: str, chunking: bool = True) -> Endpoint:
    return Endpoint(
        inference_id=inference_id,
        task_type=task_type,
        service="elasticsearch",
        service_settings={"adaptive_allocations": dict(_ADAPTIVE), "num_threads": 1, "model_id": model_id},
        chunking_settings=dict(_CHUNKING) if chunking else None,
    )


def default_endpoints() -> dict[str, Endpoint]:
    return {
        ".elser-2-elasticsearch": _endpoint(".elser-2-elasticsearch", TaskType.SPARSE_EMBEDDING, ".elser_model_2"),
        ".multilingual-e5-small-elasticsearch": _endpoint(
            ".multilingual-e5-small-elasticsearch", TaskType.TEXT_EMBEDDING, ".multilingual-e5-small"),
        ".rerank-v1-elasticsearch": _endpoint(".rerank-v1-elasticsearch", TaskType.RERANK, ".rerank-v1",
                                              chunking=False),
    }


DEFAULT_IDS = frozenset(default_endpoints())
