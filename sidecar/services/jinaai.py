"""Jina AI: ``text_embedding``, ``rerank`` and (Elasticsearch 9.4+) ``embedding`` of texts and
images.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
embeddings ``similarity`` (default ``dot_product``), ``dimensions``, ``max_input_tokens``,
``embedding_type`` (``float`` default, ``bit``/``binary``); ``rate_limit`` (2000 a minute).
``task_settings``: embeddings ``input_type`` (``ingest``, ``search``, ``classification``,
``clustering``); rerank ``return_documents``, ``top_n``.

``embedding`` endpoints take the embeddings settings and ``multimodal_model`` (default true):
a multimodal model gets each input as ``{"text": ...}`` / ``{"image": "data:..."}`` (several
contents of one input as ``{"content": [...]}``), a text-only one plain strings, and refuses
images ("Non-text input provided for text-only model").

Requests go to ``https://api.jina.ai/v1/embeddings`` and ``/v1/rerank``; the base can be
redirected with ``ServiceContext.extras["provider_urls"]["jinaai"]`` or
``SIDECAR_PROVIDER_URL_JINAAI``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import status_exception
from ..protocol.embedding import Content, ContentGroup, text_only
from ..protocol.registry import register
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.errors import UNSUCCESSFUL, ErrorPolicy
from ..remote.openai_style import parse_embeddings
from ..remote.service import DocumentsRerankService

DEFAULT_BASE = "https://api.jina.ai"
TASKS = {
    "ingest": "retrieval.passage",
    "search": "retrieval.query",
    "classification": "classification",
    "clustering": "separation",
}
# embedding_type as given → (element type stored, value sent)
EMBEDDING_TYPES = {"float": ("float", "float"), "bit": ("bit", "binary"), "binary": ("bit", "binary")}
WIRE_TYPE = {"float": "float", "bit": "binary"}
POLICY = ErrorPolicy(messages={400: UNSUCCESSFUL, 403: UNSUCCESSFUL, 404: UNSUCCESSFUL})


@register
class JinaAiService(DocumentsRerankService):
    name = "jinaai"
    display_name = "Jina AI"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK, TaskType.EMBEDDING)
    task_types_since = {TaskType.EMBEDDING: (9, 4)}
    default_rpm = {t: 2000 for t in task_types}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.model_id(task_types),
        cfg.rate_limit(task_types),
        dimensions=cfg.field(
            "Dimensions",
            "The number of dimensions the resulting embeddings should have. For more information refer to "
            "https://api.jina.ai/redoc#tag/embeddings/operation/create_embedding_v1_embeddings_post.",
            [TaskType.TEXT_EMBEDDING, TaskType.EMBEDDING],
            type="int",
        ),
    )
    batch_size = 2048
    policy = POLICY
    rerank_task_keys = ("top_n", "return_documents")

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        url = common.url(ss)
        model_id = ss.string("model_id", required=True)
        rate = common.rate_limit(ss, self.name, self.rpm(task_type))
        if task_type == TaskType.RERANK:
            return {"url": url, "model_id": model_id, "rate_limit": rate}
        similarity = common.similarity(ss)
        dimensions = ss.integer("dimensions", positive=True)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        embedding_type = ss.enum("embedding_type", EMBEDDING_TYPES) or "float"
        multimodal = ss.boolean("multimodal_model") if task_type == TaskType.EMBEDDING else None
        return {
            "url": url,
            "model_id": model_id,
            "rate_limit": rate,
            "similarity": similarity or self.default_similarity,
            "dimensions": dimensions,
            "max_input_tokens": max_input_tokens,
            "embedding_type": EMBEDDING_TYPES.get(embedding_type, ("float", "float"))[0],
            "multimodal_model": (multimodal is not False) if task_type == TaskType.EMBEDDING else None,
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.RERANK:
            return {"return_documents": ts.boolean("return_documents"), "top_n": ts.integer("top_n", positive=True)}
        return {"input_type": ts.enum("input_type", TASKS)}

    def _request(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> HttpRequest:
        headers = {
            "Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}",
            "Request-Source": "unspecified:elasticsearch",
        }
        return HttpRequest(f"{self.base_url(DEFAULT_BASE)}/v1/{path}", json=body, headers=headers)

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        if endpoint.task_type == TaskType.EMBEDDING:
            groups = [(Content("text", text, "text"),) for text in inputs]
            return await self.embed_contents(endpoint, groups, input_type, task_settings, timeout)
        return await self._embed(endpoint, inputs, input_type, task_settings, timeout)

    async def embed_contents(
        self,
        endpoint: Endpoint,
        inputs: Sequence[ContentGroup],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        if endpoint.service_settings.get("multimodal_model") is False:
            texts = text_only(inputs)
            if texts is None:
                raise status_exception(400, "Non-text input provided for text-only model")
            return await self._embed(endpoint, texts, input_type, task_settings, timeout)
        return await self._embed(endpoint, [_multimodal(group) for group in inputs], input_type, task_settings, timeout)

    async def _embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[Any],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None,
    ) -> DenseEmbeddings:
        settings = self.effective_task_settings(endpoint, task_settings)
        kind = input_type.value if input_type is not None else settings.get("input_type")
        element_type = endpoint.service_settings.get("embedding_type", "float")

        def build(batch: list[Any]) -> HttpRequest:
            body: dict[str, Any] = {"input": batch, "model": endpoint.service_settings["model_id"]}
            body["embedding_type"] = WIRE_TYPE[element_type]
            if kind:
                body["task"] = TASKS[kind]
            return self._request(endpoint, "embeddings", body)

        def parse(obj: Any) -> list[list[float]]:
            return parse_embeddings(obj, "Jina AI embeddings response")

        return await self.embed_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=POLICY, element_type=element_type
        )


def _multimodal(group: ContentGroup) -> dict[str, Any]:
    """One input of a multimodal model: ``{"text"|"image": value}``, or ``{"content": [...]}``
    when several contents make one embedding."""
    items = [{content.type: content.value} for content in group]
    return items[0] if len(items) == 1 else {"content": items}
