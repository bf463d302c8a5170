"""Query texts embedded by inference endpoints, through the query embedding cache."""

from __future__ import annotations

from typing import Any

from ...protocol.service import InputType, TaskType
from ..query_cache import DENSE, SPARSE, QueryEmbedding, QueryEmbeddingCache

TEXT_EXPANSION_RESULT = "text_expansion_result"
TEXT_EMBEDDING_RESULT = "text_embedding_result"


class Embedder:
    """Embeds query texts with inference endpoints, through the query cache."""

    def __init__(self, endpoints: Any, cache: QueryEmbeddingCache, timeout_s: float | None = 30.0) -> None:
        self.endpoints = endpoints  # sidecar.endpoints.manager.InferenceEndpoints (its .inference runs it)
        self.cache = cache
        self.timeout_s = timeout_s

    async def embed(self, inference_id: str, text: str, wanted: TaskType | None = None) -> QueryEmbedding:
        """``text`` embedded by ``inference_id``. ``wanted`` restricts the endpoint's task type
        (the caller turns a mismatch into its own error); None accepts either embedding task."""
        inference = self.endpoints.inference
        target = await inference.target(inference_id)
        endpoint = target.endpoint
        task = endpoint.task_type
        if task not in (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING) or (wanted is not None and task != wanted):
            raise _WrongTask(endpoint.inference_id, task)
        kind = DENSE if task is TaskType.TEXT_EMBEDDING else SPARSE

        async def compute() -> QueryEmbedding:
            if kind == DENSE:
                result = await inference.embed(target, [text], InputType.SEARCH, timeout_s=self.timeout_s)
                vector = result.vectors[0]
                values = vector.tolist() if hasattr(vector, "tolist") else list(vector)
                return QueryEmbedding(endpoint.inference_id, DENSE, vector=tuple(values),
                                      element_type=result.element_type)
            [sparse] = await inference.sparse_embed(target, [text], InputType.SEARCH, timeout_s=self.timeout_s)
            return QueryEmbedding(endpoint.inference_id, SPARSE,
                                  tokens=tuple((str(t), float(w)) for t, w in sparse.tokens.items()))

        return await self.cache.get(endpoint, kind, text, compute)


class _WrongTask(Exception):
    def __init__(self, inference_id: str, task: TaskType) -> None:
        super().__init__(inference_id)
        self.inference_id = inference_id
        self.task = task

    @property
    def result_name(self) -> str:
        return {TaskType.TEXT_EMBEDDING: TEXT_EMBEDDING_RESULT,
                TaskType.SPARSE_EMBEDDING: TEXT_EXPANSION_RESULT,
                TaskType.RERANK: "ranked_docs"}.get(self.task, self.task.value)
