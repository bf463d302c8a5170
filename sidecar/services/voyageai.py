"""Voyage AI: ``text_embedding`` and ``rerank``.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``rate_limit`` (2000 a minute); embeddings ``embedding_type`` (``float`` default, ``int8``/
``byte``, ``bit``/``binary``), ``similarity`` (default ``dot_product``), ``dimensions`` (sent as
``output_dimension``), ``max_input_tokens``. ``task_settings``: embeddings ``input_type``
(``ingest`` or ``search``) and ``truncation``; rerank ``return_documents``, ``top_k``,
``truncation``.

Requests go to ``https://api.voyageai.com/v1/embeddings`` and ``/v1/rerank``; the base can be
redirected with ``ServiceContext.extras["provider_urls"]["voyageai"]`` or
``SIDECAR_PROVIDER_URL_VOYAGEAI``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.errors import UNSUCCESSFUL, ErrorPolicy
from ..remote.openai_style import parse_embeddings
from ..remote.service import DocumentsRerankService

DEFAULT_BASE = "https://api.voyageai.com"
INPUT_TYPES = {"ingest": "document", "search": "query"}
EMBEDDING_TYPES = {
    "float": ("float", "float"),
    "int8": ("byte", "int8"),
    "byte": ("byte", "int8"),
    "bit": ("bit", "binary"),
    "binary": ("bit", "binary"),
}
WIRE_TYPE = {"float": "float", "byte": "int8", "bit": "binary"}
POLICY = ErrorPolicy(messages={400: UNSUCCESSFUL, 403: UNSUCCESSFUL, 404: UNSUCCESSFUL})


@register
class VoyageAiService(DocumentsRerankService):
    name = "voyageai"
    display_name = "Voyage AI"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK)
    default_rpm = {t: 2000 for t in task_types}
    configuration = cfg.configuration(cfg.model_id(task_types), cfg.api_key(task_types), cfg.rate_limit(task_types))
    batch_size = 128
    policy = POLICY
    rerank_task_keys = ("top_k", "return_documents", "truncation")

    def rerank_settings(self, endpoint: Endpoint, task_settings: dict[str, Any]) -> dict[str, Any]:
        settings = super().rerank_settings(endpoint, task_settings)
        settings.setdefault("top_k", settings.get("top_n"))  # Voyage AI's name for top_n
        return settings

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        model_id = ss.string("model_id", required=True)
        rate = common.rate_limit(ss, self.name, self.rpm(task_type))
        if task_type == TaskType.RERANK:
            return {"model_id": model_id, "rate_limit": rate}
        embedding_type = ss.enum("embedding_type", EMBEDDING_TYPES) or "float"
        similarity = common.similarity(ss)
        dimensions = ss.integer("dimensions", positive=True)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        return {
            "model_id": model_id,
            "rate_limit": rate,
            "embedding_type": EMBEDDING_TYPES.get(embedding_type, ("float", "float"))[0],
            "similarity": similarity or self.default_similarity,
            "dimensions": dimensions,
            "max_input_tokens": max_input_tokens,
            "dimensions_set_by_user": True if dimensions is not None else None,
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.RERANK:
            return {
                "return_documents": ts.boolean("return_documents"),
                "top_k": ts.integer("top_k", positive=True),
                "truncation": ts.boolean("truncation"),
            }
        return {"input_type": ts.enum("input_type", INPUT_TYPES), "truncation": ts.boolean("truncation")}

    def _request(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> HttpRequest:
        headers = {"Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}"}
        return HttpRequest(f"{self.base_url(DEFAULT_BASE)}/v1/{path}", json=body, headers=headers)

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = self.effective_task_settings(endpoint, task_settings)
        service = endpoint.service_settings
        kind = input_type.value if input_type is not None else settings.get("input_type")
        element_type = service.get("embedding_type", "float")

        def build(batch: list[str]) -> HttpRequest:
            body: dict[str, Any] = {"input": batch, "model": service["model_id"]}
            if kind in INPUT_TYPES:
                body["input_type"] = INPUT_TYPES[kind]
            if settings.get("truncation") is not None:
                body["truncation"] = settings["truncation"]
            if service.get("dimensions") is not None:
                body["output_dimension"] = service["dimensions"]
            body["output_dtype"] = WIRE_TYPE[element_type]
            return self._request(endpoint, "embeddings", body)

        def parse(obj: Any) -> list[list[float]]:
            return parse_embeddings(obj, "Voyage AI embeddings response")

        return await self.embed_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=POLICY, element_type=element_type
        )
