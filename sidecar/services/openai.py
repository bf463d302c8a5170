"""OpenAI: ``text_embedding``, ``completion`` and ``chat_completion`` (streamed).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``url``, ``organization_id``, ``dimensions`` (text-embedding-3 models; sent only when set),
``similarity`` (default ``dot_product``), ``max_input_tokens``, ``rate_limit``
(3000 requests a minute for embeddings, 500 for completion); ``task_settings`` ``user``.

Without ``url`` requests go to ``https://api.openai.com/v1/embeddings`` or
``/v1/chat/completions``; the base can be redirected with
``ServiceContext.extras["provider_urls"]["openai"]`` or ``SIDECAR_PROVIDER_URL_OPENAI``.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle

DEFAULT_BASE = "https://api.openai.com"
PATHS = {"embeddings": "/v1/embeddings", "chat": "/v1/chat/completions"}


@register
class OpenAiService(OpenAiStyle):
    name = "openai"
    display_name = "OpenAI"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {TaskType.TEXT_EMBEDDING: 3000, TaskType.COMPLETION: 500, TaskType.CHAT_COMPLETION: 500}
    configuration = cfg.configuration(
        cfg.api_key(
            task_types,
            "The OpenAI API authentication key. For more details about generating OpenAI API keys, "
            "refer to the https://platform.openai.com/account/api-keys.",
        ),
        cfg.model_id(task_types),
        cfg.rate_limit(
            task_types, "Default number of requests allowed per minute. For text_embedding is 3000. For completion is 500."
        ),
        dimensions=cfg.field(
            "Dimensions",
            "The number of dimensions the resulting embeddings should have. For more information refer to "
            "https://platform.openai.com/docs/api-reference/embeddings/create#embeddings-create-dimensions.",
            [TaskType.TEXT_EMBEDDING],
            type="int",
        ),
        organization_id=cfg.field("Organization ID", "The unique identifier of your organization.", task_types),
    )
    batch_size = 2048

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        url = common.url(ss)
        organization = ss.string("organization_id")
        if task_type == TaskType.TEXT_EMBEDDING:
            similarity = common.similarity(ss)
            max_input_tokens = ss.integer("max_input_tokens", positive=True)
            dimensions = ss.integer("dimensions", positive=True)
            model_id = ss.string("model_id", required=True)
            return {
                "model_id": model_id,
                "url": url,
                "organization_id": organization,
                "similarity": similarity or self.default_similarity,
                "dimensions": dimensions,
                "max_input_tokens": max_input_tokens,
                "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
                "dimensions_set_by_user": True if dimensions is not None else None,
            }
        model_id = ss.string("model_id", required=True)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        return {
            "model_id": model_id,
            "url": url,
            "organization_id": organization,
            "max_input_tokens": max_input_tokens,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {"user": ts.string("user")}

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings.get("url") or self.base_url(DEFAULT_BASE) + PATHS[kind]

    def auth_headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = super().auth_headers(endpoint)
        organization = endpoint.service_settings.get("organization_id")
        if organization:
            headers["OpenAI-Organization"] = organization
        return headers
